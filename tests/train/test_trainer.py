"""The shared optimizer step (`biofm.train.trainer`) and the three paths that use it."""

from pathlib import Path

from dataclasses import fields

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biofm
import biofm.train.trainer as trainer_module
from biofm.adapt import FinetuneConfig, finetune
from biofm.config import TrainConfig
from biofm.data.collate import pad_collate
from biofm.modalities.timeseries.finetune import finetune_forecaster
from biofm.outputs import Batch
from biofm.train import EarlyStopping, FitConfig, Loss, Trainer, fit, train
from biofm.train.distributed import count_targets
from biofm.train.schedule import warmup_cosine
from tests.adapt.test_finetune import _splits
from tests.helpers import random_proteins, tiny_model
from tests.modalities.timeseries.forecaster_helpers import seasonal_series, tiny_forecaster_model

CPU = torch.device("cpu")


class Toy(nn.Module):
    """Embedding → mean over T → LayerNorm → Linear: (B, T) ids → (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.norm = nn.LayerNorm(8)
        self.proj = nn.Linear(8, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(self.embed(ids).mean(1)))[:, 0]


def _toy(seed: int = 0) -> Toy:
    torch.manual_seed(seed)
    return Toy()


def _micro_batches(ids: torch.Tensor, y: torch.Tensor, size: int):
    parts = iter(zip(ids.split(size), y.split(size)))
    return lambda: next(parts)


def _mse(model: nn.Module):
    return lambda batch: Loss(F.mse_loss(model(batch[0]), batch[1]))


def test_two_accumulated_micro_batches_give_the_gradient_of_one_batch():
    generator = torch.Generator().manual_seed(1)
    ids, y = torch.randint(0, 10, (4, 5), generator=generator), torch.randn(4, generator=generator)
    grads, losses = [], []
    for size, accum in ((4, 1), (2, 2)):
        model = _toy()
        trainer = Trainer(model, FitConfig(lr=1e-2, max_steps=1, grad_accum=accum, grad_clip=0),
                          CPU)
        out = trainer.step(_micro_batches(ids, y, size), _mse(model))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        losses.append(out.loss)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)
    assert losses[0].dtype == torch.float64  # a tensor: read only when logged
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    return batch.with_(**{f.name: getattr(batch, f.name)[start:stop] for f in fields(batch)
                          if getattr(batch, f.name) is not None})


@pytest.mark.parametrize("kind,objective", [("encoder", "mlm"), ("decoder", "clm")])
def test_micro_batches_with_unequal_targets_accumulate_to_the_big_batch_gradient(kind, objective):
    """MLM masks a random number of tokens per row and CLM rows differ in length: weighted
    by their targets (`count`), accumulated micro-batches give the token-mean gradient and
    loss of the one batch they were cut from; equal weights would not."""
    model = tiny_model(kind, objective)
    seqs = model.encode(random_proteins(6, seed=3, low=4, high=40))
    batch = model.objective.prepare(pad_collate(seqs, model.tokenizer.pad_id),
                                    torch.Generator().manual_seed(0))
    cuts = [(0, 1), (1, 3), (3, 6)]
    counts = [count_targets(_rows(batch, *cut)) for cut in cuts]
    assert len(set(counts)) == 3 and sum(counts) == count_targets(batch)

    def step(parts: list[Batch], count=None):
        model.zero_grad()
        trainer = Trainer(model, FitConfig(lr=0.0, max_steps=1, grad_accum=len(parts),
                                           grad_clip=0), CPU)
        out = trainer.step(iter(parts).__next__, lambda b: Loss(model(b).loss), count)
        return out.loss, {n: p.grad.clone() for n, p in model.named_parameters()}

    loss, grads = step([batch])
    parts = [_rows(batch, *cut) for cut in cuts]
    accumulated_loss, accumulated = step(parts, count_targets)
    torch.testing.assert_close(accumulated_loss, loss, rtol=1e-6, atol=0)
    for name in grads:
        torch.testing.assert_close(accumulated[name], grads[name], rtol=1e-5, atol=1e-6,
                                   msg=name)
    _, unweighted = step(parts)  # every micro-batch 1/3, whatever its targets
    assert max((unweighted[n] - grads[n]).abs().max() for n in grads) > 1e-3


def test_a_micro_batch_without_targets_takes_no_share_of_the_step():
    model = _toy()
    ids, y = torch.randint(0, 10, (3, 5)), torch.randn(3)
    parts = iter([(ids, y, 3), (ids[:0], y[:0], 0)])  # the second holds no rows
    trainer = Trainer(model, FitConfig(lr=0.0, max_steps=1, grad_accum=2, grad_clip=0), CPU)

    def loss_fn(batch):
        x, target, n = batch
        return Loss(F.mse_loss(model(x), target) if n else model(ids).sum() * 0.0)

    out = trainer.step(parts.__next__, loss_fn, count=lambda batch: batch[2])
    torch.testing.assert_close(out.loss, F.mse_loss(model(ids), y).double().detach())


def test_norms_biases_and_embeddings_get_no_weight_decay():
    model = _toy()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, FitConfig(lr=0.1, max_steps=1, weight_decay=0.5), CPU)
    ids = torch.zeros(2, 3, dtype=torch.long)
    # a zero gradient: AdamW moves a parameter only by its decay, p * (1 - lr * wd)
    trainer.step(lambda: ids, lambda batch: Loss(model(batch).sum() * 0.0))
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["proj.weight"], before["proj.weight"] * 0.95)
    for name in ("embed.weight", "norm.weight", "norm.bias", "proj.bias"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)


def _decay_groups(model) -> tuple[list[str], list[str]]:
    """(names with weight decay, names without) in the trainer's AdamW."""
    names = {id(p): n for n, p in model.named_parameters()}
    trainer = Trainer(model, FitConfig(lr=1e-3, max_steps=1), CPU)
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.01, 0.0]
    decay, no_decay = ([names[id(p)] for p in group["params"]]
                       for group in trainer.optimizer.param_groups)
    return decay, no_decay


