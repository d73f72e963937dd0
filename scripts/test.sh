#!/usr/bin/env bash
# Set up ./.venv with the test extras, lint, and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
# The demo's browser test drives Debian's Chromium; install it where we can (root with apt).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
        || echo "warning: could not install chromium; the browser test will fail in CI" >&2
fi
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
