"""Restoring videos frame by frame with PyAV: streamed; frame count, timestamps, rotation, resolution, colour (see
:mod:`darkir.infer.video_colour`) and audio kept."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm import tqdm

from darkir.errors import DarkIRError, warn
from darkir.imageio import IMAGE_SUFFIXES, not_a_file
from darkir.infer.compiling import compiling_note
from darkir.infer.inputs import check_image_fits
from darkir.infer.pipeline import Drain, Prefetch
from darkir.infer.restorer import Restorer
from darkir.infer.video_colour import video_colour
from darkir.infer.video_timing import (
    FirstFrame,
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

#: Encoders a restored video is written with -> the largest ``crf`` each takes (0 is lossless).
VIDEO_CODECS = {"libx264": 51, "libx265": 51}
#: Output suffixes -> the container formats that hold those encoders with every frame's timestamp and the rotation.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


#: Output container -> the audio codecs copied into it as they are (FFmpeg lists more, but refuses to write them);
#: other audio is re-encoded to AAC. Matroska takes every codec FFmpeg lists for it.
AUDIO_COPIED = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac"},
    "mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be"},
}


@dataclass(frozen=True)
class VideoSettings:
    """How a restored video is encoded, and how many frames are restored at once (None: one)."""

    codec: str
    crf: int
    batch: int | None


@dataclass(frozen=True)
class VideoReport:
    """What a video restoration produced."""

    frames: int
    audio: str  # "copied", "re-encoded" or "none"
    output: Path
    pixel_format: str = "yuv420p"  # the output's (yuv444p for a frame with an odd side, which browsers cannot play)


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
    to AAC (:func:`_audio_stream`). Fewer frames than the input states (a truncated file) are warned about.
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


def check_video_encoding(codec: str, crf: int) -> None:
    """Refuse an encoder not in :data:`VIDEO_CODECS` and a ``crf`` outside its range."""
    if codec not in VIDEO_CODECS:
        raise DarkIRError(f"unknown video codec {codec!r}; use {' or '.join(VIDEO_CODECS)}")
    if not 0 <= crf <= VIDEO_CODECS[codec]:
        raise DarkIRError(f"crf {crf} is out of range for {codec}; use 0 (lossless) to {VIDEO_CODECS[codec]}")


def count_frames(source: str | os.PathLike[str], header: bool = True) -> int:
    """The number of frames of the video stream of ``source`` that is restored (:func:`_video_stream`): its header's
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
    av = _av()
    try:
        with _open_input(av, source) as container:
            yield container, _video_stream(container, source)
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: cannot read as a video ({exc.strerror or exc})") from exc


def _open_input(av: ModuleType, source: Path) -> Any:
    try:
        return av.open(str(source))
    except av.FFmpegError as exc:
        raise DarkIRError(f"{source}: cannot open as a video ({exc.strerror or exc})") from exc


def _video_stream(container: Any, source: Path, say_which: bool = False) -> Any:
    """The video stream of ``source`` that is restored: FFmpeg's best one (not a cover picture, which MP4 and MKV
    files may hold as a video stream of one frame); with ``say_which``, a warning names it where there are others."""
    if not container.streams.video:
        raise DarkIRError(f"{source}: has no video stream")
    cover = _av().stream.Disposition.attached_pic
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


def _muxing(first: FirstFrame) -> dict[str, str]:
    """The muxer's options: an input that starts before time 0 is moved to 0 with all its streams, where MP4 and MOV
    would hide the frames before 0 behind an edit list (an MPEG-TS whose clock wrapped lost 11 of 20 frames so).
    Others keep their times (the move would count the encoder's delay too)."""
    return {"avoid_negative_ts": "make_non_negative"} if first.before_zero else {}


def _first_frame(av: ModuleType, source: Path) -> FirstFrame:
    """Decode ``source``'s first frame; a DarkIRError where it has none."""
    with _open_input(av, source) as container:
        stream, damaged = _video_stream(container, source), _Damaged(source)  # damaged packets: warned of later
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


#: The smallest side (pixels) of a frame each encoder takes (x265 refuses smaller ones as it opens).
MIN_SIDE = {"libx264": 1, "libx265": 16}


