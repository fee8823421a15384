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
# OUT_DIR receives six files: gpu_check.log (every step's output, nvidia-smi first,
# the summary last) and the four JSON files. Each step has a time limit
# (GPU_CHECK_STEP_LIMIT seconds, default 150; twice that for the tests), so one slow
# step leaves time for the rest, and what ran is on disk when a step is cut.
#
# Without biofm installed (a bare GPU machine) it runs from src/ with PYTHONPATH; the
# packages that machine lacks can travel as wheels in .whl/ (benchmarks/gpu_wheels.sh
# downloads them), installed here into a scratch folder. Python: $PYTHON, else
# .venv/bin/python, else python3.
#
# GPU_CHECK_DRY_RUN=1 prints the commands without running them (how CI checks this
# script on a CPU). Exit status: 0 when every step ran and every target holds.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=$(command -v python3 || command -v python)
OUT="${1:-benchmarks/results/gpu}"
DRY="${GPU_CHECK_DRY_RUN:-0}"
LIMIT="${GPU_CHECK_STEP_LIMIT:-150}"
LOG="$OUT/gpu_check.log"
failed=0

step() {  # step NAME SECONDS COMMAND...: run (or print) under a time limit, log, remember failures
    local name=$1 seconds=$2
    shift 2
    echo "+ $*"
    [ "$DRY" = 1 ] && return 0
    echo "== $name (at most $seconds s): $*" >> "$LOG"
    if ! timeout "$seconds" "$@" 2>&1 | tee -a "$LOG"; then
        echo "!! $name failed (or ran past $seconds s)" | tee -a "$LOG"
        failed=1
    fi
}

if [ "$DRY" != 1 ]; then
    mkdir -p "$OUT"
    : > "$LOG"
    if ls .whl/*.whl > /dev/null 2>&1; then  # packages the GPU machine lacks, carried as wheels
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/biofm-site .whl/*.whl >> "$LOG" 2>&1 || echo "!! wheel install failed" >> "$LOG"
        export PYTHONPATH="/tmp/biofm-site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "$PY" -c "import biofm" 2> /dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    if ! "$PY" -c "import biofm.model, biofm.train.trainer, transformers, pytest" >> "$LOG" 2>&1; then
        echo "gpu_check.sh: biofm does not import with $PY (see $LOG); on a bare GPU machine run" \
             "bash benchmarks/gpu_wheels.sh where pip works and carry .whl" | tee -a "$LOG"
        exit 2
    fi
    if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check.sh needs a CUDA GPU: torch sees none" | tee -a "$LOG"
        exit 2
    fi
    nvidia-smi >> "$LOG" 2>&1 || true
fi

step pytest_cuda $((2 * LIMIT)) "$PY" -m pytest -m cuda -q -p no:cacheprovider -rs \
    tests/backbones/test_cuda.py tests/train/test_cuda.py

# (shape, sequences per training step): 32 at 650M keeps five variants' AdamW states
# and padded activations well inside one GPU
for spec in "150m 64" "650m 32"; do
    set -- $spec
    step "train_$1" "$LIMIT" "$PY" benchmarks/train_throughput.py --shape "$1" --batch-size "$2" \
        --steps 4 --repeats 5 --compile --no-memory --json "$OUT/train_$1.json"
    step "embed_$1" "$LIMIT" "$PY" benchmarks/embed_throughput.py --shape "$1" --sequences 1024 \
        --repeats 5 --no-memory --json "$OUT/embed_$1.json"
done

echo "+ $PY benchmarks/gpu_summary.py $OUT"
if [ "$DRY" != 1 ]; then
    "$PY" benchmarks/gpu_summary.py "$OUT" 2>&1 | tee -a "$LOG" || failed=1
fi
exit $failed
