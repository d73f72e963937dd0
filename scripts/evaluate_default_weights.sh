#!/usr/bin/env bash
# Reproduce the figures of MODEL_CARD.md: compare the packaged DarkIR and DarkIR+CSF weights, beside the
# input and auto-exposure baselines, on the held-out synthetic test split and on the real pairs of ../shared/sanity.
set -euo pipefail
cd "$(dirname "$0")/.."
darkir=.venv/bin/darkir
mkdir -p data/sanity/low data/sanity/high
for name in lolv2real_00733 lolv2synth_r13073518t; do
    cp ../shared/sanity/${name}_low.png data/sanity/low/$name.png
    cp ../shared/sanity/${name}_high.png data/sanity/high/$name.png
done
"$darkir" compare --weights darkir-w32-synth --weights darkir-csf-w32-synth --data data/synth/test \
    -o reports/synth_test --device cpu --no-lpips -q
"$darkir" compare --weights darkir-w32-synth --weights darkir-csf-w32-synth --data data/sanity \
    -o reports/sanity --device cpu --no-lpips -q
.venv/bin/python scripts/synth_grid.py data/synth/test docs/synth_examples.jpg
