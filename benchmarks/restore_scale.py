"""Tiling fidelity and memory at scale: what ``--tile auto`` (the default) and ``--max-memory`` give.

    python benchmarks/restore_scale.py --weights NAME_OR_PATH [--image PATH] [--size WxH]

1. Tiled vs whole-image restoration of an image (``--image`` resized to ``--size``, 1120x640 by default; the LOL-v2
   real sanity input from ../shared) in ``--tile`` px tiles (default 704, the size the planner picks near a 2 GB
   budget; several sizes may be given): PSNR between the two outputs, the tiled output's mean brightness over the
   whole one's, and how far apart they are at the image's edges (the mean difference in 8-bit levels on its last
   row and column, and the largest anywhere).
2. Peak resident memory and wall time of ``darkir restore -v`` on a generated 1120x640 and 3840x2160 image, with
   the default settings and with ``--max-memory 2GB``, each in a child process; with how each image was restored.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from darkir.imageio import read_image
from darkir.infer import Restorer
from darkir.infer.tiling import default_overlap
from darkir.models import create_model

SANITY = Path(__file__).resolve().parents[2] / "shared" / "sanity" / "lolv2real_00733_low.png"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float images in [0, 1]."""
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def peak_rss_of_restore(weights: str, size: tuple[int, int], flags: list[str]) -> tuple[float, float, str]:
    """(peak RSS in GB, seconds, how it was restored) of ``darkir restore`` on a smooth synthetic image of ``size``
    (H, W), in a child process (``ru_maxrss`` of that child alone)."""
    probe = (
        "import resource, subprocess, sys; "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True); "
        "print(done.stderr.strip().splitlines()[-1]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        y, x = np.mgrid[0 : size[0], 0 : size[1]]
        image = np.stack([(np.sin(x / 50) + 1) * 30, (np.cos(y / 70) + 1) * 30, ((x + y) % 255) / 5], -1)
        source = Path(tmp) / "big.png"
        cv2.imwrite(str(source), image.astype(np.uint8))
        command = [sys.executable, "-m", "darkir.cli", "restore", str(source), "-o", f"{tmp}/out", "-q", "-v"]
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", probe, *command, "--weights", weights, "--device", "cpu", *flags],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    how, peak_kib = result.stdout.strip().splitlines()[-2:]
    return int(peak_kib) * 1024 / 1e9, elapsed, how.split(": ", 2)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint path or zoo name with weights")
    parser.add_argument("--image", type=Path, default=SANITY, help="image resized to --size for the tiling check")
    parser.add_argument("--size", default="1120x640", help="WIDTHxHEIGHT of the tiling check (default 1120x640)")
    parser.add_argument("--tile", type=int, nargs="+", default=[704], help="tile sizes of the fidelity check")
    parser.add_argument("--skip-memory", action="store_true", help="only the tiling check")
    args = parser.parse_args()

    width, height = (int(side) for side in args.size.split("x"))
    rgb = cv2.resize(read_image(args.image).rgb, (width, height), interpolation=cv2.INTER_AREA)
    model = create_model(args.weights)
    whole = Restorer(model, device="cpu", tile=0).restore_array(rgb)
    for tile in args.tile:
        tiled = Restorer(model, device="cpu", tile=tile).restore_array(rgb)
        brightness = np.clip(tiled, 0, 1).mean() / np.clip(whole, 0, 1).mean()
        levels = np.abs(np.rint(np.clip(tiled, 0, 1) * 255) - np.rint(np.clip(whole, 0, 1) * 255))
        edges = f"last row {levels[-1].mean():.1f} levels apart, last column {levels[:, -1].mean():.1f}"
        print(
            f"tiled (tile {tile}, overlap {default_overlap(tile)}) vs whole at {args.size}: "
            f"{psnr(whole, tiled):.2f} dB, brightness {brightness:.3f}x; {edges}, at most {levels.max():.0f}"
        )
    print(f"  input {args.image.name}, weights {args.weights}, torch {torch.__version__}")
    if args.skip_memory:
        return
    for size in ((640, 1120), (2160, 3840)):
        for flags in ([], ["--max-memory", "2GB"]):
            peak, seconds, how = peak_rss_of_restore(args.weights, size, flags)
            settings = " ".join(flags) or "defaults"
            print(f"darkir restore {size[1]}x{size[0]}, {settings}: peak RSS {peak:.2f} GB, {seconds:.1f} s; {how}")


if __name__ == "__main__":
    main()
