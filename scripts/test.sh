#!/usr/bin/env bash
# Set up ./.venv with the test extras, lint, and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
# The demo's browser test drives Debian's Chromium, and the corpus test checks the Debian photo corpus against
# its packages; install both where we can (root with apt).
corpus="plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 opencv-doc"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    missing=""
    for package in $corpus; do dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; done
    if ! command -v chromium >/dev/null || [ -n "$missing" ]; then
        apt-get update -qq >/dev/null || true
    fi
    if ! command -v chromium >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
            || echo "warning: could not install chromium; the browser test will fail in CI" >&2
    fi
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
            || echo "warning: could not install$missing; the corpus test will fail in CI" >&2
    fi
fi
# The spandrel integration is tested in a second environment (spandrel's torchvision needs its own torch build).
if spandrel_python=$(bash scripts/setup_spandrel_env.sh); then
    export DARKIR_SPANDREL_PYTHON=$spandrel_python
else
    echo "warning: could not set up the spandrel environment; its test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
