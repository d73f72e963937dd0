#!/usr/bin/env bash
# Create ./.venv (if missing) and install darkir into it with the given extras, e.g. `scripts/setup_env.sh dev,video`.
# torch is installed first from $DARKIR_TORCH (default "torch==2.13.0"), so that pip keeps a CPU build where the index
# offers one (a local wheelhouse; PyPI's Linux builds bring CUDA libraries): for PyTorch's CPU build, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu DARKIR_TORCH=torch==2.13.0+cpu; DARKIR_TORCH=torch lets
# pip choose your platform's default.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    # $PYTHON, else the first of these that is Python 3.11 or newer (python3 is 3.10 on Ubuntu 22.04, say)
    python_bin=""
    if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3 python3.14 python3.13 python3.12 python3.11); fi
    for candidate in "${candidates[@]}"; do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python_bin=$candidate
            break
        fi
    done
    if [ -z "$python_bin" ]; then
        found=$("${PYTHON:-python3}" -c 'import sys; print("Python", sys.version.split()[0])' 2>/dev/null || echo "not found")
        echo "error: darkir needs Python 3.11 or newer: ${PYTHON:-python3} is $found; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    "$python_bin" -m venv .venv || {
        echo "error: $python_bin cannot make a virtual environment (on Debian and Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet "${DARKIR_TORCH:-torch==2.13.0}"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install --quiet -e "$spec"
