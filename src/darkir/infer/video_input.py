"""What a video input holds, read before and while it is restored: its video stream (not a cover picture), frame
count and size without decoding, the first frame (size, rotation, colour, pixel shape, timing), still images refused,
and damaged packets skipped."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from darkir.errors import DarkIRError, warn
from darkir.imageio import IMAGE_SUFFIXES
from darkir.infer.video_colour import video_colour
from darkir.infer.video_timing import FirstFrame


def pyav() -> ModuleType:
    try:
        import av
    except ImportError as exc:
        raise DarkIRError("video support needs PyAV: pip install 'darkir[video]'") from exc
    return av


def count_frames(source: str | os.PathLike[str], header: bool = True) -> int:
    """The number of frames of the video stream of ``source`` that is restored (:func:`video_stream`): its header's
    count, else (MKV and WebM have none, or not ``header``: a header may lie) its packets, demuxed without decoding."""
    with _probing(Path(source)) as (container, video):
        stated = video.frames if header else 0
        return stated or sum(1 for packet in container.demux(video) if packet.size)


def frame_size(source: str | os.PathLike[str]) -> tuple[int, int]:
    """The (width, height) the video stream of ``source`` that is restored states, read without decoding."""
    with _probing(Path(source)) as (_, video):
        return int(video.codec_context.width), int(video.codec_context.height)


@contextlib.contextmanager
def _probing(source: Path) -> Iterator[tuple[Any, Any]]:
    """``source`` opened, and its video stream that is restored, for what can be read without decoding; a
    DarkIRError where FFmpeg cannot read it."""
    av = pyav()
    try:
        with open_input(av, source) as container:
            yield container, video_stream(container, source)
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: cannot read as a video ({exc.strerror or exc})") from exc


def open_input(av: ModuleType, source: Path) -> Any:
    try:
        return av.open(str(source))
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: cannot open as a video ({exc.strerror or exc})") from exc


def video_stream(container: Any, source: Path, say_which: bool = False) -> Any:
    """The video stream of ``source`` that is restored: FFmpeg's best one (not a cover picture, which MP4 and MKV
    files may hold as a video stream of one frame); with ``say_which``, a warning names it where there are others."""
    if not container.streams.video:
        raise DarkIRError(f"{source}: has no video stream")
    cover = pyav().stream.Disposition.attached_pic
    if all(stream.disposition & cover for stream in container.streams.video):
        raise DarkIRError(f"{source}: has no video stream (only a cover picture, which is not restored)")
    best = container.streams.best("video") or container.streams.video[0]
    others = [stream for stream in container.streams.video if stream is not best and not stream.disposition & cover]
    if say_which and others:
        width, height = best.codec_context.width, best.codec_context.height
        warn(f"{source}: has {len(others) + 1} video streams; restored stream {best.index} ({width}x{height}) alone")
    return best


def _display_matrix(frame: Any) -> list[int] | None:
    """The display matrix of a decoded frame (how players turn and flip it), None where it has none. PyAV 18 cannot
    list a frame's side data where one kind is new to it (the EXIF of a camera's MJPEG frames): the frame's rotation
    is then all that can be read, made into the matrix of that rotation."""
    try:
        matrix = frame.side_data.get("DISPLAYMATRIX")
    except ValueError:
        return _rotation_matrix(frame.rotation) if frame.rotation else None
    return None if matrix is None else np.frombuffer(bytes(matrix), dtype=np.int32).tolist()


def _animated_webp(source: Path) -> bool:
    """Whether ``source`` is a WebP whose extended header (``VP8X``) flags an animation."""
    with open(source, "rb") as handle:
        head = handle.read(21)
    return len(head) == 21 and head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and bool(head[20] & 0x02)


def _rotation_matrix(rotation: float) -> list[int]:
    """The display matrix (16.16 fixed point, as FFmpeg stores it) that players read as a frame's ``rotation``
    (degrees counterclockwise, as PyAV's ``VideoFrame.rotation`` gives it)."""
    radians = math.radians(rotation)
    cos, sin = round(math.cos(radians) * 65536), round(math.sin(radians) * 65536)
    return [cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30]


def first_frame(av: ModuleType, source: Path) -> FirstFrame:
    """Decode ``source``'s first frame; a DarkIRError where it has none."""
    with open_input(av, source) as container:
        stream, damaged = video_stream(container, source), Damaged(source)  # damaged packets: warned of later
        for packet in container.demux(stream):
            for frame in damaged.decode(packet, "video"):
                _refuse_still_image(container, source)
                colour = video_colour(frame, source)
                before_zero = (frame.pts or 0) < 0 or (container.start_time or 0) < 0
                size, matrix = (frame.height, frame.width), _display_matrix(frame)
                return FirstFrame(size, matrix, frame.pts is not None, colour, before_zero, _pixel_aspect(stream))
        if _animated_webp(source):  # FFmpeg's WebP decoder reads no animation (ANIM/ANMF chunks)
            raise DarkIRError(
                f"{source}: an animated WebP, whose frames FFmpeg cannot decode; save it as single frames or an "
                "animated GIF first (Pillow and ImageMagick read it); nothing written"
            )
    # no frame, or none that decodes (a text file named .png): said before the output's encoder is opened and blamed
    raise DarkIRError(f"{source}: its video stream has no frames; nothing written")


def _pixel_aspect(stream: Any) -> Fraction | None:
    """The sample aspect ratio of ``stream``'s pixels (the container's, else the codec's), or None where they are
    square or it states none."""
    aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(aspect) if aspect and aspect != 1 else None


def _refuse_still_image(container: Any, source: Path) -> None:
    """Refuse an image that FFmpeg reads as a stream of one picture (``png_pipe``, ``jpeg_pipe``, ..., and a GIF of one
    frame), which would be written as a one-frame video; animated GIF and APNG are restored as videos."""
    name = container.format.name
    one_gif_frame = name == "gif" and all(stream.frames == 1 for stream in container.streams.video)
    if name == "image2" or name.endswith("_pipe") or one_gif_frame:
        how = (
            f"darkir restore {source} -o OUT restores images"
            if source.suffix.lower() in IMAGE_SUFFIXES
            else f"darkir restore reads it under an image suffix ({', '.join(IMAGE_SUFFIXES)}; a GIF saved as PNG)"
        )
        raise DarkIRError(f"{source}: is a still image ({name.removesuffix('_pipe')}), not a video; {how}")


class Damaged:
    """Decodes packets, skipping those the decoder refuses as invalid data (a damaged MJPEG frame, a broken audio
    packet: one of them stopped the whole video); :meth:`report` warns of them in one line."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.skipped = {"video": 0, "audio": 0}
        self.first: float | None = None  # when the first skipped packet plays, in seconds
        self.dropped = 0  # frames decoded after a skipped packet, timed before a frame already restored

    def decode(self, packet: Any, kind: str) -> list[Any]:
        """The frames of ``packet`` (a ``kind`` stream's), none where it is damaged."""
        try:
            return packet.decode()
        except pyav().InvalidDataError:
            self.skipped[kind] += 1
            if self.first is None and packet.pts is not None and packet.time_base:
                self.first = float(packet.pts * packet.time_base)
            return []

    def report(self) -> None:
        """Warn, naming the input, how many damaged packets were skipped (nothing where none was)."""
        counts = [f"{count} {kind}" for kind, count in self.skipped.items() if count]
        if counts:
            at = f", the first at {self.first:.3f} s" if self.first is not None else ""
            dropped = f", and {self.dropped} frame(s) it then gave out of order" if self.dropped else ""
            warn(
                f"{self.source}: skipped {' and '.join(counts)} packet(s) the decoder found damaged{at}{dropped}; the "
                "output lacks what they held"
            )
