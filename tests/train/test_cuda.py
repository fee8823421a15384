"""Training on a GPU (`pytest -m cuda`; skipped without one): compile + gradient
checkpointing + packing for 50 steps without recompiling, and a one-GPU FSDP2 step."""

import copy
import socket

import pytest
import torch
import torch.distributed as dist

import biofm.train.loop as loop_module
from biofm.config import TrainConfig
from biofm.data.collate import pad_collate
from biofm.train import FitConfig, Loss, Trainer, train
from biofm.train.distributed import wrap_model
from tests.helpers import random_proteins, tiny_model

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_fifty_packed_compiled_checkpointed_steps_do_not_recompile(tmp_path, monkeypatch):
    """train.compile (inductor) + gradient checkpointing + packing: every packed
    layout differs, yet after the first steps nothing compiles again."""
    from torch._inductor.compile_fx import compile_fx

    compiles: list[int] = []  # one entry per graph dynamo hands to inductor
    per_step: list[int] = []

    def counting_inductor(gm, example_inputs):
        compiles.append(len(gm.graph.nodes))
        return compile_fx(gm, example_inputs)

    real_compile = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: real_compile(self, backend=counting_inductor))
    real_after_step = loop_module._Run._after_step
    monkeypatch.setattr(loop_module._Run, "_after_step",
                        lambda self, out: per_step.append(len(compiles)) or
                        real_after_step(self, out))
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = tiny_model(gradient_checkpointing=True)
    data = model.encode(random_proteins(3000, seed=0))
    config = TrainConfig(max_steps=50, batch_size=16, packing=True, compile=True,
                         precision="bf16", device="cuda", num_workers=1, eval_every=0,
                         save_every=0, log_every=10, progress=False, lr=2e-3, warmup_steps=5)
    result = train(model, data, None, config, tmp_path)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert result.steps == 50 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert per_step[5] > 0, "nothing was compiled"
    assert per_step[-1] == per_step[5], f"recompiled after step 5: graphs per step {per_step}"
    torch._dynamo.reset()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_gpu_fsdp2_step_matches_the_plain_step(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        device = torch.device("cuda", 0)
        torch.manual_seed(0)
        plain = tiny_model().to(device)
        sharded = wrap_model(copy.deepcopy(plain), "fsdp2", device)
        seqs = plain.encode(random_proteins(16, seed=1))
        batch = plain.objective.prepare(pad_collate(seqs, 1), torch.Generator().manual_seed(0))
        losses = []
        for model in (plain, sharded):
            trainer = Trainer(model, FitConfig(lr=1e-3, max_steps=1, precision="bf16"), device)
            out = trainer.step(lambda: batch.to(device), lambda b: Loss(model(b).loss))
            losses.append(out.loss)
        torch.testing.assert_close(losses[1], losses[0], atol=1e-3, rtol=1e-3)
        for (name, p), q in zip(plain.named_parameters(), sharded.parameters()):
            full = q.full_tensor() if hasattr(q, "full_tensor") else q
            torch.testing.assert_close(full, p, atol=1e-3, rtol=1e-3, msg=name)
    finally:
        dist.destroy_process_group()
