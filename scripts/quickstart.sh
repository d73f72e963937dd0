#!/usr/bin/env bash
# Set up ./.venv, restore the bundled example photos with the default weights into ./results/examples,
# then serve the web demo on http://127.0.0.1:7860 (Ctrl-C stops it; DARKIR_NO_DEMO=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh video,demo
.venv/bin/darkir restore --examples -o results/examples --overwrite
echo "restored examples: $(pwd)/results/examples"
if [ -z "${DARKIR_NO_DEMO:-}" ]; then
    echo "starting the demo on http://127.0.0.1:7860 (Ctrl-C to stop)"
    exec .venv/bin/darkir demo
fi
