"""Tiling fidelity and memory at scale, with darkir's default tile settings.

    python benchmarks/restore_scale.py --weights NAME_OR_PATH [--image PATH]

1. Tiled vs whole-image restoration of a 1120x640 image (``--image`` resized, default the LOL-v2 real
   sanity input from ../shared) with the default ``--tile``/``--overlap``: PSNR between the two outputs.
2. Peak resident memory of ``darkir restore`` on a generated 3840x2160 image with default settings,
   measured in a child process.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from darkir.checkpoint import load_model
from darkir.imageio import read_image
from darkir.infer import DEFAULT_OVERLAP, DEFAULT_TILE, Restorer

SANITY = Path(__file__).resolve().parents[2] / "shared" / "sanity" / "lolv2real_00733_low.png"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two float images in [0, 1]."""
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def peak_rss_of_restore(weights: str, size: tuple[int, int]) -> tuple[float, float]:
    """(peak RSS in GB, seconds) of ``darkir restore`` on a smooth synthetic image of ``size`` (H, W)."""
    import time

    with tempfile.TemporaryDirectory() as tmp:
        y, x = np.mgrid[0 : size[0], 0 : size[1]]
        image = np.stack([(np.sin(x / 50) + 1) * 30, (np.cos(y / 70) + 1) * 30, ((x + y) % 255) / 5], -1)
        source = Path(tmp) / "big.png"
        cv2.imwrite(str(source), image.astype(np.uint8))
        command = [sys.executable, "-m", "darkir.cli", "restore", str(source), "-o", f"{tmp}/out", "-q"]
        start = time.perf_counter()
        subprocess.run([*command, "--weights", weights, "--device", "cpu"], check=True)
        elapsed = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint path or zoo name with weights")
    parser.add_argument("--image", type=Path, default=SANITY, help="image resized to 1120x640 for the tiling check")
    parser.add_argument("--skip-memory", action="store_true", help="only the tiling check")
    args = parser.parse_args()

    rgb = cv2.resize(read_image(args.image).rgb, (1120, 640), interpolation=cv2.INTER_AREA)
    model = load_model(args.weights)
    whole = Restorer(model, device="cpu", tile=0).restore_array(rgb)
    tiled = Restorer(model, device="cpu").restore_array(rgb)
    print(f"tiled (tile {DEFAULT_TILE}, overlap {DEFAULT_OVERLAP}) vs whole at 1120x640: {psnr(whole, tiled):.2f} dB")
    print(f"  input {args.image.name}, weights {args.weights}, torch {torch.__version__}")
    if not args.skip_memory:
        peak, seconds = peak_rss_of_restore(args.weights, (2160, 3840))
        print(f"darkir restore 3840x2160, defaults: peak RSS {peak:.2f} GB, {seconds:.1f} s wall")


if __name__ == "__main__":
    main()
