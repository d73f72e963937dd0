"""What overlapping reading and writing with restoring gains for a folder, where the device restores fast (a GPU).

    python benchmarks/folder_overlap.py [--images 12] [--size 1920x1080] [--device-ms 0,20] [--repeats 2]

A GPU restores a 1080p image in milliseconds, while decoding the input and encoding a PNG take a CPU a hundred or
more: a folder is then restored as fast as its files are read and written. This measures that part alone, on the
CPU: ``restore_files`` over ``--images`` PNGs (the bundled LOL-v2 real example resized to ``--size``), with a
stand-in model that returns its input after sleeping ``--device-ms`` (as a GPU restore would, releasing the CPU),
one file at a time (``overlap=False``, the CPU default) and overlapped (``overlap=True``, the CUDA default). Prints
images per second of each and their ratio, measured in the same run (best of ``--repeats``); the outputs of both
are checked to be the same bytes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch import nn

from darkir.demo import example_images
from darkir.infer import Restorer
from darkir.infer.files import restore_files
from darkir.infer.jobs import plan_jobs


class StandIn(nn.Module):
    """Returns its input after ``seconds``, as a device that restores in that time would."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def folder(root: Path, images: int, width: int, height: int) -> Path:
    source = next(p for p in example_images() if p.name.startswith("lolv2-real"))
    frame = cv2.resize(cv2.imread(str(source)), (width, height), interpolation=cv2.INTER_CUBIC)
    (root / "in").mkdir(parents=True)
    for index in range(images):
        cv2.imwrite(str(root / "in" / f"{index:03d}.png"), frame)
    return root / "in"


def timed(restorer: Restorer, inputs: Path, out: Path, overlap: bool) -> float:
    jobs, _ = plan_jobs([str(inputs)], out, "")
    start = time.perf_counter()
    report = restore_files(restorer, jobs, overwrite=True, progress=False, overlap=overlap)
    seconds = time.perf_counter() - start
    assert len(report.done) == len(jobs) and not report.failed
    return len(jobs) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--size", default="1920x1080", help="WxH")
    parser.add_argument("--device-ms", default="0,20", help="stand-in restore times in ms, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"# python benchmarks/folder_overlap.py --images {args.images} --size {args.size} "
          f"--device-ms {args.device_ms} --repeats {args.repeats}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| device restore | one file at a time | overlapped | ratio |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as work:
        inputs = folder(Path(work), args.images, width, height)
        for ms in (float(v) for v in args.device_ms.split(",")):
            restorer = Restorer(StandIn(ms / 1000), device="cpu", precision="fp32", tile=0)
            speeds = {}
            for overlap in (False, True):
                out = Path(work) / f"out-{overlap}"
                speeds[overlap] = max(timed(restorer, inputs, out, overlap) for _ in range(args.repeats))
            same = all(
                (Path(work) / "out-False" / p.name).read_bytes() == p.read_bytes()
                for p in (Path(work) / "out-True").iterdir()
            )
            assert same, "the overlapped outputs differ"
            ratio = speeds[True] / speeds[False]
            print(f"| {ms:g} ms | {speeds[False]:.2f} img/s | {speeds[True]:.2f} img/s | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
