"""The benchmark scripts run end to end at a tiny size and report the keys the README
documents; gpu_check.sh passes its syntax check and its dry run lists every step.
No timings are asserted (the machine is shared)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def _run(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *args,
                           "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_train_benchmark_reports_separated_figures(tmp_path):
    figures = _run("train_throughput", "--steps", "1", "--repeats", "1", "--batch-size", "2",
                   "--device", "cpu", tmp_path=tmp_path)
    for key in ("speedup_vs_hf_best", "speedup_implementation_only", "speedup_packing",
                "speedup_vs_hf_sdpa"):
        assert set(figures[key]) == {"median", "q1", "q3"}, key
    assert set(figures["tokens_per_s"]) == {"biofm", "biofm_padded", "hf_grouped", "hf_sdpa"}
    assert figures["hf_best_variant"] == "hf_grouped" and "hf_flat" in figures["unsupported"]
    assert set(figures["cpu_mfu"]) == set(figures["tokens_per_s"])
    assert figures["real_token_fraction"] == 1.0
    assert 0 < figures["real_token_fraction_by_variant"]["hf_sdpa"] <= 1
    losses = list(figures["loss_check"].values())  # the same masked tokens, the same weights
    assert max(losses) - min(losses) < 1e-4
    assert set(figures["peak_memory_bytes"]) == set(figures["tokens_per_s"])
    for spent in figures["time_by_op_class"].values():  # biofm and hf_grouped, profiled
        assert spent["matmul"] > 0 and spent["attention"] > 0
        assert spent["total"] == pytest.approx(spent["matmul"] + spent["attention"]
                                               + spent["other"])
    assert set(figures["time_by_op_class"]) == {"biofm", "hf_grouped"}
    assert len(figures["commit"]) == 40 and figures["date"] and figures["machine"]


def test_train_benchmark_in_bf16_on_the_cpu_also_times_hf_in_fp32(tmp_path):
    """--precision bf16: every variant under bf16 autocast, and transformers also in
    fp32 (its faster precision on many CPUs) as a best-practice candidate."""
    figures = _run("train_throughput", "--steps", "1", "--repeats", "1", "--batch-size", "2",
                   "--device", "cpu", "--precision", "bf16", "--no-memory", "--no-profile",
                   tmp_path=tmp_path)
    assert set(figures["tokens_per_s"]) == {"biofm", "biofm_padded", "hf_grouped",
                                            "hf_grouped_fp32", "hf_sdpa"}
    assert figures["hf_best_variant"] in ("hf_grouped", "hf_grouped_fp32")
    assert figures["dtype"] == "bf16 autocast" and figures["args"]["precision"] == "bf16"
    losses = figures["loss_check"]
    assert abs(losses["biofm"] - losses["hf_grouped_fp32"]) < 5e-2  # bf16 rounding only


def test_embed_benchmark_reports_equal_outputs(tmp_path):
    figures = _run("embed_throughput", "--sequences", "6", "--repeats", "1", "--no-memory",
                   "--device", "cpu", tmp_path=tmp_path)
    assert set(figures["tokens_per_s"]) == {"biofm", "biofm_padded", "hf_best", "hf_sdpa"}
    assert figures["equal_outputs"] and figures["max_abs_difference_vs_hf_best"]["biofm"] < 1e-4
    assert set(figures["speedup_vs_hf_best"]) == {"median", "q1", "q3"}
    assert "speedup_implementation_only" in figures and "cpu_mfu" in figures
    assert set(figures["time_by_op_class"]) == {"biofm", "hf_best"}
    assert all(spent["matmul"] > 0 for spent in figures["time_by_op_class"].values())


def test_generate_benchmark_draws_the_same_samples(tmp_path):
    figures = _run("generate_throughput", "--samples", "2", "--batch-size", "2",
                   "--new-tokens", "8", "--repeats", "1", tmp_path=tmp_path)
    assert figures["same_samples"] and figures["sample_length"] == 8
    assert set(figures["speedup_cache"]) == {"median", "q1", "q3"}


def test_attention_kernel_benchmark_compares_equal_kernels(tmp_path):
    from biofm.backbones import native

    if native.library() is None:
        pytest.skip(f"biofm's CPU kernel is not built here: {native.unavailable_reason()}")
    figures = _run("attention_kernel", "--documents", "2", "--lengths", "9", "--calls", "1",
                   "--repeats", "1", tmp_path=tmp_path)
    assert set(figures["workloads"]) == {"step", "one_9"}
    for w in figures["workloads"].values():
        assert w["max_abs_difference"] < 1e-4
        assert set(w["speedup_forward"]) == set(w["speedup_forward_backward"]) \
            == {"median", "q1", "q3"}
        assert set(w["ms_per_call"]) == {"biofm_forward", "biofm_backward", "torch_forward",
                                         "torch_backward"}


def test_prepare_benchmark_writes_identical_files(tmp_path):
    figures = _run("prepare_throughput", "--sequences", "300", "--repeats", "1",
                   tmp_path=tmp_path)
    assert figures["identical_output"]
    assert set(figures["residues_per_s"]) == {"workers_1", "workers_2"}


def test_gpu_check_parses_and_its_dry_run_lists_every_step():
    script = BENCHMARKS / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_wheels.sh")]).returncode == 0
    proc = subprocess.run(["bash", str(script), "/tmp/unused"], capture_output=True, text=True,
                          env={**os.environ, "GPU_CHECK_DRY_RUN": "1"}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any("pytest -m cuda" in line for line in lines)
    for shape in ("150m", "650m"):
        for bench in ("train", "embed"):
            assert any(f"{bench}_throughput.py --shape {shape}" in line for line in lines)
    assert lines[-1].endswith("gpu_summary.py /tmp/unused")


def test_gpu_check_without_a_gpu_says_so_in_its_log(tmp_path):
    """The real (not dry) run on a CPU machine: biofm imports, then a clear refusal,
    written to the log that comes back from a GPU machine."""
    if subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available()"]
                      ).returncode == 0:
        pytest.skip("a GPU is here: the real check would run")
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in (tmp_path / "gpu_check.log").read_text()


@pytest.mark.parametrize("speedup,mfu,ok", [(2.7, 0.5, True), (2.0, 0.5, False),
                                            (2.7, 0.3, False)])
def test_gpu_summary_checks_the_targets(tmp_path, speedup, mfu, ok):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_summary
    finally:
        sys.path.remove(str(BENCHMARKS))
    for name in gpu_summary.RUNS:
        figures = {"speedup_vs_hf_best": {"median": speedup},
                   "speedup_implementation_only": {"median": 1.5},
                   "hf_best_variant": "hf_grouped", "mfu": {"biofm": mfu, "hf_grouped": 0.3}}
        (tmp_path / f"{name}.json").write_text(json.dumps(figures))
    lines, passed = gpu_summary.summarise(tmp_path)
    assert passed is ok and len([x for x in lines if not x.startswith(" ")]) == 4
    (tmp_path / "train_650m.json").unlink()
    assert not gpu_summary.summarise(tmp_path)[1]


def test_profile_classes_cpu_ops_and_cuda_kernels():
    """The profiled split names CPU aten ops and CUDA kernels alike (a GPU profile
    lists kernels, not aten ops)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from common import op_class
    finally:
        sys.path.remove(str(BENCHMARKS))
    for name in ("aten::_scaled_dot_product_flash_attention_for_cpu", "biofm_attention_backward",
                 "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64> >",
                 "fmha_cutlassF_bf16_aligned_64x64_rf_sm80"):
        assert op_class(name) == "attention", name
    for name in ("aten::addmm", "aten::mm", "sm90_xmma_gemm_bf16bf16_bf16f32",
                 "cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm>"):
        assert op_class(name) == "matmul", name
    for name in ("aten::gelu", "aten::native_layer_norm", "void at::native::elementwise_kernel"):
        assert op_class(name) == "other", name
