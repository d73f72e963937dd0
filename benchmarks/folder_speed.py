"""Whole-folder restoration time, process start included: ``darkir restore`` against the reference formulation.

    python benchmarks/folder_speed.py [--frames 8] [--size 1120x640] [--weights NAME_OR_PATH] [--device cpu]

Makes ``--frames`` dark frames from the bundled examples (resized, darkened, noised), then times, each in a fresh
process and in this order on the same folder:

1. the reference: a script like the official ``inference.py``: import torch, load the weights, and for each file
   read it, run ``tests/reference.py`` (the official formulation, eager NCHW fp32, default allocator) and
   write a PNG;
2. ``darkir restore FOLDER -o OUT`` with the default settings (``--tile auto``, ``--precision auto``);
3. the same with ``--precision fp32``.

Prints the wall time of each, the speed-up against the reference, and how close the outputs are to the
reference's (share of 8-bit values within one level).
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

from darkir.demo import example_images

#: The repository root, where the reference formulation (a test oracle, ``tests/reference.py``) is imported from.
ROOT = Path(__file__).resolve().parent.parent
REFERENCE = r"""
import sys
from pathlib import Path
import cv2, numpy as np, torch
weights, source, target, root, device = sys.argv[1:6]
sys.path.insert(0, root)
from darkir.models import create_model
from tests.reference import reference_forward
model = create_model(weights)
params, config = {k: v.to(device) for k, v in model.state_dict().items()}, model.config
Path(target).mkdir(parents=True, exist_ok=True)
for path in sorted(Path(source).glob("*.png")):
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None].to(device)
    with torch.no_grad():
        y = reference_forward(params, config, x)[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    cv2.imwrite(str(Path(target) / path.name), cv2.cvtColor(np.rint(y * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
"""


def make_frames(folder: Path, count: int, width: int, height: int) -> None:
    """``count`` dark, noisy frames of ``width`` x ``height`` from the bundled examples."""
    rng = np.random.default_rng(0)
    sources = [cv2.resize(cv2.imread(str(p)), (width, height), interpolation=cv2.INTER_AREA) for p in example_images()]
    folder.mkdir(parents=True)
    for index in range(count):
        frame = sources[index % len(sources)] * rng.uniform(0.3, 0.8) + rng.normal(0, 2, (height, width, 3))
        cv2.imwrite(str(folder / f"{index:04d}.png"), np.clip(frame, 0, 255).astype(np.uint8))


def timed(command: list[str]) -> float:
    """Wall seconds of ``command`` in a fresh process."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def within_one_level(folder: Path, reference: Path) -> float:
    """Share of 8-bit output values within one level of the reference outputs, over all frames."""
    close = total = 0
    for path in sorted(reference.glob("*.png")):
        a = cv2.imread(str(path)).astype(np.int16)
        b = cv2.imread(str(folder / path.name)).astype(np.int16)
        close += int((np.abs(a - b) <= 1).sum())
        total += a.size
    return close / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="1120x640", help="WIDTHxHEIGHT")
    parser.add_argument("--weights", default="darkir-csf-w32-synth")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where both run")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_frames(root / "in", args.frames, width, height)
        darkir = [sys.executable, "-m", "darkir", "restore", str(root / "in"), "--weights", args.weights, "-q"]
        darkir += ["--device", args.device]
        runs = {
            "reference (official formulation, eager fp32)": (
                [
                    sys.executable,
                    "-c",
                    REFERENCE,
                    args.weights,
                    str(root / "in"),
                    str(root / "reference"),
                    str(ROOT),
                    args.device,
                ],
                root / "reference",
            ),
            "darkir restore, defaults": ([*darkir, "-o", str(root / "default")], root / "default"),
            "darkir restore --precision fp32": (
                [*darkir, "-o", str(root / "fp32"), "--precision", "fp32"],
                root / "fp32",
            ),
        }
        rows = [(name, timed(command), out) for name, (command, out) in runs.items()]
        base = rows[0][1]
        print(f"{args.frames} frames of {width}x{height}, {args.weights} on {args.device}, process start included")
        print("| run | wall s | s per frame | speed-up | 8-bit values within one level of the reference |")
        print("| --- | --- | --- | --- | --- |")
        for name, seconds, out in rows:
            share = within_one_level(out, root / "reference")
            print(f"| {name} | {seconds:.1f} | {seconds / args.frames:.2f} | {base / seconds:.2f}x | {share:.4%} |")


if __name__ == "__main__":
    main()
