#!/usr/bin/env bash
# Wheels of the packages biofm's GPU check imports that the lent GPU machine's Python
# lacks, for that machine (CPython 3.12, manylinux x86-64), into .whl/ (git-ignored):
#
#   bash benchmarks/gpu_wheels.sh            # where pip can reach PyPI; then carry .whl
#
# gpu_check.sh installs whatever .whl/ holds before it runs. The versions are this
# checkout's .venv's (so the GPU runs the code the tests passed with), else the newest.
# The list: what `import biofm` and the CUDA tests load beyond the machine's image
# (torch, transformers, safetensors, tokenizers, peft, numpy, pandas, scikit-learn,
# pyyaml, rich, typer, pytest are there; see /work/.library/device/KINDS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="${GPU_WHEELS:-pydantic pydantic_core annotated-types typing-inspection rdkit}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=$(command -v python3)
mkdir -p .whl
specs=()
for name in $PACKAGES; do
    version=$("$PY" -m pip show "$name" 2> /dev/null | sed -n 's/^Version: //p' || true)
    specs+=("$name${version:+==$version}")
done
echo "+ pip download ${specs[*]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${specs[@]}"
ls -l .whl
