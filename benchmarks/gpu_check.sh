#!/usr/bin/env bash
# The GPU check (issue #11 §5) in one command, about 10 minutes on one H100 / H200-class GPU:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: benchmarks/results/gpu
#
# 1. CUDA tests (pytest -m cuda): PyTorch's varlen and flash-attn's varlen kernels (and
#    the grouped SDPA fallback) against per-segment attention in bf16, forward and
#    backward; a packed bf16 model step against the padded one; 50 training steps
#    with compile + gradient checkpointing + packing and no recompilation after
#    warm-up; a one-GPU FSDP2 step against the plain step.
# 2. train_throughput.py and embed_throughput.py at ESM-2 150M and 650M shapes (bf16
#    autocast), JSON written to OUT_DIR, and a summary against the targets:
#    speedup_vs_hf_best >= 2.5 in training, MFU >= 45% at 650M.
#
# GPU_CHECK_DRY_RUN=1 prints the commands without running them (how CI checks this
# script on a CPU). Exit status: 0 when every step ran and every target holds.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
OUT="${1:-benchmarks/results/gpu}"
DRY="${GPU_CHECK_DRY_RUN:-0}"
failed=0

step() {  # step NAME COMMAND...: run (or print), keep the output, remember failures
    local name=$1
    shift
    echo "+ $*"
    [ "$DRY" = 1 ] && return 0
    if ! "$@" 2>&1 | tee "$OUT/$name.txt"; then
        echo "!! $name failed"
        failed=1
    fi
}

if [ "$DRY" != 1 ]; then
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh needs a CUDA GPU')" || exit 2
    mkdir -p "$OUT"
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
fi

step pytest_cuda "$PY" -m pytest -m cuda -q -p no:cacheprovider -rs \
    tests/backbones/test_cuda.py tests/train/test_cuda.py

# (shape, sequences per training step): 32 at 650M keeps five variants' AdamW states
# and padded activations well inside one GPU
for spec in "150m 64" "650m 32"; do
    set -- $spec
    step "train_$1" "$PY" benchmarks/train_throughput.py --shape "$1" --batch-size "$2" \
        --steps 4 --repeats 5 --compile --no-memory --json "$OUT/train_$1.json"
    step "embed_$1" "$PY" benchmarks/embed_throughput.py --shape "$1" --sequences 1024 \
        --repeats 5 --no-memory --json "$OUT/embed_$1.json"
done

echo "+ $PY benchmarks/gpu_summary.py $OUT"
if [ "$DRY" != 1 ]; then
    "$PY" benchmarks/gpu_summary.py "$OUT" | tee "$OUT/summary.txt" || failed=1
fi
exit $failed
