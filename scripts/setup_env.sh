#!/usr/bin/env bash
# Create ./.venv (if missing) and install darkir into it with the given extras, e.g. `scripts/setup_env.sh dev,video`.
# torch is installed first from $DARKIR_TORCH (default "torch==2.13.0"), so that pip keeps a CPU build where the index
# offers one (a local wheelhouse; PyPI's Linux builds bring CUDA libraries): for PyTorch's CPU build, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu DARKIR_TORCH=torch==2.13.0+cpu; DARKIR_TORCH=torch lets
# pip choose your platform's default.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet "${DARKIR_TORCH:-torch==2.13.0}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet -e "$spec"
