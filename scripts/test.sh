#!/usr/bin/env bash
# Set up ./.venv with the test extras, lint, and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
