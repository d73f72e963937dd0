"""Restoring videos frame by frame with PyAV: streamed; frame count, timestamps, rotation, resolution, colour (see
:mod:`darkir.infer.video_colour`) and audio kept. This module runs the decode-restore-encode loop; what the input holds
is read by :mod:`darkir.infer.video_input`, the output's streams are made by :mod:`darkir.infer.video_output`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm import tqdm

from darkir.errors import DarkIRError
from darkir.imageio import not_a_file
from darkir.infer.compiling import compiling_note
from darkir.infer.inputs import check_image_fits
from darkir.infer.pipeline import Drain, Prefetch
from darkir.infer.restorer import Restorer
from darkir.infer.video_input import Damaged, first_frame, open_input, pyav, video_stream
from darkir.infer.video_output import (
    VIDEO_FORMATS,
    LastSampleTimed,
    VideoSettings,
    audio_stream,
    check_encodable,
    check_video_encoding,
    codec_name,
    keep_tags,
    muxing,
    video_output,
)
from darkir.infer.video_timing import (
    Frame,
    Stated,
    Timeline,
    check_complete,
    in_sample_time,
    keep_audio_time,
    stated_seconds,
)
from darkir.outputs import (
    DiskFullError,
    OutputError,
    OutputExistsError,
    claim,
    commit,
    is_disk_full,
    is_same_file,
    output_error,
    temporary_path,
)
from darkir.progress import progress_bar
from darkir.runtime import fixed_size_kernels


@dataclass(frozen=True)
class VideoReport:
    """What a video restoration produced."""

    frames: int
    audio: str  # "copied", "re-encoded" or "none"
    output: Path
    pixel_format: str = "yuv420p"  # the output's (yuv444p for a frame with an odd side, which browsers cannot play)


def restore_video(
    restorer: Restorer,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    codec: str = "libx264",
    crf: int = 18,
    progress: bool = True,
    overwrite: bool = True,
    batch: int | None = None,
) -> VideoReport:
    """Restore every frame of ``source`` into ``target`` (H.264 by default).

    Frames are decoded, restored ``batch`` at a time (default one: on an H200 at 1080p, one frame at a time ran at
    2.9x the frames per second of four, ``reports/gpu_restore.json``) and encoded, each stage in its
    own thread so that they overlap; memory does not grow with the video's length. Each output frame keeps its
    input timestamp in the input's time base (so frame count, variable frame rates and duration are kept); an input
    without timestamps (a raw H.264 or HEVC stream) is timed at the frame rate its stream states (:class:`Timeline`).
    The resolution and the display matrix (rotation, flips) are kept (a resolution that changes midway is an error),
    and the first audio stream is copied packet by packet when the output container holds its codec, else re-encoded
    to AAC (:func:`~darkir.infer.video_output.audio_stream`). Fewer frames than the input states (a truncated file)
    are warned about.
    The output is claimed (another run writing it makes this one stop), written to a temporary file,
    fsynced and renamed at the end: a failure leaves no partial output and never touches an existing
    one, which is only replaced with ``overwrite``. The input itself is never an output.
    """
    source, target = Path(source), Path(target)
    check_video_paths(source, target, overwrite)
    check_video_encoding(codec, crf)
    if batch is not None and batch < 1:
        raise DarkIRError(f"batch must be at least 1 frame, got {batch}")
    with claim(target):
        return _restore_video(restorer, source, target, VideoSettings(codec, crf, batch), progress, overwrite)


def check_video_paths(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse a missing input, an output format not in :data:`VIDEO_FORMATS`, an output that is the input, a
    folder or a link to nothing, and an existing output without ``overwrite``."""
    if source.is_dir():
        raise DarkIRError(
            f"{source} is a folder; darkir video restores one video file (darkir restore {source} -o OUT restores "
            "the videos and images in a folder)"
        )
    if not source.is_file():
        raise DarkIRError(f"{source}: {not_a_file(source, 'no such video file')}")
    if target.suffix.lower() not in VIDEO_FORMATS:
        raise DarkIRError(
            f"{target}: cannot write {target.suffix or 'suffix-less'} videos; use {', '.join(VIDEO_FORMATS)} (or end "
            "a folder's name with /)"
        )
    if is_same_file(source, target):
        raise DarkIRError(f"{target} is the input video; choose another output")
    if target.is_dir():
        raise OutputError(f"{target}: the output is a folder; move it or choose another output")
    if target.is_symlink() and not target.exists():  # os.link would refuse it only once the video is restored
        raise OutputError(f"{target}: the output is a link to nothing; remove it or choose another output")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it")


