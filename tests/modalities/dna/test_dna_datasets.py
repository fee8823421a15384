"""Packaged DNA corpora and tasks: real sizes, matched background, splits without
near-identical sequences across them; the modality end to end through the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biofm.modalities.dna import group_split, near_identical_groups, reverse_complement
from biofm.modalities.dna.datasets import _crp_table
from biofm.registry import CORPORA, TASKS


def gc(seq: str) -> int:
    return sum(c in "GC" for c in seq)


def assert_no_group_spans_two_splits(splits, min_identity: float) -> None:
    parts = {"train": splits.train, "valid": splits.valid, "test": splits.test}
    texts = [t for p in parts.values() for t in p.inputs]
    side = [name for name, p in parts.items() for _ in p.inputs]
    for group in near_identical_groups(texts, min_identity):
        assert len({side[i] for i in group}) == 1


def test_ecoli_corpus_is_the_whole_chromosome_in_windows():
    records = CORPORA.get("ecoli-k12")()
    assert len(records) == 4_646_332 // 512
    assert records[0].id == "NC_007779.1:1-512" and records[1].id == "NC_007779.1:513-1024"
    assert all(len(r.data) == 512 and set(r.data) <= set("ACGTN") for r in records[:50])


def test_crp_task_sites_vs_gc_matched_background():
    ids, texts, labels = _crp_table()
    labels = np.asarray(labels)
    assert (labels == 1).sum() == 358 and (labels == 0).sum() == 358
    assert all(len(t) == 26 for t in texts)
    sites, background = texts[:358], texts[358:]
    assert [gc(s) for s in sites] == [gc(b) for b in background]  # one matched window per site
    listed = set(sites) | {reverse_complement(s) for s in sites}
    assert not listed & set(background)
    assert ids[0] == "crp_sites.fa:0" and ids[358].startswith("K-12:")
    assert len(set(ids)) == len(ids)


def test_crp_splits_keep_near_identical_sites_together():
    task = TASKS.get("crp-sites")()
    assert task.modality == "dna" and task.kind == "classification"
    splits = task.load(0)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 716
    assert 0.7 < len(splits.train) / 716 < 0.9 and len(splits.valid) > 50 and len(splits.test) > 50
    assert set(np.unique(splits.test.labels)) == {0, 1}
    assert_no_group_spans_two_splits(splits, 0.9)
    again = task.load(0)
    assert again.test.ids == splits.test.ids and task.load(1).test.ids != splits.test.ids


def test_ars_task_is_a_fixed_sample_with_grouped_splits():
    task = TASKS.get("ars-enrichment")()
    assert task.kind == "regression"
    splits = task.load(0)
    all_ids = splits.train.ids + splits.valid.ids + splits.test.ids
    assert len(all_ids) == len(set(all_ids)) == 6000
    assert all(len(t) == 150 for t in splits.test.inputs)
    labels = np.concatenate([splits.train.labels, splits.valid.labels, splits.test.labels])
    assert np.isfinite(labels).all() and labels.std() > 0.5
    assert_no_group_spans_two_splits(splits, 0.98)


def test_near_identical_groups_match_brute_force():
    rng = np.random.default_rng(0)
    base = ["".join(rng.choice(list("ACGT"), size=30)) for _ in range(40)]
    texts = list(base)
    for i in range(0, 40, 4):  # near copies: 1-4 substitutions, some on the other strand
        seq = list(base[i])
        for pos in rng.choice(30, size=int(rng.integers(1, 5)), replace=False):
            seq[pos] = "ACGT"[("ACGT".index(seq[pos]) + 1) % 4]
        texts.append(reverse_complement("".join(seq)) if i % 8 else "".join(seq))
    texts.append("ACGT")  # another length: never linked
    groups = near_identical_groups(texts, min_identity=0.9)  # <= 3 mismatches in 30
    label = {i: g[0] for g in groups for i in g}

    def linked(a: str, b: str) -> bool:
        return len(a) == len(b) and min(sum(x != y for x, y in zip(a, c))
                                        for c in (b, reverse_complement(b))) <= 3
    # single linkage = connected components of the brute-force graph
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(len(texts)):
        for j in range(i):
            if linked(texts[i], texts[j]):
                parent[find(i)] = find(j)
    for i in range(len(texts)):
        for j in range(len(texts)):
            assert (find(i) == find(j)) == (label[i] == label[j])
    assert sum(len(g) > 1 for g in groups) >= 5


def test_group_split_keeps_groups_whole():
    groups = [[i, i + 100] for i in range(100)] + [[200 + i] for i in range(50)]
    parts = group_split(groups, (0.8, 0.1, 0.1), seed=0)
    side = {int(i): k for k, part in enumerate(parts) for i in part}
    assert sorted(side) == sorted(i for g in groups for i in g)
    assert all(side[a] == side[b] for a, b in groups[:100])
    assert abs(len(parts.test) - 25) <= 2


def test_dna_pretraining_end_to_end_through_the_cli(tmp_path: Path):
    from biofm.cli import main
    from biofm.interop import load_pretrained
    from biofm.modalities.dna import DnaBpeTokenizer, embed_dna

    preset = tmp_path / "dna.yaml"
    preset.write_text("data: {modality: dna, input: ecoli-k12, valid_fraction: 0.1}\n"
                      "backbone: {kind: encoder, size: tiny, max_len: 64}\n"
                      "objective: {name: mlm, mask_rate: 0.15}\n"
                      "train: {max_steps: 3, batch_size: 8, lr: 3.0e-3, warmup_steps: 1}\n")
    main(["pretrain", "--config", str(preset), "--tokenizer", "dna-bpe", "--output",
          str(tmp_path / "run"), "--set", "data.max_records=60", "--no-progress"])
    model = load_pretrained(tmp_path / "run" / "final")
    assert isinstance(model.tokenizer, DnaBpeTokenizer) and model.tokenizer.config["merges"]
    vectors = embed_dna(model, ["ACGT" * 100, "TTGACA"])
    assert vectors.shape == (2, 64) and np.isfinite(vectors).all()


def test_fasta_suffixes_shared_with_proteins_are_told_apart_by_content(tmp_path):
    from biofm.commands import modality_of
    from biofm.errors import BiofmError
    from tests.helpers import tiny_model

    prots = tmp_path / "prots.fasta"
    prots.write_text(">p\nMKTAYIAKQRQISFVKSHFSRQ\n")
    genome = tmp_path / "genome.fasta"
    genome.write_text(">g\nACGTTGCAacgtNNNNACGTAGGCTTAACG\n")
    protein, dna, molecule = tiny_model(), tiny_model(), tiny_model()
    dna.config = dna.config.replace(data={"modality": "dna", "input": "ecoli-k12"})
    molecule.config = molecule.config.replace(data={"modality": "molecule", "input": "nci"})
    assert modality_of(protein, prots).name == "protein"
    assert modality_of(protein, "x.fa.gz").name == "protein"
    assert modality_of(dna, genome).name == "dna" and modality_of(dna, "reads.fq.gz").name == "dna"
    for model, path, looks in [(protein, "genome.fna", "dna"), (dna, prots, "protein"),
                               (dna, "prots.faa", "protein"), (molecule, prots, "protein"),
                               (molecule, genome, "dna")]:
        with pytest.raises(BiofmError, match=f"looks like {looks} data"):
            modality_of(model, path)