def _check_encodable(source: Path, size: tuple[int, int], codec: str) -> None:
    """Refuse frames smaller than ``codec`` encodes, naming the size, before any frame is restored."""
    smallest = MIN_SIDE.get(codec, 1)
    if min(size) < smallest:
        raise DarkIRError(
            f"{source}: its frames are {size[1]}x{size[0]}; {codec} encodes frames of at least {smallest} "
            "pixels a side: use --codec libx264; nothing written"
        )


def _restore_video(
    restorer: Restorer, source: Path, target: Path, settings: VideoSettings, progress: bool, overwrite: bool
) -> VideoReport:
    av = _av()
    tmp = temporary_path(target)
    try:
        first = _first_frame(av, source)
        _check_encodable(source, first.size, settings.codec)
        # the first decoded frame's size: a header may state another
        check_image_fits(restorer, f"{source}: its frames", *first.size, consequence="nothing written")
        with (
            _open_input(av, source) as container,
            av.open(str(tmp), "w", format=VIDEO_FORMATS[target.suffix.lower()], options=_muxing(first)) as output,
        ):
            video_in = _video_stream(container, source, say_which=True)
            audio_in = container.streams.audio[0] if container.streams.audio else None
            timeline = Timeline(source, video_in, first)
            video_out = _video_output(output, timeline, settings, first, quiet=not progress)
            pixel_format = str(video_out.pix_fmt)
            audio_out, audio_mode = _audio_stream(output, audio_in, VIDEO_FORMATS[target.suffix.lower()])
            _keep_tags(container, output, (video_in, video_out), (audio_in, audio_out))
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


def _video_output(output: Any, timeline: Timeline, settings: VideoSettings, first: FirstFrame, quiet: bool) -> Any:
    """The output video stream: the input's size, the time base and rate of ``timeline`` (where the input has
    timestamps, its own: every frame keeps its exact timestamp, variable frame rates included), display matrix
    (players show it turned as they show the input), pixel aspect ratio and colour tags. ``quiet``: x265 prints
    only its errors."""
    height, width = timeline.size
    stream = output.add_stream(settings.codec, rate=timeline.rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = first.colour.output_format(width, height)
    first.colour.tag_stream(stream)
    if stream.pix_fmt.startswith("yuv444p"):
        warn(
            f"{timeline.source}: {width}x{height} has an odd side, so the output's colour is not subsampled (4:4:4), "
            "which browsers and many phones cannot play; crop it to even sides first for a 4:2:0 output"
        )
    stream.time_base = stream.codec_context.time_base = timeline.time_base
    options = {"crf": str(settings.crf)}
    if settings.codec == "libx265":
        # x265 prints its settings and totals itself, not through FFmpeg's log; its CRF 0 is not lossless by itself
        x265 = [*(["log-level=error"] if quiet else []), *(["lossless=1"] if settings.crf == 0 else [])]
        if x265:
            options["x265-params"] = ":".join(x265)
        if output.format.name in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # (FFmpeg's default hev1 is not played by Apple's players)
    stream.options = options
    if first.matrix is not None:
        stream.set_display_matrix(first.matrix)
    if first.pixel_aspect is not None:  # (an anamorphic video, shown squeezed with square pixels)
        stream.codec_context.sample_aspect_ratio = first.pixel_aspect
    return stream


#: Container tags the muxer writes itself, about the file rather than its content: not copied from the input.
MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}
#: Stream tags kept: what the stream is, not how it was encoded.
STREAM_TAGS = {"language", "title", "handler_name"}


def _keep_tags(container: Any, output: Any, *streams: tuple[Any, Any]) -> None:
    """Copy the input's tags (title, creation time, place...) to the output, and each kept stream's (its language,
    say); say which audio streams beyond the first (restored) one, and which subtitle streams, are left out."""
    output.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in MUXER_TAGS})
    for stream_in, stream_out in streams:
        if stream_in is not None and stream_out is not None:
            stream_out.metadata.update({k: v for k, v in stream_in.metadata.items() if k.lower() in STREAM_TAGS})
    others = [_stream_name(stream) for stream in container.streams.audio[1:]]
    if others:
        warn(
            f"{container.name}: only its first audio stream is kept; {len(others)} other(s) left out "
            f"({', '.join(others)})"
        )
    subtitles = [_stream_name(stream) for stream in container.streams.subtitles]
    if subtitles:
        left_out = f"{len(subtitles)} stream(s) left out ({', '.join(subtitles)})"
        warn(f"{container.name}: its subtitles are not kept; {left_out}")


