#!/usr/bin/env bash
# Reproduce the results of MODEL_CARD.md: detail and tone of the packaged DarkIR and DarkIR+CSF weights on the real
# pairs (reports/real_tone.txt), then both beside the input, auto-exposure, CLAHE and the official Zero-DCE weights, on
# real images (fetched for evaluation only by scripts/fetch_real_eval.sh into data/real/) and on the held-out synthetic
# night test split.
set -euo pipefail
cd "$(dirname "$0")/.."
darkir=.venv/bin/darkir
python=.venv/bin/python
[ -d data/real/pairs ] || bash scripts/fetch_real_eval.sh
if [ ! -f data/synth-night/synth.json ]; then
    "$darkir" synth --source debian -o data/synth-night --per-photo 24 --size 320 --val-photos 3 --test-photos 6 --seed 0 -q
fi
models=(--weights darkir-w32-synth --weights darkir-csf-w32-synth)
peers=(--zero-dce data/real/zerodce/Epoch99.pth)
# detail and tone of both models pooled over the 8 real pairs (each set's mean weighed equally; tone over all images)
"$python" scripts/score_checkpoints.py --data data/real/pairs --data data/real/lolblur_official \
    darkir-w32-synth darkir-csf-w32-synth --json reports/real_tone.json > reports/real_tone.txt
"$darkir" compare "${models[@]}" "${peers[@]}" --data data/real/pairs -o reports/real_pairs --tile 0 --no-lpips -q
"$darkir" compare "${models[@]}" "${peers[@]}" --data data/real/lolblur_official -o reports/real_lolblur_official \
    --tile 0 --no-lpips -q
"$darkir" compare "${models[@]}" "${peers[@]}" --data data/synth-night/test -o reports/synth_test --no-lpips -q
mkdir -p reports/real_unpaired
for set in lednet_real dicm lime; do
    "$darkir" compare "${models[@]}" "${peers[@]}" --data "data/real/$set" --unpaired -o "reports/real_unpaired/$set" \
        --tile 0 -q
    "$python" scripts/side_by_side.py "data/real/$set" "reports/real_unpaired/$set.jpg" --images 6 \
        --weights darkir-w32-synth --weights darkir-csf-w32-synth --zero-dce data/real/zerodce/Epoch99.pth \
        > "reports/real_unpaired/$set.txt"
done
"$python" scripts/synth_grid.py data/synth-night/test docs/synth_examples.jpg
