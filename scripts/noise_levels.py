"""Noise of real low-light inputs against the synthetic ones, at a common brightness.

    python scripts/noise_levels.py data/real/lolblur_official/low data/real/lednet_real ... \
        [--synth 48] [--degradation photons_range=[2000,60000] ...]

Each input is brightened in linear light so that its sRGB mean is 0.35 (as a restoration would), and Immerkaer's
noise sigma (``darkir.eval.noreference.noise_sigma``) is measured on it. Prints the median and quartiles per folder,
then the same for ``--synth`` training samples of the night degradation (the Debian corpus; ``--degradation``
overrides ``SynthParams`` fields, YAML values), so that the degradation's noise can be matched to real captures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from darkir.data.degradation import exposure_for_mean, linear_to_srgb, srgb_to_linear, synth_params
from darkir.data.synth import SynthDataset
from darkir.eval.noreference import noise_sigma
from darkir.imageio import IMAGE_SUFFIXES, read_image


def brightened_noise(rgb: np.ndarray, target: float = 0.35) -> float:
    """Noise sigma of ``rgb`` after a linear-light gain to sRGB mean ``target``."""
    linear = srgb_to_linear(rgb)
    return noise_sigma(linear_to_srgb(linear * exposure_for_mean(linear, target)))


def summary(label: str, values: list[float]) -> str:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"| {label} | {len(values)} | {median:.4f} | {q1:.4f} | {q3:.4f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, help="folders of real low-light inputs")
    parser.add_argument("--synth", type=int, default=48, help="synthetic samples to measure (0: none)")
    parser.add_argument("--degradation", nargs="*", default=[], metavar="FIELD=VALUE", help="SynthParams overrides")
    args = parser.parse_args()
    print("| set | images | median sigma | 25% | 75% |")
    print("| --- | --- | --- | --- | --- |")
    for folder in args.folders:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stat().st_size)
        print(summary(str(folder), [brightened_noise(read_image(p).rgb) for p in files]))
    if args.synth:
        from darkir.data.corpus import debian_photos
        from darkir.data.synth import load_photos

        overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.degradation)}
        params = synth_params(overrides)
        photos = debian_photos()
        names = sorted(photos)
        dataset = SynthDataset(load_photos([photos[n] for n in names]), names, args.synth, 256, seed=3, params=params)
        values = [brightened_noise(dataset[i]["low"].permute(1, 2, 0).numpy()) for i in range(args.synth)]
        print(summary(f"synthetic {' '.join(args.degradation) or '(default recipe)'}", values))


if __name__ == "__main__":
    main()
