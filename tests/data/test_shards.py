"""Prepared corpora: sharded memory-mapped token files, lazy reads within a
memory budget, shard-local shuffled plans, and mid-epoch resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import biofm.train.loop as loop_module
from biofm.cli import main
from biofm.config import TrainConfig
from biofm.data.shards import ShardedCorpus, is_prepared_corpus, prepare_corpus
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.proteins import EsmTokenizer
from biofm.train import train
from biofm.train.plans import ShardPlan
from tests.helpers import random_proteins, tiny_model

TEXTS = random_proteins(120, seed=3, low=10, high=40)


@pytest.fixture()
def corpus_dir(tmp_path):
    prepare_corpus(TEXTS, EsmTokenizer(), tmp_path / "corpus", shard_tokens=200, max_len=64,
                   valid_fraction=0.1, seed=1, meta={"modality": "protein"})
    return tmp_path / "corpus"


def test_prepared_corpus_round_trips_the_token_ids(corpus_dir):
    tokenizer = EsmTokenizer()
    train_split, valid_split = ShardedCorpus(corpus_dir, "train"), ShardedCorpus(corpus_dir, "valid")
    assert len(train_split) + len(valid_split) == len(TEXTS) and 0 < len(valid_split) < 30
    got = [list(train_split[i]) for i in range(len(train_split))] + \
          [list(valid_split[i]) for i in range(len(valid_split))]
    expected = [tokenizer.encode(t, max_length=64) for t in TEXTS]
    assert sorted(got) == sorted(expected)
    assert list(train_split.lengths) == [len(s) for s in got[: len(train_split)]]
    assert len(train_split.shards) > 5 and train_split.dtype == np.uint16
    assert train_split.tokenizer().to_dict() == tokenizer.to_dict()
    assert train_split[-1].tolist() == got[len(train_split) - 1]
    train_split.verify()
    assert not list(corpus_dir.parent.glob(".corpus*"))  # no staging directory left behind


def test_damaged_shards_are_clear_errors(corpus_dir):
    shard = corpus_dir / "train-00001.tokens.bin"
    data = bytearray(shard.read_bytes())
    data[0] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(BiofmError, match="checksum"):
        ShardedCorpus(corpus_dir).verify()
    shard.write_bytes(bytes(data[:-2]))
    corpus = ShardedCorpus(corpus_dir)
    with pytest.raises(BiofmError, match="wrong size"):
        [corpus[i] for i in range(len(corpus))]


def test_prepare_replaces_only_a_prepared_corpus(tmp_path, corpus_dir):
    prepare_corpus(TEXTS[:10], EsmTokenizer(), corpus_dir, shard_tokens=50)
    assert len(ShardedCorpus(corpus_dir)) == 10
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BiofmError, match="not a prepared corpus"):
        prepare_corpus(TEXTS, EsmTokenizer(), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_cache_never_exceeds_the_memory_budget(corpus_dir):
    whole = ShardedCorpus(corpus_dir)
    budget = 3 * max(whole._shard_bytes(s) for s in range(len(whole.shards)))
    assert budget < whole.nbytes
    corpus = ShardedCorpus(corpus_dir, memory_budget_bytes=budget)
    for i in np.random.default_rng(0).permutation(len(corpus)):
        assert corpus[i].tolist() == whole[i].tolist()
    assert 0 < corpus.peak_cached_bytes <= budget and corpus.cached_bytes <= budget
    with pytest.raises(BiofmError, match="memory budget"):
        ShardedCorpus(corpus_dir, memory_budget_bytes=100)


def test_shard_plan_covers_each_epoch_locally_and_deterministically():
    sizes = [7, 9, 3, 12, 8, 10, 6]
    lengths = np.random.default_rng(0).integers(5, 50, sum(sizes))
    plan = ShardPlan(sizes, lengths, seed=4, batch_size=5, buffer=10)
    assert plan.per_epoch == sum(sizes) // 5
    epoch = [plan(k) for k in range(plan.per_epoch)]
    seen = np.concatenate(epoch)
    assert len(set(seen.tolist())) == len(seen) >= sum(sizes) - 5
    again = ShardPlan(sizes, lengths, seed=4, batch_size=5, buffer=10)
    for k in reversed(range(2 * plan.per_epoch)):  # any k, in any order
        assert (again(k) == plan(k)).all()
    assert any((plan(k) != plan(k + plan.per_epoch)).any() for k in range(plan.per_epoch))
    shard_of = np.repeat(np.arange(len(sizes)), sizes)
    assert all(len(set(shard_of[b])) <= 3 for b in epoch)  # a window spans few shards

    budget = ShardPlan(sizes, lengths, seed=4, tokens=120, buffer=16)
    batches = [budget(k) for k in range(budget.per_epoch)]
    assert all(lengths[b].sum() <= 120 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(sum(sizes)))
    assert all((ShardPlan(sizes, lengths, seed=4, tokens=120, buffer=16)(k) == b).all()
               for k, b in enumerate(batches))


class Killed(Exception):
    pass


def test_training_within_a_small_budget_resumes_mid_epoch(tmp_path, corpus_dir, monkeypatch):
    whole = ShardedCorpus(corpus_dir)
    budget = 2 * max(whole._shard_bytes(s) for s in range(len(whole.shards)))
    config = TrainConfig(max_steps=8, batch_size=8, eval_every=4, save_every=2, log_every=2,
                         warmup_steps=2, progress=False, lr=3e-3, shuffle_buffer=16)
    assert config.max_steps < len(whole) // config.batch_size  # the cut falls mid-epoch

    def run(run_dir, resume=False):
        torch.manual_seed(0)
        corpus = ShardedCorpus(corpus_dir, "train", budget)
        result = train(tiny_model(dropout=0.1), corpus, ShardedCorpus(corpus_dir, "valid", budget),
                       config, run_dir, resume=resume)
        assert corpus.peak_cached_bytes <= budget < corpus.nbytes
        return result

    full = run(tmp_path / "full")
    real_save = loop_module.save_training_checkpoint

    def save_then_die(*args, **kwargs):
        path = real_save(*args, **kwargs)
        if args[-1].step == 4:
            raise Killed
        return path

    monkeypatch.setattr(loop_module, "save_training_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run(tmp_path / "cut")
    monkeypatch.undo()
    resumed = run(tmp_path / "cut", resume=True)
    curve = lambda r: [(h["step"], h.get("loss"), h.get("valid_loss")) for h in r.history]  # noqa: E731
    assert curve(resumed) == curve(full) and full.best_valid_loss is not None
    a = FoundationModel.load(tmp_path / "full" / "step-0000008")
    b = FoundationModel.load(tmp_path / "cut" / "step-0000008")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_cli_prepare_then_pretrain_from_the_directory(tmp_path, capsys):
    fasta = tmp_path / "p.fasta"
    fasta.write_text("".join(f">p{i}\n{t}\n" for i, t in enumerate(TEXTS)))
    main(["prepare", "--input", str(fasta), "--output", str(tmp_path / "prep"),
          "--shard-tokens", "500", "--max-len", "64", "--valid-fraction", "0.1"])
    assert "wrote" in capsys.readouterr().out and is_prepared_corpus(tmp_path / "prep")
    index = json.loads((tmp_path / "prep" / "index.json").read_text())
    assert index["modality"] == "protein" and index["source"] == str(fasta)
    main(["pretrain", "--input", str(tmp_path / "prep"), "--output", str(tmp_path / "run"),
          "--steps", "3", "--batch-size", "8", "--set", "backbone.max_len=64",
          "--set", "data.memory_budget_mb=0.01", "--no-progress"])
    assert "done: 3 steps" in capsys.readouterr().out
    assert FoundationModel.load(tmp_path / "run" / "final").tokenizer.vocab_size == 33


def test_cli_pretrain_on_a_corpus_longer_than_the_model_exits_2(tmp_path, capsys):
    prepare_corpus(TEXTS, EsmTokenizer(), tmp_path / "prep", max_len=64,
                   meta={"modality": "protein"})
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--input", str(tmp_path / "prep"), "--output", str(tmp_path / "run"),
              "--set", "backbone.max_len=32", "--no-progress"])
    assert exit_info.value.code == 2
    assert "--max-len 32" in capsys.readouterr().err


def test_packing_reads_a_prepared_corpus(tmp_path, corpus_dir):
    torch.manual_seed(0)
    config = TrainConfig(max_steps=2, packing=True, tokens_per_batch=256, eval_every=0,
                         save_every=0, log_every=1, progress=False, shuffle_buffer=32)
    result = train(tiny_model(), ShardedCorpus(corpus_dir), None, config, tmp_path / "run")
    assert result.steps == 2 and all(np.isfinite(h["loss"]) for h in result.history)


def test_a_process_pool_writes_the_same_files(tmp_path, monkeypatch):
    """workers=2 tokenises chunks in other processes; every file is byte-for-byte the same."""
    import biofm.data.shards as shards
    monkeypatch.setattr(shards, "CHUNK_RECORDS", 7)  # many chunks, several in flight
    texts = random_proteins(300, seed=4, low=10, high=80)
    for workers in (1, 2):
        prepare_corpus(iter(texts), EsmTokenizer(), tmp_path / str(workers), shard_tokens=500,
                       max_len=64, valid_fraction=0.2, seed=3, workers=workers)
    one, two = tmp_path / "1", tmp_path / "2"
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) and len(names) > 10
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_cli_prepare_workers_writes_the_same_files(tmp_path, capsys):
    fasta = tmp_path / "p.fasta"
    fasta.write_text("".join(f">p{i}\n{t}\n" for i, t in enumerate(TEXTS * 3)))
    for workers in ("1", "2"):
        main(["prepare", "--input", str(fasta), "--output", str(tmp_path / workers),
              "--shard-tokens", "500", "--max-len", "64", "--workers", workers])
    one, two = (sorted(p for p in (tmp_path / w).rglob("*") if p.is_file()) for w in "12")
    assert [p.name for p in one] == [p.name for p in two] and len(one) > 2
    for a, b in zip(one, two):
        assert a.read_bytes() == b.read_bytes(), a.name
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--input", str(fasta), "--output", str(tmp_path / "0"), "--workers", "0"])
    assert exit_info.value.code == 2


def test_a_prepared_corpus_gets_the_permissions_of_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o027)  # mkdtemp's staging directory alone would give 0700
    try:
        prepare_corpus(TEXTS[:20], EsmTokenizer(), tmp_path / "corpus", max_len=64)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "corpus").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "corpus" / "index.json").stat().st_mode) == 0o640
