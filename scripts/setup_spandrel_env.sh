#!/usr/bin/env bash
# A second environment for darkir's spandrel integration (the model loader of chaiNNer, ComfyUI and InvokeAI).
# spandrel imports torchvision, and the registry's torchvision wheels only import beside the registry's own torch
# build (torch 2.14.1 with CUDA libraries, several GB), not beside darkir's CPU torch 2.13.0; so this is a separate
# virtual environment (default .venv-spandrel; DARKIR_SPANDREL_VENV to change). Prints its python's path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DARKIR_SPANDREL_VENV:-.venv-spandrel}
if ! "$venv/bin/python" -c "import spandrel, torchvision, darkir" >/dev/null 2>&1; then
    # the interpreter of .venv (Python 3.11 or newer: scripts/setup_env.sh chose it), else python3
    base=python3
    [ -x .venv/bin/python ] && base=.venv/bin/python
    "$base" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 "spandrel>=0.4,<0.5" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -e . >&2
    "$venv/bin/python" -c "import spandrel, torchvision, darkir" >&2
fi
echo "$(pwd)/$venv/bin/python"
