import json

import pytest
import torch

import biofm.train.loop as loop_module
from biofm.config import TrainConfig
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.train import train
from biofm.train.checkpoint import latest_checkpoint
from biofm.train.loop import BatchPlan
from biofm.train.schedule import warmup_cosine
from tests.helpers import random_proteins, tiny_model

CONFIG = TrainConfig(max_steps=12, batch_size=8, eval_every=4, save_every=4, log_every=2,
                     warmup_steps=2, progress=False, lr=3e-3)


def _data(model):
    seqs = model.encode(random_proteins(80, seed=5))
    return seqs[:64], seqs[64:]


def _fresh(kind="encoder", objective="mlm"):
    torch.manual_seed(0)
    return tiny_model(kind, objective, dropout=0.1)


class Killed(Exception):
    pass


def _killed_after_saving(monkeypatch, step: int, run) -> None:
    """`run()` dies (Killed) right after the checkpoint of `step` is written."""
    real_save = loop_module.save_training_checkpoint

    def save_then_die(run_dir, model, *args, **kwargs):
        path = real_save(run_dir, model, *args, **kwargs)
        if args[-1].step == step:
            raise Killed
        return path

    monkeypatch.setattr(loop_module, "save_training_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run()
    monkeypatch.undo()


def _without_timing(history):
    return [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in history]


@pytest.mark.parametrize("kind,objective", [("encoder", "mlm"), ("decoder", "clm")])
def test_killed_run_resumes_to_identical_results(tmp_path, monkeypatch, kind, objective):
    model = _fresh(kind, objective)
    train_ids, valid_ids = _data(model)
    full = train(model, train_ids, valid_ids, CONFIG, tmp_path / "full")

    _killed_after_saving(monkeypatch, 8, lambda: train(
        _fresh(kind, objective), train_ids, valid_ids, CONFIG, tmp_path / "cut"))
    resumed = train(_fresh(kind, objective), train_ids, valid_ids, CONFIG, tmp_path / "cut",
                    resume=True)

    assert resumed.steps == full.steps == 12
    assert resumed.final_loss == full.final_loss
    # every logged number but the wall-clock throughput repeats exactly
    assert _without_timing(resumed.history) == _without_timing(full.history)
    assert len(resumed.history) == len(full.history) == 9  # 6 training logs + 3 validations
    a = FoundationModel.load(tmp_path / "full" / "step-0000012")
    b = FoundationModel.load(tmp_path / "cut" / "step-0000012")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_loss_goes_down_and_outputs_are_written(tmp_path):
    model = _fresh()
    train_ids, valid_ids = _data(model)
    result = train(model, train_ids, valid_ids, CONFIG.replace(max_steps=30, lr=5e-3), tmp_path)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < losses[0]
    assert result.best_valid_loss is not None
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "lr", "tokens_per_s", "grad_norm"} <= set(lines[0])
    assert (tmp_path / "final" / "model.safetensors").is_file()
    assert latest_checkpoint(tmp_path).name == "step-0000030"
    assert len(list(tmp_path.glob("step-*"))) == 1  # older checkpoints pruned


def test_early_stopping(tmp_path):
    model = _fresh()
    train_ids, valid_ids = _data(model)
    cfg = CONFIG.replace(max_steps=400, eval_every=1, save_every=0, patience=2, lr=0.5,
                         warmup_steps=0, grad_clip=100.0)
    result = train(model, train_ids, valid_ids, cfg, tmp_path)
    assert result.stopped_early and result.steps < 400


def test_a_run_that_stopped_early_stays_stopped_when_resumed(tmp_path):
    # lr ~0: the validation loss never improves by 1e-6, so patience 1 stops at the second
    # evaluation
    model = _fresh()
    train_ids, valid_ids = _data(model)
    cfg = CONFIG.replace(max_steps=50, eval_every=1, save_every=0, patience=1, lr=1e-12)
    first = train(model, train_ids, valid_ids, cfg, tmp_path)
    assert first.stopped_early and first.steps == 2
    final = (tmp_path / "final" / "model.safetensors").read_bytes()
    metrics = (tmp_path / "metrics.jsonl").read_text()

    resumed = train(_fresh(), train_ids, valid_ids, cfg, tmp_path, resume=True)
    assert resumed.stopped_early and resumed.steps == 2
    assert latest_checkpoint(tmp_path).name == "step-0000002"
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    assert (tmp_path / "final" / "model.safetensors").read_bytes() == final


