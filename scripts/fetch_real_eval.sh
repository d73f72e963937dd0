#!/usr/bin/env bash
# Fetch the real low-light images darkir's default weights are judged on (evaluation only: their licences are
# research-only, so they are not committed, but for the two LOL-v2 examples the official DarkIR repository ships and
# darkir bundles too, and never used for training) into data/real/:
#   pairs/{low,high}           3 real pairs: LOL-v2 real 00733 and synthetic r13073518t (../shared/sanity, also in
#                              cidautai/DarkIR assets/), LOL v1 eval15 778 (wyf0912/LLFlow @acabea1, img/)
#   lolblur_official/{low,high} 5 real LOLBlur test inputs (1120x640, low light + blur) and, as reference, the official
#                              GPU-trained DarkIR's outputs on them (cidautai/DarkIR assets/): a proxy, not ground truth
#   lol_eval15/{low,high}      3 more LOL v1 eval15 pairs (600x400: 1, 748, 780; 778 is in pairs/), the untouched LOL
#                              files a course project committed (its 497 and 776 are training pairs, left out)
#   dicm/, lime/               64 DICM and 9 LIME photos, unpaired (Li-Chongyi/Zero-DCE, Zero-DCE_code/data/test_data)
#   lednet_real/               10 real night photos with blur, unpaired (sczhou/LEDNet inputs/real)
#   zerodce/Epoch99.pth        the official Zero-DCE weights, a comparison peer (Li-Chongyi/Zero-DCE snapshots/)
# Needs git and network access to GitHub; GIT_BASE overrides https://github.com (e.g. a local mirror).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${GIT_BASE:-https://github.com}"
out=data/real
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

clone() {  # clone owner/name (blobs on demand) into $work/name
    git clone -q --filter=blob:none --no-checkout "$base/$1" "$work/${1#*/}" 2>/dev/null \
        || git clone -q --no-checkout "$base/$1" "$work/${1#*/}"
}
take() {  # take REPO COMMIT PATH DEST
    mkdir -p "$(dirname "$4")"
    git -C "$work/$1" show "$2:$3" > "$4"
}

clone Li-Chongyi/Zero-DCE
clone wyf0912/LLFlow
clone cidautai/DarkIR
clone sczhou/LEDNet
clone arnoliudaxia/SI290E-Digital-image-processing-practice

mkdir -p "$out/pairs/low" "$out/pairs/high" "$out/dicm" "$out/lime" "$out/lednet_real"
take DarkIR HEAD assets/lolv2real/low00733_low.png "$out/pairs/low/lolv2real_00733.png"
take DarkIR HEAD assets/lolv2real/normal00733.png "$out/pairs/high/lolv2real_00733.png"
take DarkIR HEAD assets/lolv2synth/r13073518t_low.png "$out/pairs/low/lolv2synth_r13073518t.png"
take DarkIR HEAD assets/lolv2synth/r13073518t_normal.png "$out/pairs/high/lolv2synth_r13073518t.png"
take LLFlow acabea1edec6ab46c856bda261b99a59fe73dc68 img/778_input.png "$out/pairs/low/lolv1_778.png"
take LLFlow acabea1edec6ab46c856bda261b99a59fe73dc68 img/778.png "$out/pairs/high/lolv1_778.png"
for frame in 0010 0075 0087 0088; do
    take DarkIR HEAD "assets/qualis/inputs/$frame.png" "$out/lolblur_official/low/$frame.png"
    take DarkIR HEAD "assets/qualis/results/$frame.png" "$out/lolblur_official/high/$frame.png"
done
mkdir -p "$out/lol_eval15/low" "$out/lol_eval15/high"
for n in 1 748 780; do
    take SI290E-Digital-image-processing-practice 04684403852405c7512c560a0358dda4b9a38517 \
        "Project-1/images/$n.png" "$out/lol_eval15/low/$n.png"
    take SI290E-Digital-image-processing-practice 04684403852405c7512c560a0358dda4b9a38517 \
        "Project-1/gt/$n.png" "$out/lol_eval15/high/$n.png"
done
take DarkIR HEAD assets/teaser/0085_low.png "$out/lolblur_official/low/0085.png"
take DarkIR HEAD assets/teaser/0085_darkir.png "$out/lolblur_official/high/0085.png"
for path in $(git -C "$work/Zero-DCE" ls-tree -r --name-only HEAD Zero-DCE_code/data/test_data/); do
    folder=$(basename "$(dirname "$path")" | tr '[:upper:]' '[:lower:]')
    take Zero-DCE HEAD "$path" "$out/$folder/$(basename "$path")" || rm -f "$out/$folder/$(basename "$path")"
done
find "$out/lime" "$out/dicm" -size 0 -delete  # files the host keeps out of git (LIME 5.bmp is over its size limit)
take Zero-DCE HEAD Zero-DCE_code/snapshots/Epoch99.pth "$out/zerodce/Epoch99.pth"
for path in $(git -C "$work/LEDNet" ls-tree -r --name-only HEAD inputs/real/); do
    take LEDNet HEAD "$path" "$out/lednet_real/$(basename "$path")"
done
echo "real evaluation data -> $out ($(find "$out" -type f | wc -l) files)"
