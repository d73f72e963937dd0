"""Detail PSNR under two tone fits, to tell detail lost from a tone curve of another shape (stage 10's question).

For each checkpoint and real paired folder: the mean PSNR after fitting each output's global gain and gamma to its
reference (``score_checkpoints.py``'s detail PSNR), and after fitting a monotone curve of the output's luminance to
the reference's (64 quantile bins, applied as a per-pixel gain to the three channels), which follows any curve
shape. A checkpoint that trails another under both fits lost detail, not only a curve shape.

    python scripts/detail_under_curve.py WEIGHTS... [--data DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from darkir import create_model
from darkir.data.pairs import resolve_pairs
from darkir.eval.tone import tone_fitted
from darkir.imageio import read_image
from darkir.infer import Restorer

FOLDERS = ("data/real/lol_eval15", "data/real/pairs", "data/real/lolblur_official")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def curve_fitted(pred: np.ndarray, target: np.ndarray, bins: int = 64) -> np.ndarray:
    """``pred`` (C, H, W) with its luminance mapped by a monotone curve fitted to ``target``'s, 8-bit rounded."""
    lum_p, lum_t = pred.mean(0), target.mean(0)
    edges = np.quantile(lum_p, np.linspace(0, 1, bins + 1))
    index = np.clip(np.searchsorted(edges, lum_p, side="right") - 1, 0, bins - 1)
    used = [i for i in range(bins) if (index == i).any()]
    xs = np.array([lum_p[index == i].mean() for i in used])
    ys = np.maximum.accumulate(np.array([lum_t[index == i].mean() for i in used]))
    gain = np.interp(lum_p, xs, ys) / np.maximum(lum_p, 1e-4)
    return np.round(np.clip(pred * gain[None], 0, 1) * 255) / 255


def scores(weights: str, folder: Path) -> tuple[float, float]:
    """Mean PSNR over ``folder``'s pairs after the gain-and-gamma fit and after the curve fit."""
    restorer = Restorer(create_model(weights), device="cpu", tile=0)
    by_gamma, by_curve = [], []
    for pair in resolve_pairs(folder, "test"):
        out = np.clip(restorer.restore_array(read_image(pair.low).rgb), 0, 1)
        pred = torch.from_numpy(out).permute(2, 0, 1)[None]
        target = torch.from_numpy(read_image(pair.high).rgb).permute(2, 0, 1)[None]
        by_gamma.append(psnr(tone_fitted(pred, target)[0].numpy(), target[0].numpy()))
        by_curve.append(psnr(curve_fitted(pred[0].double().numpy(), target[0].double().numpy()), target[0].numpy()))
    return float(np.mean(by_gamma)), float(np.mean(by_curve))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="+", help="checkpoints or model names")
    parser.add_argument("--data", action="append", help="real paired folders (default: the three of stage 10)")
    args = parser.parse_args()
    for weights in args.weights:
        rows = [scores(weights, Path(folder)) for folder in args.data or FOLDERS]
        for folder, (gamma, curve) in zip(args.data or FOLDERS, rows, strict=True):
            print(f"{weights}\t{folder}\tgain+gamma {gamma:.3f}\tcurve {curve:.3f}")
        gamma, curve = np.mean(rows, axis=0)
        print(f"{weights}\tmean of sets\tgain+gamma {gamma:.3f}\tcurve {curve:.3f}")


if __name__ == "__main__":
    main()