def test_foundation_model_parameter_groups():
    decay, no_decay = _decay_groups(tiny_model())
    assert "backbone.embed_tokens.weight" in no_decay
    assert all("norm" in n or "embed" in n or n.endswith("bias") for n in no_decay)
    assert decay and all(n.endswith("weight") and "norm" not in n and "embed" not in n
                         for n in decay)


def test_the_schedule_warms_up_then_decays_and_steps_are_counted():
    model = _toy()
    config = FitConfig(lr=0.1, max_steps=6, warmup_steps=2, min_lr_ratio=0.1)
    trainer = Trainer(model, config, CPU)
    ids, seen = torch.zeros(2, 3, dtype=torch.long), []
    stopped = fit(trainer, lambda: ids, lambda b: Loss(model(b).pow(2).mean()),
                  after_step=lambda out: seen.append((out.step, out.lr)))
    factor = warmup_cosine(2, 6, 0.1)
    assert not stopped and trainer.steps_done == 6
    assert seen == [(k, pytest.approx(0.1 * factor(k))) for k in range(1, 7)]


def test_fit_stops_when_the_hook_says_so():
    model = _toy()
    trainer = Trainer(model, FitConfig(lr=0.1, max_steps=50), CPU)
    ids = torch.zeros(2, 3, dtype=torch.long)
    stopped = fit(trainer, lambda: ids, lambda b: Loss(model(b).pow(2).mean()),
                  after_step=lambda out: out.step == 3)
    assert stopped and trainer.steps_done == 3


def test_early_stopping_counts_evaluations_without_improvement():
    lower = EarlyStopping(patience=2, min_delta=0.01)
    assert [lower.update(x) for x in (1.0, 0.995, 0.9, 0.95)] == [True, False, True, False]
    assert (lower.best, lower.stale, lower.stop) == (0.9, 1, False)
    assert not lower.update(0.9) and lower.stop
    higher = EarlyStopping(patience=1, higher_is_better=True)
    assert higher.update(0.5) and higher.update(0.6) and not higher.update(0.6)
    assert higher.stop
    never = EarlyStopping(patience=0)
    for _ in range(5):
        never.update(1.0)
    assert not never.stop


