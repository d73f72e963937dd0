"""When each frame of a restored video is shown: the decoded frames admitted in order (timed, checked for size and
order, converted to RGB), the frame rate of an input without timestamps, audio timestamps kept in sync, and the check
that the whole input was read."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from darkir.errors import DarkIRError, warn
from darkir.infer.video_colour import VideoColour

#: The frame rate a video without timestamps that states no frame rate is written at (FFmpeg's own guess for such
#: raw streams).
DEFAULT_RATE = Fraction(25)
#: Frame rates above this that a stream states are taken as not stated.
MAX_RATE = 1000


@dataclass(frozen=True)
class FirstFrame:
    """What a video's first frame tells: its size (height, width), the display matrix players turn and flip the
    frames with, whether it has a timestamp, how its colour is coded, whether the input starts before time 0
    (an MPEG-TS whose clock wrapped, which FFmpeg unwraps below 0), and the shape of its pixels (their sample
    aspect ratio, width to height: 4:3 in a 16:9 DVD; None where square or unstated)."""

    size: tuple[int, int]
    matrix: list[int] | None
    timed: bool
    colour: VideoColour
    before_zero: bool = False
    pixel_aspect: Fraction | None = None


@dataclass
class Frame:
    """A decoded video frame: RGB (H, W, 3), 8-bit or, from a deeper video, 16-bit, and its timestamp."""

    rgb: np.ndarray
    pts: int | None
    time_base: Any


#: The most frames an H.264 or HEVC decoder holds back to put them in order (its largest reordering window).
REORDER_FRAMES = 16


class Timeline:
    """Admits the decoded frames one by one, in order: times each (see below), refuses one of another size than the
    first's (an output keeps one resolution) and counts them and where the last ends, for :func:`check_complete`.

    Where the first frame has a timestamp, each frame keeps its own in the input's time base (a later one without
    one is put one frame after the one before it). Otherwise (a raw H.264 or HEVC stream, which holds none) frame
    ``i`` is at ``i / rate`` at the rate the stream states (:func:`stated_rate`): the container's own guess is no
    use there (FFmpeg's raw demuxers give 25 fps and a time base of 1/1200000 whatever the stream says).
    """

    def __init__(self, source: Path, video_in: Any, first: FirstFrame) -> None:
        self.source = source
        self.size = first.size
        self.timed = first.timed
        self.colour = first.colour
        if first.timed:
            self.rate = Fraction(video_in.average_rate or video_in.guessed_rate or DEFAULT_RATE)
            self.time_base = video_in.time_base
        else:
            self.rate = stated_rate(source, video_in)
            self.time_base = 1 / self.rate
        self.frames, self.start, self.end = 0, 0.0, 0.0  # frames admitted; where the first starts, the last ends (s)
        self._last: int | None = None  # the last frame's output timestamp
        self._stated: int | None = None  # the last timestamp the input stated
        self._moved = False  # whether a frame was moved off the time of the one ahead of it (warned once)

    def _timed(self, frame: Any, duration: int) -> int:
        """The output timestamp of a frame of a timed input: its own; one ``duration`` after the last where it has
        none; one tick after the last where it is timed with it (warned once: no output can hold two frames at
        one time). A frame timed before the last is an error."""
        if frame.pts is None:
            return 0 if self._last is None else self._last + duration
        self._check_order(frame)
        self._stated = frame.pts
        if self._last is None or frame.pts > self._last:
            return frame.pts
        if frame.pts == self._last and not self._moved:
            self._moved = True
            warn(
                f"{self.source}: frame {self.frames + 1} is timed at {float(frame.pts * frame.time_base):.3f} s, as "
                f"the frame ahead of it; such frames are written {frame.time_base} s after the one ahead of them"
            )
        return self._last + 1

    def behind(self, frame: Any) -> bool:
        """Whether ``frame`` is timed before the last frame admitted (which :meth:`admit` refuses) by no more than
        :data:`REORDER_FRAMES` frames: a frame the decoder gives out of order (around a damaged packet), not a jump
        back in the stream's time."""
        gap = self._behind_by(frame)
        return gap is not None and gap <= REORDER_FRAMES / self.rate

    def _behind_by(self, frame: Any) -> Fraction | None:
        """How many seconds ``frame`` is timed before the last timestamp the input stated; None where it is not (or
        either has no time)."""
        if not self.timed or frame.pts is None or self._stated is None or frame.pts >= self._stated:
            return None
        return (self._stated - frame.pts) * (frame.time_base or self.time_base)

    def _check_order(self, frame: Any) -> None:
        """Refuse a frame timed before the one decoded ahead of it: no output container can keep that timing."""
        if self._behind_by(frame) is None:
            return
        assert self._stated is not None  # (behind it)
        base = frame.time_base or self.time_base
        at, before = float(frame.pts * base), float(self._stated * base)
        raise DarkIRError(
            f"{self.source}: frame {self.frames + 1} is timed at {at:.3f} s, before the frame ahead of it "
            f"({before:.3f} s); its timing cannot be kept"
        )

    def admit(self, frame: Any) -> Frame:
        """``frame`` in RGB (see :class:`VideoColour`) with its output timestamp; DarkIRError for one out of order
        or of another size."""
        if not self.timed:
            pts, time_base, duration = self.frames, self.time_base, 1
        else:
            time_base = frame.time_base or self.time_base
            duration = frame.duration or max(1, round(1 / (self.rate * time_base)))
            pts = self._timed(frame, duration)
        if (frame.height, frame.width) != self.size:
            raise DarkIRError(
                f"{self.source}: frame {self.frames + 1} (at {float(pts * time_base):.3f} s) is "
                f"{frame.width}x{frame.height}, but the frames before it are {self.size[1]}x{self.size[0]}; a video "
                "whose resolution changes cannot be restored as one: cut it where its size changes, restore each part"
            )
        if not self.frames:
            self.start = float(pts * time_base)
        self.frames, self._last, self.end = self.frames + 1, pts, float((pts + duration) * time_base)
        return Frame(self.colour.to_rgb(frame), pts, time_base)


def stated_rate(source: Path, video_in: Any) -> Fraction:
    """The frame rate to time frames without timestamps at: the one the video stream states (an H.264 or HEVC
    stream's timing information), else, with a warning, FFmpeg's guess or :data:`DEFAULT_RATE`."""
    stated = video_in.codec_context.framerate
    if stated and 0 < stated <= MAX_RATE:
        return Fraction(stated)
    guess = video_in.guessed_rate
    rate = Fraction(guess) if guess and 0 < guess <= MAX_RATE else DEFAULT_RATE
    warn(
        f"{source}: has no timestamps and states no frame rate; restored at {float(rate):g} fps (for another rate, "
        f"remux it first: ffmpeg -framerate FPS -i {source.name} -c copy {source.stem}.mkv)"
    )
    return rate


def stated_seconds(video_in: Any) -> float | None:
    """Where the video stream ends by the input's header (its duration, or Matroska's per-stream DURATION tag such
    as ``00:00:02.000000000``), None where it does not say."""
    if video_in.duration:
        return float(video_in.duration * video_in.time_base)
    try:
        hours, minutes, seconds = video_in.metadata["DURATION"].split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Stated:
    """What the input's header states of its video stream: its frame count (0: none) and length in seconds."""

    frames: int
    seconds: float | None


def check_complete(source: Path, stated: Stated, timeline: Timeline) -> None:
    """Warn (one line) where fewer frames were decoded than the input's header states (its frame count, else by
    its duration, more than two frames and a tenth of a second longer than the frames span from the first's start):
    a truncated or damaged file restored in part. Frames that the header counts but its duration leaves out (an
    MP4 cut without re-encoding keeps the frames before the cut, hidden by an edit list) are not missed."""
    missing = (stated.seconds or 0.0) - (timeline.end - timeline.start)
    if stated.seconds is not None and missing <= max(0.1, 2 / timeline.rate):
        return  # the frames span the stated duration
    expected, about = stated.frames, ""
    if not expected:
        if not stated.seconds:
            return
        expected, about = timeline.frames + round(missing * timeline.rate), "about "
    if timeline.frames < expected:
        warn(
            f"{source}: restored {timeline.frames} frames, but its header states {about}{expected}; "
            "the file may be truncated or damaged"
        )


def keep_audio_time(frame: Any, end: int | None, time_base: Fraction) -> int | None:
    """Keep a decoded audio frame's timestamp for the encoder (so that audio starting late or with a gap stays in
    sync with the picture), moved to where the frame ahead of it ends where it would start before that (a broken
    file's overlap, which the encoder refuses); a frame without one follows the frame ahead. Times are in
    ``time_base`` (samples, after :func:`in_sample_time`); returns where the frame ends."""
    if frame.pts is None and end is None:
        return None
    if frame.pts is None or (end is not None and frame.pts < end):
        frame.pts = end
    return frame.pts + int(frame.samples / (frame.sample_rate * time_base))


def in_sample_time(frame: Any, time_base: Fraction) -> None:
    """Give a decoded audio frame its timestamp in samples (time base ``1 / sample_rate``), from ``time_base`` where
    the frame has none of its own: the AAC encoder cuts frames into its own sizes and times the pieces in the frame's
    time base, which a coarse one (AVI's MP3: one tick per 1152 samples) cannot hold, and the muxer then refuses
    them."""
    base = frame.time_base or time_base
    if frame.pts is not None:
        frame.pts = round(frame.pts * base * frame.sample_rate)
    frame.time_base = Fraction(1, frame.sample_rate)
