"""A video's colour, kept from input to output: frames become RGB through the input's own YUV matrix and range, and
go back through the same matrix (limited range), at 8 bits or, for a deeper input, at 16 bits per channel and 10 bits
in the output; the output stream is tagged with the input's matrix, primaries and transfer, so that players show it
as they show the input. An untagged input is read as players read one: BT.709 from 1280 wide or 577 high on, else
BT.601, and the output says which it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from darkir.errors import warn

#: AVColorSpace values and the swscale matrix that converts them (others are read by size, see :func:`video_colour`).
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
#: The AVColorSpace tag an untagged input's output gets for the matrix it was read with.
_TAGS = {"ITU709": 1, "ITU601": 6}
#: AVColorTransferCharacteristic values of HDR video: SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG).
_HDR = {16: "PQ", 18: "HLG"}
#: AVColorRange: limited (MPEG) range, which every output is encoded in.
_LIMITED = 1


@dataclass(frozen=True)
class VideoColour:
    """How the frames of one video are coded: the swscale ``matrix`` name, the AVColorSpace ``tag`` the output
    carries, the AVColorPrimaries ``primaries`` and AVColorTransferCharacteristic ``transfer`` (kept as tagged) and
    whether samples have more than 8 bits (``deep``)."""

    matrix: str
    tag: int
    primaries: int
    transfer: int
    deep: bool

    @property
    def rgb_format(self) -> str:
        """The RGB pixel format frames are restored in: 8 or 16 bits per channel."""
        return "rgb48le" if self.deep else "rgb24"

    @property
    def peak(self) -> float:
        """The largest value of :attr:`rgb_format`."""
        return 65535.0 if self.deep else 255.0

    def output_format(self, width: int, height: int) -> str:
        """The output's YUV format: 4:2:0 where both sides are even (4:4:4 otherwise), 8 or 10 bits."""
        chroma = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        return f"{chroma}10le" if self.deep else chroma

    @property
    def _scaling(self) -> Any:
        """swscale's flags for 8-bit frames: accurate rounding and full chroma interpolation, without which a
        round trip through RGB darkens by about one level; 10-bit frames round trip within half a level as they are
        (and the flags would spoil them)."""
        from av.video.reformatter import Interpolation

        return None if self.deep else Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT

    def to_rgb(self, frame: Any) -> np.ndarray:
        """``frame`` as an (H, W, 3) RGB array of :attr:`rgb_format`, through this matrix and the frame's range."""
        return frame.to_ndarray(format=self.rgb_format, src_colorspace=self.matrix, interpolation=self._scaling)

    def from_rgb(self, av: Any, rgb: np.ndarray, pix_fmt: str) -> Any:
        """The RGB array ``rgb`` (of :attr:`rgb_format`) as a ``pix_fmt`` frame, through this matrix, limited range."""
        frame = av.VideoFrame.from_ndarray(rgb, format=self.rgb_format)
        return frame.reformat(
            format=pix_fmt, dst_colorspace=self.matrix, dst_color_range="MPEG", interpolation=self._scaling
        )

    def tag_stream(self, stream: Any) -> None:
        """Tag the output ``stream`` with this matrix, the input's primaries and transfer, and limited range."""
        context = stream.codec_context
        context.colorspace, context.color_range = self.tag, _LIMITED
        context.color_primaries, context.color_trc = self.primaries, self.transfer


def video_colour(frame: Any, source: Path) -> VideoColour:
    """The colour of the video whose first frame is ``frame`` (warns once for HDR video, which is restored as coded,
    not tone-mapped)."""
    matrix = _MATRICES.get(int(frame.colorspace))
    if matrix is None:
        matrix = "ITU709" if frame.width >= 1280 or frame.height > 576 else "ITU601"
        tag = _TAGS[matrix]
    else:
        tag = int(frame.colorspace)
    transfer = int(frame.color_trc)
    deep = frame.format.components[0].bits > 8
    if transfer in _HDR:
        warn(
            f"{source}: HDR video ({_HDR[transfer]}): its frames are restored as they are coded, not tone-mapped; "
            f"the output keeps its {_HDR[transfer]} tags{' and 10 bits' if deep else ''}"
        )
    return VideoColour(matrix, tag, int(frame.color_primaries), transfer, deep)


#: The colour of a video without frames (nothing is encoded with it).
UNTAGGED = VideoColour("ITU601", 6, 2, 2, deep=False)