def test_autocast_follows_the_precision():
    model, seen = _toy(), []
    ids = torch.zeros(2, 3, dtype=torch.long)

    def loss_fn(batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        return Loss(model(batch).float().pow(2).mean())

    for precision in ("bf16", "fp32", "auto"):  # auto is fp32 on a CPU
        Trainer(model, FitConfig(lr=0.1, max_steps=1, precision=precision), CPU).step(
            lambda: ids, loss_fn)
    assert seen == [True, False, False]


def test_the_one_optimizer_step_serves_pretraining_and_both_fine_tunings(tmp_path, monkeypatch):
    source = Path(biofm.__file__).parent
    sites = [p.relative_to(source).as_posix() for p in source.rglob("*.py")
             for line in p.read_text().splitlines() if "optimizer.step()" in line]
    assert sites == ["train/trainer.py"]

    calls: list[int] = []
    real_step = trainer_module.Trainer.step
    monkeypatch.setattr(trainer_module.Trainer, "step",
                        lambda self, *args: calls.append(1) or real_step(self, *args))

    def steps(run) -> int:
        calls.clear()
        run()
        return len(calls)

    model = tiny_model()
    config = TrainConfig(max_steps=3, batch_size=8, eval_every=0, save_every=0, progress=False)
    assert steps(lambda: train(model, model.encode(random_proteins(16)), None, config,
                               tmp_path / "pretrain")) == 3
    # 96 training sequences in batches of 16: 6 steps an epoch
    assert steps(lambda: finetune(tiny_model(), _splits("classification"), "classification",
                                  FinetuneConfig(mode="full", epochs=1, batch_size=16))) == 6
    tiny_forecaster_model("masked-patch").save(tmp_path / "ts")
    assert steps(lambda: finetune_forecaster(tmp_path / "ts", [seasonal_series(60, seed=1)],
                                             mode="lora", steps=2, device="cpu")) == 2


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    from biofm.errors import BiofmError
    from biofm.train.trainer import MetricsLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(BiofmError, match="biofm\\[tensorboard\\]"):
        MetricsLog(tmp_path / "metrics.jsonl", [], tensorboard=True)


def test_vit_patch_projection_decays_and_the_mask_token_does_not():
    """timm / MAE's rule: the patch embedding is a weight matrix like any other (decay);
    embedding tables, norms, biases and the learned mask token are not."""
    from tests.modalities.imaging.conftest import tiny_vit

    decay, no_decay = _decay_groups(tiny_vit())
    assert "backbone.embed_values.weight" in decay
    assert "objective.mask_token" in no_decay and "backbone.embed_tokens.weight" in no_decay
    assert not any("norm" in n for n in decay)


def test_best_epoch_keeps_the_best_weights_and_stops_on_patience():
    """The epoch hook of fine-tuning, pairs and segmentation: a score per epoch, the
    best epoch's weights restored, a stop after `patience` epochs without a better one."""
    from biofm.train.trainer import BestEpoch, StepOutput

    model = nn.Linear(2, 1)
    scores = iter([0.5, 0.2, 0.3, 0.4, 0.1])  # lower is better: epoch 2 is the best
    lines = []
    hook = BestEpoch(model, lambda: {"mse": next(scores), "ci": 0.5}, "mse",
                     higher_is_better=False, patience=2, per_epoch=3, log=lines.append,
                     labels={"mse": "MSE"})
    stops, weights = [], {}
    for step in range(1, 16):
        with torch.no_grad():
            model.weight.fill_(float(step))  # the weights after each step
        out = StepOutput(step=step, loss=torch.tensor(float(step)), lr=0.1,
                         grad_norm=torch.tensor(0.0))
        stops.append(hook(out))
        weights[step] = float(model.weight.detach()[0, 0])
        if stops[-1]:
            break
    assert stops.index(True) == 11  # epochs 3 and 4 were no better than epoch 2
    assert [h["epoch"] for h in hook.history] == [1, 2, 3, 4]
    assert hook.history[0] == {"epoch": 1, "train_loss": 2.0, "valid_mse": 0.5,
                               "valid_ci": 0.5}
    assert lines[1] == "train loss 5.0000, valid MSE 0.2000, ci 0.5000 after epoch 2"
    assert hook.restore() == hook.history and float(model.weight.detach()[0, 0]) == weights[6]


def test_best_epoch_counted_in_steps_with_a_minimum_gain():
    """TransTEE's use: an evaluation every 4 steps of random batches, rows keyed by step,
    and a gain under `min_delta` counts as no gain."""
    from biofm.train.trainer import BestEpoch, StepOutput

    model = nn.Linear(2, 1)
    scores = iter([0.5, 0.49995, 0.4])  # the second is within min_delta of the first
    hook = BestEpoch(model, lambda: {"mse": next(scores)}, "mse", higher_is_better=False,
                     patience=1, per_epoch=4, min_delta=1e-4, count="step")
    step = 0
    while not hook(StepOutput(step=step + 1, loss=torch.tensor(1.0), lr=0.1,
                              grad_norm=torch.tensor(0.0))):
        step += 1
    assert step + 1 == 8  # the step-8 score did not beat step 4's by 1e-4
    assert [h["step"] for h in hook.history] == [4, 8] and "epoch" not in hook.history[0]
