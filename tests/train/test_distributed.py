"""Data-parallel training in 2 CPU processes (gloo) against one process.

The 2-process runs see the same global batches as one process (each rank its
rows, masking drawn on the whole batch), so the loss curves agree to float
rounding, under DDP and under FSDP2; killed runs resume to the same weights;
a DDP checkpoint resumes under FSDP2 and an FSDP2 checkpoint in one process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import biofm.train.loop as loop_module
from biofm.config import TrainConfig
from biofm.data.shards import prepare_corpus
from biofm.modalities.proteins import EsmTokenizer
from biofm.model import FoundationModel, read_safetensors
from biofm.train import train
from biofm.train.distributed import DistInfo, ParallelModel
from tests.helpers import random_proteins, tiny_model
from tests.train import _distributed_worker as worker


pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _curve(history: list[dict], key: str) -> list[float]:
    return [h[key] for h in history if key in h]


def _weights(run_dir):
    return read_safetensors(run_dir / "step-0000006" / "model.safetensors")


def _assert_weights(a, b, **tolerance):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name, **tolerance)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    mp.spawn(worker.main, args=(_free_port(), str(out)), nprocs=2, join=True)
    model = worker.fresh_model()
    single = train(model, *worker.data(model), worker.CONFIG, out / "single")
    results = json.loads((out / "results.json").read_text())
    model = worker.fresh_model()
    results["single-packed"] = train(model, *worker.data(model), worker.PACKED,
                                     out / "single-packed").history
    return out, results, single.history


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_follow_the_one_process_loss_curve(runs, strategy):
    out, results, single = runs
    history = results[f"{strategy}-full"]
    for key in ("loss", "valid_loss"):
        assert len(_curve(single, key)) == (6 if key == "loss" else 2)
        torch.testing.assert_close(torch.tensor(_curve(history, key)),
                                   torch.tensor(_curve(single, key)), rtol=1e-5, atol=0)
    # same tensors under the same names, whichever strategy wrote the checkpoint
    _assert_weights(_weights(out / f"{strategy}-full"), _weights(out / "single"),
                    rtol=1e-4, atol=1e-5)


def test_packed_runs_follow_the_one_process_loss_curve(runs):
    out, results, _ = runs
    single, history = results["single-packed"], results["ddp-packed"]
    assert len(_curve(single, "loss")) == 6
    for key in ("loss", "valid_loss"):
        torch.testing.assert_close(torch.tensor(_curve(history, key)),
                                   torch.tensor(_curve(single, key)), rtol=1e-5, atol=0)
    # rows of another layout round differently, and Adam's normalised steps turn that
    # rounding in tiny gradients into weight differences of ~1e-5 (one element in 16k)
    _assert_weights(_weights(out / "ddp-packed"), _weights(out / "single-packed"),
                    rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_killed_distributed_run_resumes_to_identical_weights(runs, strategy):
    out, results, _ = runs
    assert _curve(results[f"{strategy}-resumed"], "loss") == _curve(results[f"{strategy}-full"], "loss")
    _assert_weights(_weights(out / f"{strategy}-cut"), _weights(out / f"{strategy}-full"),
                    rtol=0, atol=0)
    assert (out / f"{strategy}-cut" / "final" / "model.safetensors").is_file()


def test_checkpoints_resume_across_strategies(runs):
    out, results, single = runs
    # a DDP checkpoint continued under FSDP2 ...
    torch.testing.assert_close(torch.tensor(_curve(results["ddp-to-fsdp2"], "loss")),
                               torch.tensor(_curve(results["fsdp2-full"], "loss")), rtol=1e-5, atol=0)
    _assert_weights(_weights(out / "ddp-cut-copy"), _weights(out / "fsdp2-full"),
                    rtol=1e-4, atol=1e-5)
    # ... and an FSDP2 checkpoint continued in one process
    model = worker.fresh_model()
    resumed = train(model, *worker.data(model), worker.CONFIG, out / "fsdp2-cut-copy", resume=True)
    torch.testing.assert_close(torch.tensor(_curve(resumed.history, "loss")),
                               torch.tensor(_curve(single, "loss")), rtol=1e-5, atol=0)
    _assert_weights(_weights(out / "fsdp2-cut-copy"), _weights(out / "single"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,objective", [("encoder", "mlm"), ("decoder", "clm")])
@pytest.mark.parametrize("world", [2, 3])
def test_a_packed_micro_batch_is_dealt_to_every_rank_by_documents(kind, objective, world):
    """Packing makes one row per micro-batch by default: each rank gets a row of whole
    documents (not a dummy row), and the ranks' losses weighted by their shares are the
    batch's token-mean loss."""
    model = tiny_model(kind, objective)
    ids = model.encode(random_proteins(64, seed=1))
    plan, collate = loop_module._plan(ids, TrainConfig(packing=True, batch_size=8), model)
    batch = model.objective.prepare(collate([ids[i] for i in plan(0)], model.tokenizer.pad_id),
                                    torch.Generator().manual_seed(0))
    assert batch.input_ids.shape[0] == 1
    parts = [ParallelModel(model, model, "ddp", DistInfo(rank, world), torch.device("cpu"))
             .share(batch) for rank in range(world)]
    assert all(part.input_ids.shape[0] == 1 and weight > 0.2 for part, weight in parts)
    assert sum(weight for _, weight in parts) == pytest.approx(1.0)
    real = batch.attention_mask[0]
    for name in ("input_ids", "labels"):  # every document once, in order, masking kept
        dealt = torch.cat([getattr(part, name)[0] for part, _ in parts])
        assert torch.equal(dealt, getattr(batch, name)[0, real])
    with torch.no_grad():
        loss = sum(weight * model(part).loss for part, weight in parts)
        torch.testing.assert_close(loss, model(batch).loss, rtol=1e-5, atol=0)


def test_torchrun_runs_the_unchanged_cli_with_fsdp2(tmp_path):
    prep, run = tmp_path / "prep", tmp_path / "run"
    prepare_corpus(random_proteins(80, seed=2), EsmTokenizer(), prep, shard_tokens=300, max_len=64,
                   valid_fraction=0.1, meta={"modality": "protein"})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "biofm", "pretrain", "--input", str(prep), "--output", str(run),
               "--steps", "3", "--batch-size", "8", "--set", "backbone.max_len=64",
               "--set", "train.strategy=fsdp2", "--set", "train.eval_every=2", "--no-progress"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: 3 steps") == 1  # rank 0 reports, once
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "valid_loss" in m] == [2, 3]
    assert FoundationModel.load(run / "final").config.train.strategy == "fsdp2"
