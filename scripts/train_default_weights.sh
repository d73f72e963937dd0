#!/usr/bin/env bash
# Reproduce the packaged default weights end to end: synthesize the data from the Debian photo corpus,
# train DarkIR and DarkIR+CSF (width 32) side by side with one CPU thread each (same data, recipe, seed),
# resuming from runs/ if interrupted, then export the best checkpoints into src/darkir/weights/.
# Needs: apt-get install plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04
set -euo pipefail
cd "$(dirname "$0")/.."
darkir=.venv/bin/darkir
[ -x "$darkir" ] || bash scripts/setup_env.sh
if [ ! -f data/synth/synth.json ]; then
    "$darkir" synth --source debian -o data/synth --per-photo 24 --size 384 --val-photos 3 --test-photos 6 --seed 0
fi
mkdir -p runs
pids=()
for pair in synth_w32:darkir-w32-synth synth_csf_w32:darkir-csf-w32-synth; do
    variant=${pair%%:*} name=${pair##*:}
    resume=()
    [ -f "runs/$name/last.pt" ] && resume=(--resume)
    OMP_NUM_THREADS=1 "$darkir" train -p "options/train/$variant.yml" "${resume[@]}" -q > "runs/$name.out" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
for name in darkir-w32-synth darkir-csf-w32-synth; do
    "$darkir" convert "runs/$name/best.pt" -o "src/darkir/weights/$name.safetensors"
done