def _restore_video(
    restorer: Restorer, source: Path, target: Path, settings: VideoSettings, progress: bool, overwrite: bool
) -> VideoReport:
    av = pyav()
    tmp = temporary_path(target)
    try:
        first = first_frame(av, source)
        check_encodable(source, first.size, settings.codec)
        # the first decoded frame's size: a header may state another
        check_image_fits(restorer, f"{source}: its frames", *first.size, consequence="nothing written")
        with (
            open_input(av, source) as container,
            av.open(str(tmp), "w", format=VIDEO_FORMATS[target.suffix.lower()], options=muxing(first)) as output,
        ):
            video_in = video_stream(container, source, say_which=True)
            audio_in = container.streams.audio[0] if container.streams.audio else None
            timeline = Timeline(source, video_in, first)
            video_out = video_output(output, timeline, settings, first, quiet=not progress)
            pixel_format = str(video_out.pix_fmt)
            audio_out, audio_mode = audio_stream(output, audio_in, VIDEO_FORMATS[target.suffix.lower()])
            keep_tags(container, output, (video_in, video_out), (audio_in, audio_out))
            batch = settings.batch or 1
            _expect_frames(restorer, video_in, timeline, batch, progress)
            with fixed_size_kernels(restorer.device):
                streams = (video_in, video_out, audio_in, audio_out)
                frames, sounds = _transcode(av, container, output, restorer, streams, batch, progress, timeline)
            if audio_in is not None and not sounds:  # an audio stream without packets: the output has none
                audio_mode = "none (the input's audio stream is empty)"
            if not frames:
                raise DarkIRError(f"{source}: its video stream has no frames; nothing written")
            stated = Stated(video_in.frames, stated_seconds(video_in))  # read while the input is open (PyAV 19)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        commit(tmp, target, overwrite)
        check_complete(source, stated, timeline)
    except av.FFmpegError as exc:
        failed = _failed_file(exc.filename, source, target, tmp, settings.codec)
        kind = DiskFullError if is_disk_full(exc) else DarkIRError
        raise kind(f"{failed}: video processing failed: {exc.strerror or type(exc).__name__}") from exc
    except OSError as exc:
        raise output_error(target, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    return VideoReport(frames=frames, audio=audio_mode, output=target, pixel_format=pixel_format)


def _expect_frames(restorer: Restorer, video_in: Any, timeline: Timeline, batch: int, progress: bool) -> None:
    """Tell the Restorer how many frames of this size follow (the header's count, else its duration times the frame
    rate), so that under ``compile="auto"`` on a GPU it compiles for a video long enough; say so when it does."""
    if not restorer.compiles_on_demand:
        return
    frames = video_in.frames or round((stated_seconds(video_in) or 0.0) * timeline.rate)
    if frames < batch:
        return
    chosen = restorer.expect({(batch, *timeline.size): frames // batch})
    if chosen and progress:
        tqdm.write(compiling_note(chosen), file=sys.stderr)


def _failed_file(filename: str | None, source: Path, target: Path, tmp: Path, encoder: str) -> str:
    """The user's file an FFmpeg error is about, never the temporary one; where a codec failed to open, with its
    name (the encoder's failure is the output's, a decoder's the input's)."""
    if filename == str(tmp):
        return str(target)
    if filename and filename.startswith("avcodec_open2("):
        codec = filename.split('"')[1] if filename.count('"') >= 2 else filename
        return f"{target if codec in (encoder, 'aac') else source} ({codec})"
    return str(source)


@dataclass
class _Restored:
    """Frames of one size restored together: (N, H, W, 3) RGB levels of the frames' dtype."""

    frames: list[Frame]
    images: np.ndarray


@dataclass
class _Audio:
    """An audio packet to copy, or a decoded audio frame to re-encode."""

    payload: Any


def _transcode(
    av: ModuleType,
    container: Any,
    output: Any,
    restorer: Restorer,
    streams: tuple[Any, Any, Any, Any],
    batch: int,
    progress: bool,
    timeline: Timeline,
) -> tuple[int, int]:
    """Decode (a thread), restore ``batch`` frames at a time (here) and encode (another thread), overlapped; returns
    the video frames and the audio packets or frames written."""
    video_in, video_out, audio_in, audio_out = streams
    copy_audio = audio_out is not None and codec_name(audio_out) == codec_name(audio_in)
    written, sounds, colour = 0, 0, timeline.colour
    video_packets = LastSampleTimed(output)

    def write(item: _Restored | _Audio) -> None:
        nonlocal written, sounds
        if isinstance(item, _Audio):
            sounds += 1
            if copy_audio:
                item.payload.stream = audio_out
                output.mux(item.payload)
            else:
                output.mux(audio_out.encode(item.payload))
            return
        for frame, rgb in zip(item.frames, item.images, strict=True):
            out = colour.from_rgb(av, rgb, video_out.pix_fmt)
            out.pts, out.time_base = frame.pts, frame.time_base
            video_packets.mux(video_out.encode(out))
            written += 1
            bar.update()

    decoded = _decoded(container, video_in, audio_in, copy_audio, timeline)
    with (
        progress_bar(  # leave=None: kept where it is the only bar (darkir video), cleared under restore's bar of files
            total=video_in.frames or None, desc="restoring video", unit="frame", disable=not progress, leave=None
        ) as bar,
        Prefetch(decoded, depth=2 * batch, name="darkir-decode") as reader,
        Drain(write, depth=1, name="darkir-encode") as writer,
    ):
        pending: list[Frame] = []
        for item in reader:
            if isinstance(item, _Audio):
                writer.put(item)
                continue
            pending.append(item)
            if len(pending) == batch:
                writer.put(_restore_frames(restorer, pending))
                pending = []
        if pending:
            writer.put(_restore_frames(restorer, pending))
        writer.finish()
    video_packets.mux(video_out.encode())
    video_packets.finish(timeline.end - timeline.start)
    if audio_out is not None and not copy_audio:
        output.mux(audio_out.encode())
    return written, sounds


def _decoded(
    container: Any, video_in: Any, audio_in: Any, copy_audio: bool, timeline: Timeline
) -> Iterator[Frame | _Audio]:
    """The input's video frames (RGB, in order, timed by ``timeline``) and audio (packets to copy, else frames in
    samples' time), as demuxed; a damaged packet (one the decoder refuses) is skipped and counted."""
    streams = [s for s in (video_in, audio_in) if s is not None]
    audio_end: int | None = None  # where the last audio frame to re-encode ends, in samples
    damaged = Damaged(timeline.source)
    for packet in container.demux(*streams):
        if packet.stream is audio_in:
            if copy_audio:
                if packet.dts is not None:
                    yield _Audio(packet)
                continue
            for frame in damaged.decode(packet, "audio"):
                in_sample_time(frame, audio_in.time_base)
                audio_end = keep_audio_time(frame, audio_end, frame.time_base)
                yield _Audio(frame)
            continue
        for frame in damaged.decode(packet, "video"):
            if damaged.skipped["video"] and timeline.behind(frame):  # decoded out of order around the damage
                damaged.dropped += 1
                continue
            yield timeline.admit(frame)
    damaged.report()


def _restore_frames(restorer: Restorer, frames: list[Frame]) -> _Restored:
    """``frames`` (one size) restored in one batch."""
    return _Restored(frames, restorer.restore_levels(np.stack([frame.rgb for frame in frames])))
