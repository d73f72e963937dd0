"""Peak memory of ``darkir compare`` on many full-size pairs: it must not grow with the number of images.

    python benchmarks/compare_memory.py [--pairs 200] [--size 1120x640] [--weights A --weights B]
        [--max-memory 2GB] [--precision auto]

Makes ``--pairs`` LOLBlur-sized pairs from the bundled examples (resized; darkened and noised inputs), runs
``darkir compare`` on them in a child process (default settings, or ``--max-memory``; no LPIPS) and prints the
child's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from darkir.demo import example_images


def make_pairs(root: Path, count: int, width: int, height: int) -> None:
    """``count`` pairs under ``root/low`` and ``root/high`` from the bundled examples."""
    rng = np.random.default_rng(0)
    sources = [cv2.resize(cv2.imread(str(p)), (width, height), interpolation=cv2.INTER_CUBIC) for p in example_images()]
    for folder in ("low", "high"):
        (root / folder).mkdir(parents=True)
    for index in range(count):
        high = sources[index % len(sources)]
        low = np.clip(high * rng.uniform(0.05, 0.2) + rng.normal(0, 3, high.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "high" / f"{index:04d}.png"), high)
        cv2.imwrite(str(root / "low" / f"{index:04d}.png"), low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--size", default="1120x640", help="WIDTHxHEIGHT")
    parser.add_argument("--weights", action="append", help="variants (default: the two shipped models)")
    parser.add_argument("--max-memory", help="passed to darkir compare (default: its default budget)")
    parser.add_argument("--precision", help="passed to darkir compare (default: its default, fp32)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    weights = args.weights or ["darkir-w32-synth", "darkir-csf-w32-synth"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_pairs(root / "pairs", args.pairs, width, height)
        command = [sys.executable, "-m", "darkir", "compare", "--data", str(root / "pairs"), "-o", str(root / "report"),
                   "--no-lpips", "-q", "--device", "cpu"]  # fmt: skip
        for name in weights:
            command += ["--weights", name]
        if args.max_memory:
            command += ["--max-memory", args.max_memory]
        if args.precision:
            command += ["--precision", args.precision]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    flags = {"--max-memory": args.max_memory, "--precision": args.precision}
    settings = " ".join(f"{flag} {value}" for flag, value in flags.items() if value) or "default settings"
    print(f"darkir compare, {args.pairs} pairs of {width}x{height}, variants {', '.join(weights)}, {settings}: "
          f"peak resident memory {peak_gb:.2f} GB, {seconds / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
