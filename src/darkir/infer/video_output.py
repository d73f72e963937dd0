"""How a restored video is written: the encoders and containers it may be written with, its video stream (size,
timing, rotation, pixel shape, colour tags), the audio copied or re-encoded, the tags kept, and the last frame's
duration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darkir.errors import DarkIRError, warn
from darkir.infer.video_input import pyav
from darkir.infer.video_timing import FirstFrame, Timeline

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


def check_video_encoding(codec: str, crf: int) -> None:
    """Refuse an encoder not in :data:`VIDEO_CODECS` and a ``crf`` outside its range."""
    if codec not in VIDEO_CODECS:
        raise DarkIRError(f"unknown video codec {codec!r}; use {' or '.join(VIDEO_CODECS)}")
    if not 0 <= crf <= VIDEO_CODECS[codec]:
        raise DarkIRError(f"crf {crf} is out of range for {codec}; use 0 (lossless) to {VIDEO_CODECS[codec]}")


#: The smallest side (pixels) of a frame each encoder takes (x265 refuses smaller ones as it opens).
MIN_SIDE = {"libx264": 1, "libx265": 16}


def check_encodable(source: Path, size: tuple[int, int], codec: str) -> None:
    """Refuse frames smaller than ``codec`` encodes, naming the size, before any frame is restored."""
    smallest = MIN_SIDE.get(codec, 1)
    if min(size) < smallest:
        raise DarkIRError(
            f"{source}: its frames are {size[1]}x{size[0]}; {codec} encodes frames of at least {smallest} "
            "pixels a side: use --codec libx264; nothing written"
        )


def muxing(first: FirstFrame) -> dict[str, str]:
    """The muxer's options: an input that starts before time 0 is moved to 0 with all its streams, where MP4 and MOV
    would hide the frames before 0 behind an edit list (an MPEG-TS whose clock wrapped lost 11 of 20 frames so).
    Others keep their times (the move would count the encoder's delay too)."""
    return {"avoid_negative_ts": "make_non_negative"} if first.before_zero else {}


def video_output(output: Any, timeline: Timeline, settings: VideoSettings, first: FirstFrame, quiet: bool) -> Any:
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


def keep_tags(container: Any, output: Any, *streams: tuple[Any, Any]) -> None:
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


def audio_stream(output: Any, audio_in: Any, container: str) -> tuple[Any, str]:
    """The output audio stream: the input's packets copied where :data:`AUDIO_COPIED` says ``container`` holds them,
    else AAC (which every output format holds) at the input's channel layout (:func:`_ordered_layout` where it has no
    channel order) and the nearest sample rate AAC takes."""
    if audio_in is None:
        return None, "none"
    context = audio_in.codec_context
    copied, name = AUDIO_COPIED.get(container, output.supported_codecs), codec_name(audio_in)
    if name in copied and name in output.supported_codecs:
        return output.add_stream_from_template(audio_in), "copied"
    rates = pyav().codec.Codec("aac", "w").audio_rates
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


def codec_name(stream: Any) -> str:
    """The name of the codec of ``stream``'s packets ("mp3"), not of the decoder that reads them ("mp3float")."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


class LastSampleTimed:
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