def _stream_name(stream: Any) -> str:
    """A stream as a warning names it: by its language, else by its number in the file."""
    return stream.metadata.get("language", f"#{stream.index}")


def _audio_stream(output: Any, audio_in: Any, container: str) -> tuple[Any, str]:
    """The output audio stream: the input's packets copied where :data:`AUDIO_COPIED` says ``container`` holds them,
    else AAC (which every output format holds) at the input's channel layout (:func:`_ordered_layout` where it has no
    channel order) and the nearest sample rate AAC takes."""
    if audio_in is None:
        return None, "none"
    context = audio_in.codec_context
    copied, name = AUDIO_COPIED.get(container, output.supported_codecs), _codec_name(audio_in)
    if name in copied and name in output.supported_codecs:
        return output.add_stream_from_template(audio_in), "copied"
    rates = _av().codec.Codec("aac", "w").audio_rates
    stream = output.add_stream("aac", rate=min(rates, key=lambda rate: abs(rate - context.sample_rate)))
    layout = context.layout.name
    if layout.endswith("channels"):  # a channel count without an order ("6 channels"), which encoders refuse
        layout = _ordered_layout(len(context.layout.channels), audio_in)
    stream.layout = layout
    return stream, "re-encoded"


#: The order taken for audio that states only its channel count (as Matroska's PCM does): FFmpeg's default
#: layout for that count, each of which AAC encodes.
ORDERED_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _ordered_layout(channels: int, audio_in: Any) -> str:
    """The layout an AAC re-encoding of ``channels`` unordered channels gets: :data:`ORDERED_LAYOUTS`, else
    (more than AAC holds) stereo, with a warning that the channels are mixed down."""
    if channels in ORDERED_LAYOUTS:
        return ORDERED_LAYOUTS[channels]
    warn(f"{audio_in.container.name}: its audio has {channels} channels, more than AAC holds: mixed down to stereo")
    return "stereo"


def _codec_name(stream: Any) -> str:
    """The name of the codec of ``stream``'s packets ("mp3"), not of the decoder that reads them ("mp3float")."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


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
    copy_audio = audio_out is not None and _codec_name(audio_out) == _codec_name(audio_in)
    written, sounds, colour = 0, 0, timeline.colour
    video_packets = _LastSampleTimed(output)

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


class _LastSampleTimed:
    """Muxes a video stream's packets one behind, so that in MP4 and MOV the last one lasts to where the last frame
    ends. Those files store each sample's duration as the step to the next one's decode time, and the last one's as
    its packet says; with B-frames the decode times trail the frames' times by the encoder's delay, so after a long
    gap among the last frames (a frame held a second before the end) the track ended early: 0.24 s of 1.04 s."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.stretch = output.format.name in ("mp4", "mov")  # (Matroska times each block by its own timestamp)
        self._first_dts: int | None = None
        self._held: Any = None

    def mux(self, packets: list[Any]) -> None:
        """Mux the packet held so far and hold the last of ``packets``."""
        for packet in packets:
            if self._first_dts is None:
                self._first_dts = packet.dts
            if self._held is not None:
                self.output.mux(self._held)
            self._held = packet

    def finish(self, seconds: float) -> None:
        """Mux the last packet, its duration stretched where the samples before it leave less than ``seconds``
        (the span of the frames' times, the last one's duration included)."""
        packet, first = self._held, self._first_dts
        if packet is None:
            return
        if self.stretch and packet.dts is not None and first is not None and packet.time_base:
            span = round(seconds / packet.time_base)
            packet.duration = max(packet.duration or 0, span - (packet.dts - first))
        self.output.mux(packet)


def _decoded(
    container: Any, video_in: Any, audio_in: Any, copy_audio: bool, timeline: Timeline
) -> Iterator[Frame | _Audio]:
    """The input's video frames (RGB, in order, timed by ``timeline``) and audio (packets to copy, else frames in
    samples' time), as demuxed; a damaged packet (one the decoder refuses) is skipped and counted."""
    streams = [s for s in (video_in, audio_in) if s is not None]
    audio_end: int | None = None  # where the last audio frame to re-encode ends, in samples
    damaged = _Damaged(timeline.source)
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


class _Damaged:
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
        except _av().InvalidDataError:
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


def _restore_frames(restorer: Restorer, frames: list[Frame]) -> _Restored:
    """``frames`` (one size) restored in one batch."""
    return _Restored(frames, restorer.restore_levels(np.stack([frame.rgb for frame in frames])))
