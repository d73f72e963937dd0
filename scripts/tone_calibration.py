"""How a synthetic tone convention's references relate to their captures, beside the same figures on real pairs.

    python scripts/tone_calibration.py -p options/train/default_weights/tone_scene_cpu_csf_w32.yml \
        --data data/real/pairs --data data/real/lolblur_official --scene-slope 0 0.3 0.5

For the real pairs and for 240 training pairs synthesized under the options file's degradation (its
``target_scene_slope`` replaced by each ``--scene-slope``): the correlation across pairs of the log reference
brightness (sRGB mean) with the log capture mean and 90th percentile, and with the clean photo's mean (synthetic
only); the mean reference brightness and the standard deviation of its log. A convention whose figures match the
real ones leaves to the scene what the capture does not tell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from darkir.data.corpus import resolve_sources
from darkir.data.degradation import degrade, synth_params
from darkir.data.pairs import resolve_pairs
from darkir.data.synth import load_photos, sample_crop
from darkir.imageio import read_image


def figures(low: np.ndarray, high: np.ndarray, clean: np.ndarray | None = None) -> str:
    """The correlations and spread of one set's per-pair brightness (each array: one value per pair)."""
    ref = np.log(high)

    def corr(values: np.ndarray) -> float:
        return float(np.corrcoef(np.log(values), ref)[0, 1])

    text = f"corr(ref, capture mean) {corr(low[:, 0]):.2f}  corr(ref, capture p90) {corr(low[:, 1]):.2f}"
    if clean is not None:
        text += f"  corr(ref, clean mean) {corr(clean):.2f}"
    return text + f"  ref mean {high.mean():.3f}  sd(log ref) {ref.std():.3f}  ({len(high)} pairs)"


def capture_stats(low: np.ndarray) -> tuple[float, float]:
    """A capture's sRGB mean and 90th percentile."""
    return float(low.mean()), float(np.percentile(low, 90))


def real(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of ``folder``: the capture's (mean, p90) and the reference's mean."""
    lows, highs = [], []
    for pair in resolve_pairs(folder, "test"):
        lows.append(capture_stats(read_image(pair.low).rgb))
        highs.append(float(read_image(pair.high).rgb.mean()))
    return np.array(lows), np.array(highs)


def synthetic(options: Path, slope: float, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` training pairs under the options' degradation with ``target_scene_slope`` ``slope``: each capture's
    (mean, p90), reference mean and clean crop mean."""
    synth = yaml.safe_load(options.read_text())["datasets"]["train"]["synth"]
    params = synth_params({**synth.get("degradation", {}), "target_scene_slope": slope})
    paths = resolve_sources(synth["sources"])
    photos = load_photos([paths[name] for name in sorted(paths)], synth.get("max_short_side", 1024))
    lows, highs, cleans = [], [], []
    for index in range(count):
        rng = np.random.default_rng([seed, 0, index])
        clean = sample_crop(photos[int(rng.integers(len(photos)))], 128, rng, synth.get("max_zoom_out", 4.0))
        low, high, _ = degrade(clean, rng, params)
        lows.append(capture_stats(low))
        highs.append(float(high.mean()))
        cleans.append(float(clean.mean()))
    return np.array(lows), np.array(highs), np.array(cleans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-p", "--options", type=Path, required=True, help="training options with a synth section")
    parser.add_argument("--data", type=Path, action="append", default=[], help="a real paired folder (repeatable)")
    parser.add_argument("--scene-slope", type=float, nargs="+", default=[0.0], help="target_scene_slope values")
    parser.add_argument("--pairs", type=int, default=240, help="synthetic pairs per slope")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.data:
        lows, highs = zip(*(real(folder) for folder in args.data), strict=True)
        print(f"real {'+'.join(map(str, args.data))}:", figures(np.concatenate(lows), np.concatenate(highs)))
    for slope in args.scene_slope:
        pairs = synthetic(args.options, slope, args.pairs, args.seed)
        print(f"synthetic, target_scene_slope {slope}:", figures(*pairs))


if __name__ == "__main__":
    main()
