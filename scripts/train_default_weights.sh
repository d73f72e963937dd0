#!/usr/bin/env bash
# Reproduce the packaged default weights: DarkIR and DarkIR+CSF (width 32), same data, recipe, budget and seed.
#
# Stage 1 (darkir 0.1): 1344 steps each on a fixed `darkir synth` set; its weights are the files shipped at commit
#   cb20106 (reproduce them with that commit's scripts/train_default_weights.sh). They are taken from git history.
# Stage 2 (this recipe): 1600 steps each continuing stage 1 on night pairs degraded on the fly from the Debian photo
#   corpus (options/train/night_w32.yml, night_csf_w32.yml), side by side with one CPU thread each. The step-600
#   snapshots, chosen on real pairs (scripts/score_checkpoints.py, never trained on them), start stage 3.
# Stage 3 (needs a CUDA GPU): 1648 steps each at 256x256, both side by side (scripts/train_gpu_weights.py, options/
#   train/night_gpu_*.yml); its step-329 snapshots, chosen on real pairs, are the shipped DarkIR and start stage 4.
# Stage 4 (a CUDA GPU): 632 steps each from stage 3 under two milder camera-noise recipes, all four runs side by side;
#   the shipped DarkIR+CSF is the "mild" run's best-by-synthetic-validation checkpoint (step 237), the best of all
#   snapshots on real pairs. No DarkIR snapshot beat stage 3 there, so DarkIR keeps stage 3.
# This script runs stage 2 and prints the commands of stages 3 and 4; see reports/training/checkpoint_selection.md
#   and MODEL_CARD.md.
# Needs: apt-get install plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 \
#   opencv-doc
# Resumes from runs/ if interrupted (Ctrl-C saves).
set -euo pipefail
cd "$(dirname "$0")/.."
darkir=.venv/bin/darkir
[ -x "$darkir" ] || bash scripts/setup_env.sh
mkdir -p runs/stage1
pids=()
for pair in w32:darkir-w32-synth csf_w32:darkir-csf-w32-synth; do
    variant=${pair%%:*} stage1=${pair##*:}
    name=${stage1%-synth}-night
    [ -f "runs/stage1/$stage1.safetensors" ] \
        || git show "cb20106:src/darkir/weights/$stage1.safetensors" > "runs/stage1/$stage1.safetensors"
    if [ -f "runs/$name/last.pt" ]; then
        start=(--resume)
    else
        start=(--init-from "runs/stage1/$stage1.safetensors")
    fi
    OMP_NUM_THREADS=1 "$darkir" train -p "options/train/night_$variant.yml" "${start[@]}" -q > "runs/$name.out" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
echo "choose the checkpoint on real pairs, e.g.:"
echo "  .venv/bin/python scripts/score_checkpoints.py --data data/real/pairs --data data/real/lolblur_official runs/*-night/*.pt"
echo "stage 3, on a machine with a CUDA GPU (the stage-2 step-600 snapshots as --init-*):"
echo "  .venv/bin/python scripts/train_gpu_weights.py --steps 1648 --minutes 30 \\"
echo "      --init-w32 runs/darkir-w32-night/last_step000600.pt --init-csf-w32 runs/darkir-csf-w32-night/last_step000600.pt \\"
echo "      --real data/real/pairs --real data/real/lolblur_official --out runs/gpu/out"
echo "stage 4, on the same GPU machine (the chosen stage-3 weights as --init-*):"
echo "  .venv/bin/python scripts/train_gpu_weights.py --steps 632 --minutes 30 --work runs/gpu4 --out runs/gpu4/out \\"
echo "      --init-w32 runs/gpu/out/darkir-w32-gpu-best-real.safetensors \\"
echo "      --init-csf-w32 runs/gpu/out/darkir-csf-w32-gpu-best-real.safetensors \\"
echo "      --recipe 'mild:datasets.train.synth.degradation.photons_range=[2000,60000] datasets.train.synth.degradation.read_noise_range=[1e-4,2e-3]' \\"
echo "      --recipe 'wide:datasets.train.synth.degradation.photons_range=[400,60000]' \\"
echo "      --real data/real/pairs --real data/real/lolblur_official"
echo "then copy the chosen runs/gpu*/out/*-gpu-best-real.safetensors to src/darkir/weights/<name>.safetensors"
