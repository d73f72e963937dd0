"""Where ``darkir video``'s time goes apart from the model: each stage of its pipeline alone, and together.

    python benchmarks/video_stages.py [--size 1920x1080] [--frames 48] [--out video_stages.json]

On a synthetic H.264 clip (``--frames`` frames of ``--size``, width x height), milliseconds per frame of:

- ``decode``: demuxing and decoding (FFmpeg's default threading, then ``thread_type="AUTO"``: frame threads);
- ``to_rgb`` / ``from_rgb``: the YUV <-> RGB conversions darkir makes (:class:`darkir.infer.video_colour.VideoColour`);
- ``encode``: libx264 at darkir's default CRF, from YUV frames;
- ``both conversions at once``: ``to_rgb`` and ``from_rgb`` in two threads at the same time, against one after the
  other (whether they hold the GIL against each other);
- ``pipeline``: ``darkir video`` (:func:`darkir.infer.video.restore_video`) with a model that returns its input, on
  the device ``--device``: the most frames per second its decode, transfer and encode threads allow.

A video is restored no faster than its slowest stage; prints one line per measurement and writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from torch import nn

from darkir.infer import Restorer
from darkir.infer.video import restore_video
from darkir.infer.video_colour import video_colour


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A dark H.264 clip with moving noise (so that the encoder has work as with a real video)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rng = np.random.default_rng(0)
        base = (rng.random((height, width, 3)) * 60).astype(np.uint8)
        for index in range(frames):
            frame = np.roll(base, 7 * index, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def per_frame_ms(run: Callable[[], int]) -> float:
    """Milliseconds per frame of ``run``, which returns how many frames it handled."""
    start = time.perf_counter()
    frames = run()
    return 1000 * (time.perf_counter() - start) / max(frames, 1)


def decoded(source: Path, thread_type: str | None = None) -> list:
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        if thread_type:
            stream.thread_type = thread_type
        return list(container.decode(stream))


def encode(frames: list, path: Path, width: int, height: int) -> int:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return len(frames)


def stages(source: Path, work: Path, width: int, height: int, device: str) -> dict[str, float]:
    frames = decoded(source)
    colour = video_colour(frames[0], source)
    rgb = [colour.to_rgb(frame) for frame in frames]
    yuv = [colour.from_rgb(av, image, "yuv420p") for image in rgb]
    count = len(frames)
    results = {
        "decode": per_frame_ms(lambda: len(decoded(source))),
        "decode, frame threads": per_frame_ms(lambda: len(decoded(source, "AUTO"))),
        "to_rgb": per_frame_ms(lambda: len([colour.to_rgb(frame) for frame in frames])),
        "from_rgb": per_frame_ms(lambda: len([colour.from_rgb(av, image, "yuv420p") for image in rgb])),
        "encode": per_frame_ms(lambda: encode(yuv, work / "encoded.mp4", width, height)),
    }
    results["both conversions, one after the other"] = results["to_rgb"] + results["from_rgb"]
    start = time.perf_counter()
    threads = [
        threading.Thread(target=lambda: [colour.to_rgb(frame) for frame in frames]),
        threading.Thread(target=lambda: [colour.from_rgb(av, image, "yuv420p") for image in rgb]),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["both conversions at once"] = 1000 * (time.perf_counter() - start) / count
    restorer = Restorer(nn.Identity(), device=device, compile=False)
    results["pipeline (a model that returns its input)"] = per_frame_ms(
        lambda: restore_video(restorer, source, work / "pipeline.mp4", progress=False).frames
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1920x1080", help="width x height")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="video_stages.json")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "clip.mp4"
        make_clip(source, width, height, args.frames)
        results = stages(source, Path(work), width, height, args.device)
    for name, ms in results.items():
        print(f"{args.size}\t{name}\t{ms:.1f} ms/frame\t{1000 / ms:.1f} frames/s")
    Path(args.out).write_text(json.dumps({"size": args.size, "frames": args.frames, "ms_per_frame": results}, indent=1))


if __name__ == "__main__":
    main()
