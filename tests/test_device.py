"""Every inference command takes --device; a device that is not there is a clear error."""

from __future__ import annotations

import pytest
import torch

import biofm
from biofm.adapt import FinetuneConfig, finetune
from biofm.device import _probe_seconds, resolve_device, small_model_threads
from biofm.errors import BiofmError
from biofm.registry import TASKS
from biofm.bench.compare import cap_train
from tests.helpers import squeeze

COMMANDS = ("embed", "generate", "score-variants", "evaluate", "predict", "finetune", "compare",
            "forecast")


def test_auto_is_the_cpu_without_a_gpu_and_cuda_without_one_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(BiofmError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(BiofmError, match="unknown device 'tpu7'"):
        resolve_device("tpu7")


def test_a_gpu_index_under_torchrun_is_refused_before_any_rank_starts(monkeypatch, tmp_path):
    """cuda:N would put every rank on GPU N; cuda lets each take GPU LOCAL_RANK."""
    import torch.distributed as dist

    from biofm.config import TrainConfig
    from biofm.train import train
    from tests.helpers import random_proteins, tiny_model

    with pytest.raises(BiofmError, match="every rank on GPU 0"):
        resolve_device("cuda:0", local_rank=1)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BiofmError, match="'cuda:1' under torchrun.*--device cuda"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")
    model = tiny_model()
    config = TrainConfig(device="cuda:0", max_steps=1, batch_size=4, progress=False)
    with pytest.raises(BiofmError, match="every rank on GPU 0"):
        train(model, model.encode(random_proteins(8)), None, config, tmp_path)
    assert not (dist.is_available() and dist.is_initialized())  # refused before joining


@pytest.mark.parametrize("command", COMMANDS)
def test_inference_commands_take_device(cli, command):
    run = cli(command, "--help")
    assert run.code == 0 and "--device" in run.out


def test_load_puts_the_model_on_the_device_in_the_dtype(protein_mlm_run):
    model = biofm.load(protein_mlm_run / "final", device="cpu", dtype=torch.float64)
    assert {p.dtype for p in model.parameters()} == {torch.float64} and not model.training
    assert model.embed(["MKTAYIAK"]).shape == (1, model.config.backbone.d_model)


def test_a_cuda_request_on_a_cpu_machine_is_one_paragraph(cli, protein_mlm_run, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fasta = tmp_path / "p.fasta"
    fasta.write_text(">a\nMKTAYIAK\n")
    run = cli("embed", "--model", protein_mlm_run / "final", "--input", fasta,
              "--output", tmp_path / "e.parquet", "--device", "cuda")
    assert run.code == 2 and "noCUDAGPU" in squeeze(run.err) and "Traceback" not in run.err


def test_the_probe_leaves_the_callers_model_where_it_was(protein_mlm_run):
    model = biofm.load(protein_mlm_run / "final", dtype=torch.float64)
    splits = cap_train(TASKS.get("amp")().load(0), 40, 0)
    finetune(model, splits, "classification", FinetuneConfig(mode="probe", device="cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.float64}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_embeddings_on_the_gpu_match_the_cpu(protein_mlm_run):
    seqs = ["MKTAYIAKQR", "GSHMLEK", "MKVLAAGIVGLL"]
    cpu = biofm.load(protein_mlm_run / "final").embed(seqs)
    gpu = biofm.load(protein_mlm_run / "final", device="cuda").embed(seqs)
    torch.testing.assert_close(torch.as_tensor(gpu), torch.as_tensor(cpu), atol=1e-4, rtol=1e-4)


def test_small_model_threads_picks_a_count_and_restores_it():
    before = torch.get_num_threads()
    with small_model_threads() as chosen:
        assert chosen in {1, before} and torch.get_num_threads() == chosen
    assert torch.get_num_threads() == before


def test_small_model_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), small_model_threads():
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_probe_times_every_count():
    before = torch.get_num_threads()
    try:
        seconds = _probe_seconds((2, 1), width=32, rounds=2)
    finally:
        torch.set_num_threads(before)
    assert set(seconds) == {1, 2} and all(t > 0 for t in seconds.values())


def test_small_model_threads_decides_once_per_process_and_can_be_pinned(monkeypatch):
    import biofm.device as device

    monkeypatch.setattr(device, "_chosen", {})
    probes = []
    real = device._probe_seconds
    monkeypatch.setattr(device, "_probe_seconds",
                        lambda counts, width: probes.append(width) or real(counts, width, 1))
    before = torch.get_num_threads()
    with small_model_threads() as first:
        pass
    with small_model_threads() as second:
        assert second == first  # the same count for every block of a run
    if before > 1:
        assert probes == [128]
        assert device.chosen_small_model_threads() == {f"width 128 of {before} threads": first}
    monkeypatch.setenv("BIOFM_SMALL_MODEL_THREADS", "1")
    with small_model_threads() as pinned:
        assert pinned == 1 and torch.get_num_threads() == 1
    assert device.chosen_small_model_threads() == {"pinned": "1"}
    monkeypatch.setenv("BIOFM_SMALL_MODEL_THREADS", "two")
    with pytest.raises(BiofmError, match="BIOFM_SMALL_MODEL_THREADS='two'"):
        with small_model_threads():
            pass
    assert torch.get_num_threads() == before


def test_bf16_on_a_cpu_without_bf16_units_is_a_warning(monkeypatch, caplog):
    import biofm.device as device

    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: False)
    device._warn_emulated_bf16.cache_clear()
    with caplog.at_level("WARNING", logger="biofm"):
        with device.autocast_context(torch.device("cpu"), "bf16"):
            assert torch.is_autocast_enabled("cpu")
        device.autocast_context(torch.device("cpu"), "bf16")  # once per process
        with device.autocast_context(torch.device("cpu"), "auto"):  # fp32 on a CPU
            assert not torch.is_autocast_enabled("cpu")
    warnings = [r for r in caplog.records if "without bf16 units" in r.message]
    assert len(warnings) == 1 and "precision=fp32" in warnings[0].message
    monkeypatch.setattr(device, "cpu_has_bf16_units", lambda: True)
    device._warn_emulated_bf16.cache_clear()
    caplog.clear()
    device.autocast_context(torch.device("cpu"), "bf16")
    assert not caplog.records
