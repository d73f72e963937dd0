"""Measure the peak memory of restoring one image on the CPU, per pixel and model width: the calibration table of
``darkir.infer.memory``.

    python benchmarks/memory_calibration.py [--sizes 384x384 768x512] [--calls 3]

Each measurement is a fresh process that builds a model (random weights: memory does not depend on their values),
records its resident memory, restores a random image ``--calls`` times with ``Restorer.restore_array`` (whole image,
channels_last, as ``darkir restore`` does) and reports its peak resident memory above that baseline, in the two
allocation modes of ``darkir.runtime``: ``heap`` (freed memory kept for reuse, the fast default) and ``lean``
(freed blocks returned to the OS, the live peak). A straight line through the sizes gives bytes per pixel; divided
by the width it is the coefficient the estimate uses. Prints one row per variant and the largest coefficients.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np, torch
from darkir.infer.restorer import Restorer
from darkir.models import create_model
from darkir.hostmemory import resident_memory
from darkir.runtime import memory_returned_to_os
name, precision, width, height, calls, mode = sys.argv[1:7]
restorer = Restorer(create_model(name), device="cpu", precision=precision, tile=0)
image = np.random.default_rng(0).random((int(height), int(width), 3), dtype=np.float32)
base = resident_memory()
for _ in range(int(calls)):
    if mode == "lean":
        with memory_returned_to_os():
            restorer.restore_array(image)
    else:
        restorer.restore_array(image)
print(json.dumps({"peak_above_base": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base}))
"""

VARIANTS = [
    ("darkir-w16", "fp32", 16),
    ("darkir-w32", "fp32", 32),
    ("darkir-csf-w32", "fp32", 32),
    ("darkir-w64", "fp32", 64),
    ("darkir-w32", "bf16", 32),
    ("darkir-csf-w32", "bf16", 32),
]


def measure(name: str, precision: str, size: tuple[int, int], calls: int, mode: str) -> float:
    """Peak resident bytes above the baseline of one fresh process restoring a ``size`` image ``calls`` times."""
    command = [sys.executable, "-c", CHILD, name, precision, str(size[0]), str(size[1]), str(calls), mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_above_base"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs=2, default=["384x384", "768x512"], help="two WIDTHxHEIGHT sizes")
    parser.add_argument("--calls", type=int, default=3, help="restorations per process (the heap mode can grow)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    pixels = [w * h for w, h in sizes]
    worst: dict[tuple[str, str], float] = {}
    print("| variant | precision | mode | bytes/pixel | per pixel per width | offset (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, precision, width in VARIANTS:
        for mode in ("lean", "heap"):
            peaks = [measure(name, precision, size, args.calls, mode) for size in sizes]
            slope = (peaks[1] - peaks[0]) / (pixels[1] - pixels[0])
            offset = peaks[0] - slope * pixels[0]
            per_width = max(peak / p for peak, p in zip(peaks, pixels, strict=True)) / width
            worst[(precision, mode)] = max(worst.get((precision, mode), 0.0), per_width)
            print(f"| {name} | {precision} | {mode} | {slope:.0f} | {per_width:.1f} | {offset / 1e6:.0f} |")
    print("\nlargest peak/(pixels*width), bytes:", {f"{p}/{m}": round(v, 1) for (p, m), v in worst.items()})


if __name__ == "__main__":
    main()
