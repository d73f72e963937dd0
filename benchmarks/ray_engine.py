"""Throughput of ``darkir restore --engine ray`` on a local Ray cluster against the plain command, in one run.

    python benchmarks/ray_engine.py [--frames 16] [--size 1120x640] [--weights NAME] [--workers 2]

Makes ``--frames`` dark frames from the bundled examples (as ``folder_speed.py`` does), then times, each a fresh
process on the same folder, process start included:

1. ``darkir restore FOLDER -o OUT`` (the local engine, torch's default threads: one per core);
2. ``darkir restore FOLDER -o OUT --threads 1`` (the local engine as one Ray worker runs);
3. ``darkir restore FOLDER -o OUT --engine ray --workers N`` (a new local Ray cluster, N workers of 1 CPU and
   1 thread each).

Prints wall time, frames per second and the ratio to run 1, and checks that runs 2 and 3 wrote identical files.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from folder_speed import make_frames


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` in a fresh process (fails loudly)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", default="1120x640")
    parser.add_argument("--weights", default="darkir-csf-w32-synth")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    darkir = [sys.executable, "-m", "darkir.cli", "restore"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "frames"
        make_frames(folder, args.frames, width, height)
        common = [str(folder), "--weights", args.weights, "-q"]
        runs = {
            "darkir restore (local engine, default threads)": [*darkir, *common, "-o", f"{tmp}/local"],
            "darkir restore --threads 1": [*darkir, *common, "-o", f"{tmp}/local1", "--threads", "1"],
            f"darkir restore --engine ray --workers {args.workers}": [
                *darkir,
                *common,
                "-o",
                f"{tmp}/ray",
                "--engine",
                "ray",
                "--workers",
                str(args.workers),
            ],
        }
        seconds = {name: timed(command) for name, command in runs.items()}
        same = all(
            filecmp.cmp(Path(tmp, "local1", p.name), Path(tmp, "ray", p.name), shallow=False) for p in folder.iterdir()
        )
    print(f"{args.frames} frames of {width}x{height}, {args.weights}, {os.cpu_count()} CPUs, process start included")
    print("| run | wall s | frames/s | ratio to the local engine |")
    print("| --- | --- | --- | --- |")
    base = next(iter(seconds.values()))
    for name, value in seconds.items():
        print(f"| `{name}` | {value:.1f} | {args.frames / value:.2f} | {base / value:.2f}x |")
    print(f"ray outputs identical to --threads 1 outputs: {same}")


if __name__ == "__main__":
    main()
