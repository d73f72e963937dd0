"""Score checkpoints on paired folders (mean PSNR/SSIM, 8-bit convention), to choose among training snapshots.

    python scripts/score_checkpoints.py --data REAL_PAIRS [--data MORE] CKPT [CKPT ...]

Prints one row per checkpoint and folder; with ``--json`` also writes them. Real pairs are for decisions only,
never for training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from darkir.checkpoint import load_model
from darkir.data.pairs import resolve_pairs
from darkir.eval.metrics import prepare, psnr, ssim
from darkir.imageio import read_image
from darkir.infer import Restorer


def score(weights: str, folder: Path, device: str = "cpu") -> dict[str, float]:
    """Mean PSNR and SSIM of ``weights`` on the pairs of ``folder`` (whole images, fp32), the image count ``n``, and
    the tone of outputs and references: mean sRGB brightness (``out_mean``, ``ref_mean``) and standard deviation
    (``out_std``, ``ref_std``), each averaged over images."""
    restorer = Restorer(load_model(weights), device=device, tile=0)
    keys = ("psnr", "ssim", "out_mean", "out_std", "ref_mean", "ref_std")
    values: dict[str, list[float]] = {key: [] for key in keys}
    for pair in resolve_pairs(folder, "test"):
        low, high = read_image(pair.low).rgb, read_image(pair.high).rgb
        out = prepare(torch.from_numpy(restorer.restore_array(low)).permute(2, 0, 1)[None])
        target = torch.from_numpy(high).permute(2, 0, 1)[None]
        values["psnr"].append(psnr(out, target).item())
        values["ssim"].append(ssim(out, target).item())
        for name, image in (("out", out), ("ref", target)):
            values[f"{name}_mean"].append(image.mean().item())
            values[f"{name}_std"].append(image.std().item())
    return {**{key: float(np.mean(v)) for key, v in values.items()}, "n": len(values["psnr"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint paths or zoo names")
    parser.add_argument("--data", action="append", required=True, help="paired folder (repeat)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    rows = []
    for weights in args.checkpoints:
        for folder in args.data:
            row = {"weights": weights, "data": folder, **score(weights, Path(folder), args.device)}
            rows.append(row)
            tone = f"mean {row['out_mean']:.3f}/{row['ref_mean']:.3f}\tstd {row['out_std']:.3f}/{row['ref_std']:.3f}"
            print(
                f"{weights}\t{folder}\tPSNR {row['psnr']:.2f}\tSSIM {row['ssim']:.4f}\t{tone} (output/reference)",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
