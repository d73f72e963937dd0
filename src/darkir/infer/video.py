"""Restoring videos frame by frame with PyAV: streamed, same frame count, timing and resolution, audio kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm import tqdm

from darkir.errors import DarkIRError
from darkir.infer.restorer import Restorer
from darkir.outputs import OutputError, OutputExistsError, claim, commit, is_same_file, temporary_path


@dataclass(frozen=True)
class VideoReport:
    """What a video restoration produced."""

    frames: int
    audio: str  # "copied", "re-encoded" or "none"
    output: Path


def _av() -> ModuleType:
    try:
        import av
    except ImportError as exc:
        raise DarkIRError("video support needs PyAV: pip install 'darkir[video]'") from exc
    return av


def restore_video(
    restorer: Restorer,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    codec: str = "libx264",
    crf: int = 18,
    progress: bool = True,
    overwrite: bool = True,
) -> VideoReport:
    """Restore every frame of ``source`` into ``target`` (H.264 by default).

    Frames are decoded, restored and encoded one at a time, so memory does not grow with the
    video's length. Each output frame keeps its input timestamp (so frame count, frame rate and
    duration are kept), the resolution is kept, and the first audio stream is copied packet by
    packet when the output container can hold its codec, else re-encoded to the container's default.
    The output is claimed (another run writing it makes this one stop), written to a temporary file,
    fsynced and renamed at the end: a failure leaves no partial output and never touches an existing
    one, which is only replaced with ``overwrite``. The input itself is never an output.
    """
    source, target = Path(source), Path(target)
    check_video_paths(source, target, overwrite)
    with claim(target):
        return _restore_video(restorer, source, target, codec, crf, progress, overwrite)


def check_video_paths(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse a missing input, an output that is the input, and an existing output without ``overwrite``."""
    if not source.is_file():
        raise DarkIRError(f"{source}: no such video file")
    if is_same_file(source, target):
        raise DarkIRError(f"{target} is the input video; choose another output")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass --overwrite to replace it")


def _restore_video(
    restorer: Restorer, source: Path, target: Path, codec: str, crf: int, progress: bool, overwrite: bool
) -> VideoReport:
    av = _av()
    try:
        container = av.open(str(source))
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: cannot open as a video ({exc})") from exc
    tmp = temporary_path(target)
    try:
        with container, av.open(str(tmp), "w", format=_format_for(target)) as output:
            if not container.streams.video:
                raise DarkIRError(f"{source}: has no video stream")
            video_in = container.streams.video[0]
            audio_in = container.streams.audio[0] if container.streams.audio else None
            width, height = video_in.codec_context.width, video_in.codec_context.height
            video_out = output.add_stream(codec, rate=video_in.average_rate or video_in.guessed_rate or 25)
            video_out.width, video_out.height = width, height
            video_out.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
            video_out.time_base = video_in.time_base
            if codec in ("libx264", "libx265"):
                video_out.options = {"crf": str(crf)}
            audio_out, audio_mode = _audio_stream(output, audio_in)
            frames = _transcode(av, container, output, restorer, video_in, video_out, audio_in, audio_out, progress)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        commit(tmp, target, overwrite)
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: video processing failed: {exc}") from exc
    except OSError as exc:
        raise OutputError(f"{target}: {exc.strerror or exc}; nothing replaced") from None
    finally:
        tmp.unlink(missing_ok=True)
    return VideoReport(frames=frames, audio=audio_mode, output=target)


def _format_for(target: Path) -> str | None:
    """Container format from the output suffix (a temporary name must not change it)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}.get(
        target.suffix.lower()
    )


def _audio_stream(output: Any, audio_in: Any) -> tuple[Any, str]:
    if audio_in is None:
        return None, "none"
    if audio_in.codec_context.name in output.supported_codecs:
        return output.add_stream_from_template(audio_in), "copied"
    stream = output.add_stream(output.default_audio_codec, rate=audio_in.codec_context.sample_rate)
    stream.layout = audio_in.codec_context.layout
    return stream, "re-encoded"


def _transcode(
    av: ModuleType,
    container: Any,
    output: Any,
    restorer: Restorer,
    video_in: Any,
    video_out: Any,
    audio_in: Any,
    audio_out: Any,
    progress: bool,
) -> int:
    streams = [s for s in (video_in, audio_in) if s is not None]
    total = video_in.frames or None
    frames = 0
    copy_audio = audio_out is not None and audio_out.codec_context.name == audio_in.codec_context.name
    with tqdm(total=total, desc="restoring video", unit="frame", disable=not progress) as bar:
        for packet in container.demux(*streams):
            if packet.stream is audio_in:
                if copy_audio:
                    if packet.dts is not None:
                        packet.stream = audio_out
                        output.mux(packet)
                else:
                    for frame in packet.decode():
                        frame.pts = None
                        output.mux(audio_out.encode(frame))
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                restored = np.rint(restorer.restore_array(rgb) * 255.0).astype(np.uint8)
                out_frame = av.VideoFrame.from_ndarray(restored, format="rgb24")
                out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
                output.mux(video_out.encode(out_frame))
                frames += 1
                bar.update()
        output.mux(video_out.encode())
        if audio_out is not None and not copy_audio:
            output.mux(audio_out.encode())
    return frames
