"""Rank body of the 2-process tests in test_distributed.py (spawned, gloo, CPU).

Each rank runs, for DDP and FSDP2: an uninterrupted run; a run killed right
after its step-4 checkpoint (a copy of that checkpoint is kept for the
cross-strategy resumes); and the resumption of the killed run. Then the DDP
checkpoint is resumed under FSDP2, and a packed run (one row per micro-batch,
dealt to the ranks by documents) runs under DDP. Rank 0 writes every history
to results.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

import biofm.train.loop as loop_module
from biofm.config import TrainConfig
from biofm.train import train
from tests.helpers import random_proteins, tiny_model

CONFIG = TrainConfig(max_steps=6, batch_size=7, grad_accum=2, eval_every=3, save_every=2,
                     log_every=1, warmup_steps=2, progress=False, lr=3e-3)
KILL_AT = 4
PACKED = CONFIG.replace(packing=True)


class Killed(Exception):
    pass


def fresh_model():
    torch.manual_seed(0)
    return tiny_model("encoder", "mlm", dropout=0.0)


def data(model):
    seqs = model.encode(random_proteins(60, seed=5))
    return seqs[:48], seqs[48:]


def run(strategy: str, run_dir: Path, resume: bool = False, config: TrainConfig = CONFIG
        ) -> list[dict]:
    model = fresh_model()
    train_ids, valid_ids = data(model)
    result = train(model, train_ids, valid_ids, config.replace(strategy=strategy), run_dir,
                   resume=resume)
    return result.history


def killed(strategy: str, run_dir: Path) -> None:
    real_save = loop_module.save_training_checkpoint

    def save_then_die(*args, **kwargs):
        path = real_save(*args, **kwargs)
        if args[-1].step == KILL_AT:
            raise Killed
        return path

    loop_module.save_training_checkpoint = save_then_die
    try:
        run(strategy, run_dir)
    except Killed:
        pass
    finally:
        loop_module.save_training_checkpoint = real_save
    if dist.get_rank() == 0:  # keep the step-4 checkpoint for the cross-strategy resumes
        shutil.copytree(run_dir, run_dir.with_name(run_dir.name + "-copy"))
    dist.barrier()


def main(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    out_dir, results = Path(out), {}
    try:
        for strategy in ("ddp", "fsdp2"):
            results[f"{strategy}-full"] = run(strategy, out_dir / f"{strategy}-full")
            killed(strategy, out_dir / f"{strategy}-cut")
            results[f"{strategy}-resumed"] = run(strategy, out_dir / f"{strategy}-cut", resume=True)
        results["ddp-to-fsdp2"] = run("fsdp2", out_dir / "ddp-cut-copy", resume=True)
        results["ddp-packed"] = run("ddp", out_dir / "ddp-packed", config=PACKED)
        if rank == 0:
            (out_dir / "results.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()