def test_a_resume_between_logs_logs_the_uninterrupted_loss(tmp_path, monkeypatch):
    """Checkpoints at steps 2 and 4, loss records at 3 and 6: the step-4 checkpoint holds
    step 4's loss, which the record at step 6 averages with steps 5 and 6."""
    model = _fresh()
    train_ids, _ = _data(model)
    cfg = CONFIG.replace(max_steps=6, log_every=3, save_every=2, eval_every=0)
    full = train(model, train_ids, None, cfg, tmp_path / "full")
    _killed_after_saving(monkeypatch, 4,
                         lambda: train(_fresh(), train_ids, None, cfg, tmp_path / "cut"))
    resumed = train(_fresh(), train_ids, None, cfg, tmp_path / "cut", resume=True)

    def logged(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return _without_timing([json.loads(line) for line in lines])

    assert [h["step"] for h in logged(tmp_path / "full")] == [3, 6]
    assert logged(tmp_path / "cut") == logged(tmp_path / "full")
    assert resumed.final_loss == full.final_loss


def test_gradient_accumulation_matches_a_big_batch(tmp_path, monkeypatch):
    # CLM on equal-length sequences: every micro-batch predicts the same number of
    # tokens, so 2 x 8 accumulated equals one batch of 16 up to float rounding
    seqs = random_proteins(32, seed=9, low=20, high=21)

    class FixedPlan:
        def __init__(self, lengths, batch_size, seed):
            self.batch_size = batch_size

        def __call__(self, k):
            return list(range(k * self.batch_size, (k + 1) * self.batch_size))

    monkeypatch.setattr(loop_module, "BatchPlan", FixedPlan)
    models = []
    for batch_size, accum in ((16, 1), (8, 2)):
        torch.manual_seed(0)
        model = tiny_model("decoder", "clm")  # no dropout: its RNG use depends on batch shape
        cfg = CONFIG.replace(max_steps=2, batch_size=batch_size, grad_accum=accum,
                             eval_every=0, save_every=0)
        train(model, model.encode(seqs), None, cfg, tmp_path / str(accum))
        models.append(model)
    torch.manual_seed(0)
    untrained = tiny_model("decoder", "clm")
    for (name, p), q, p0 in zip(models[0].state_dict().items(), models[1].state_dict().values(),
                                untrained.state_dict().values()):
        torch.testing.assert_close(p, q, atol=2e-6, rtol=1e-5, msg=name)
    assert not torch.equal(models[0].backbone.embed_tokens.weight,
                           untrained.backbone.embed_tokens.weight)


def test_batch_plan_is_deterministic_and_covers_an_epoch():
    lengths = list(range(5, 105))
    a, b = BatchPlan(lengths, 10, seed=1), BatchPlan(lengths, 10, seed=1)
    epoch = [a(k) for k in range(10)]
    assert all((x == b(k)).all() for k, x in enumerate(epoch))
    assert sorted(int(i) for batch in epoch for i in batch) == list(range(100))
    assert any((x != y).any() for x, y in zip(epoch, [a(k) for k in range(10, 20)]))


def test_warmup_then_cosine():
    f = warmup_cosine(10, 110, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)


def test_truncated_training_state_is_a_clear_error(tmp_path):
    model = _fresh()
    train_ids, valid_ids = _data(model)
    train(model, train_ids, None, CONFIG.replace(max_steps=4), tmp_path)
    state = latest_checkpoint(tmp_path) / "train_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(BiofmError, match="train_state.pt.*unreadable"):
        train(_fresh(), train_ids, None, CONFIG.replace(max_steps=8), tmp_path, resume=True)


def test_compile_gradient_checkpointing_and_bf16_switches(tmp_path, monkeypatch):
    # inductor (compile's default backend) spends a minute building C++ on a CPU;
    # aot_eager traces the same forward and backward graphs in a second
    real_compile = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: real_compile(self, backend="aot_eager"))
    seqs = random_proteins(40, seed=1)
    runs = []

    def losses(config=CONFIG, **backbone):
        torch.manual_seed(0)
        model = tiny_model(**backbone)
        runs.append(model)
        cfg = config.replace(max_steps=3, log_every=1, eval_every=0, save_every=0)
        result = train(model, model.encode(seqs), None, cfg, tmp_path / str(len(runs)))
        return [h["loss"] for h in result.history]

    plain = losses()
    compiled = losses(CONFIG.replace(compile=True))
    assert all(block._compiled_call_impl is not None for block in runs[-1].backbone.layers)
    torch.testing.assert_close(compiled, plain, rtol=1e-5, atol=0)
    assert FoundationModel.load(tmp_path / "2" / "final").state_dict().keys() == \
        runs[0].state_dict().keys()  # compiled blocks save under the usual names
    assert losses(gradient_checkpointing=True) == plain  # recomputation repeats the same ops
    torch.testing.assert_close(losses(CONFIG.replace(precision="bf16")), plain, rtol=5e-2, atol=0)
    torch._dynamo.reset()


def test_prefetching_thread_gives_the_same_run_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    """num_workers > 0 collates and masks ahead on a thread: the same batches, the same
    numbers, and a checkpoint holds the masking state of the batches consumed, not of
    those made ahead."""
    model = _fresh()
    train_ids, valid_ids = _data(model)
    plain = train(model, train_ids, valid_ids, CONFIG, tmp_path / "plain")
    ahead = CONFIG.replace(num_workers=2)

    _killed_after_saving(monkeypatch, 8, lambda: train(
        _fresh(), train_ids, valid_ids, ahead, tmp_path / "cut"))
    resumed = train(_fresh(), train_ids, valid_ids, ahead, tmp_path / "cut", resume=True)
    assert _without_timing(resumed.history) == _without_timing(plain.history)
    a = FoundationModel.load(tmp_path / "plain" / "step-0000012")
    b = FoundationModel.load(tmp_path / "cut" / "step-0000012")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


def test_micro_batches_come_in_order_and_errors_reach_the_consumer():
    made = []

    def make(k):
        if k == 7:
            raise ValueError("bad record 7")
        made.append(k)
        return k * 10

    batches = loop_module.MicroBatches(make, 3, depth=2)
    assert [next(batches) for _ in range(4)] == [30, 40, 50, 60]
    with pytest.raises(ValueError, match="bad record 7"):
        next(batches)
    batches.close()
    inline = loop_module.MicroBatches(make, 0, depth=0)
    assert [next(inline) for _ in range(3)] == [0, 10, 20]


def test_packing_keeps_the_batch_size_asked_for():
    model = tiny_model()
    lengths = [len(s) for s in model.encode(random_proteins(200, seed=1))]
    cfg = CONFIG.replace(packing=True, batch_size=8)
    plan, _ = loop_module._plan(model.encode(random_proteins(200, seed=1)), cfg, model)
    assert plan.tokens == loop_module.default_token_budget(lengths, 8)
    sizes = [len(plan(k)) for k in range(plan.per_epoch - 1)]
    assert 6.5 < sum(sizes) / len(sizes) <= 8  # about batch_size sequences, not 64 x max_len
