"""The bytes of PNG and TIFF files where OpenCV reads or writes them wrong, and the structures darkir reads and
writes itself: a TIFF's first IFD (also an EXIF block's) and its layout tags, the orientation tag Pillow must not
apply, the alpha tag OpenCV leaves out of RGBA TIFFs; a PNG's colour type, gray transparency and chunks, and the
gray + alpha PNG OpenCV cannot write. :mod:`darkir.imageio` decodes and encodes images with them;
:mod:`darkir.image_metadata` edits EXIF blocks and PNG chunks with them."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The first bytes of a TIFF (classic and BigTIFF, either byte order) and of a PNG.
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The first bytes of each format darkir reads: PNG, JPEG, TIFF, WebP (``RIFF`` then ``WEBP`` at byte 8) and BMP.
_SIGNATURES = (PNG_SIGNATURE, b"\xff\xd8\xff", *TIFF_MAGIC, b"RIFF", b"BM")
#: The TIFF (and EXIF) tag of the orientation.
EXIF_ORIENTATION = 0x0112
#: The TIFF tag saying what samples beyond the colour ones are (2: unassociated alpha).
_TIFF_EXTRA_SAMPLES = 338
#: Largest IDAT chunk darkir writes (PNG allows 2**31 - 1 bytes).
_PNG_CHUNK = 1 << 24


def has_image_signature(path: Path) -> bool:
    """Whether the file at ``path`` begins as a PNG, JPEG, TIFF, WebP or BMP does (its first 12 bytes only)."""
    with open(path, "rb") as handle:
        start = handle.read(12)
    if start.startswith(b"RIFF"):
        return start[8:12] == b"WEBP"
    return start.startswith(_SIGNATURES)


@dataclass(frozen=True)
class Ifd:
    """The first IFD of a TIFF structure: its byte ``order`` (a struct prefix), ``offset``, the ``count`` of entries
    it declares, the offsets of those that the data holds whole, and whether it is a BigTIFF's (entries of 20 bytes
    and 8-byte counts and offsets, where a classic TIFF has 12 bytes and 2- and 4-byte ones)."""

    order: str
    offset: int
    count: int
    entries: list[int]
    big: bool = False

    @property
    def end(self) -> int:
        """Where the link to the next IFD is (after the declared entries)."""
        return self.offset + (8 + 20 * self.count if self.big else 2 + 12 * self.count)


def first_ifd(data: bytes, bigtiff: bool = False) -> Ifd | None:
    """The first IFD of the classic TIFF structure ``data`` (a TIFF file or an EXIF block), or with ``bigtiff`` of a
    BigTIFF too; None where it is not one."""
    big = bigtiff and data[:4] in (b"II+\x00", b"MM\x00+")
    if (data[:4] not in (b"II*\x00", b"MM\x00*") and not big) or len(data) < (16 if big else 8):
        return None
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)
    head, size = (8, 20) if big else (2, 12)
    if offset + head > len(data):
        return None
    (count,) = struct.unpack_from(order + ("Q" if big else "H"), data, offset)
    first = offset + head
    return Ifd(order, offset, count, list(range(first, min(first + size * count, len(data) - size + 1), size)), big)


@dataclass(frozen=True)
class TiffLayout:
    """How the first image of a TIFF stores its samples: its photometric, samples per pixel, extra samples, bits per
    sample and planar configuration tags (None where a tag is absent)."""

    photometric: Any
    samples: Any
    extra: Any
    bits: Any
    planar: Any

    @property
    def deep(self) -> bool:
        """Whether samples have more than 8 bits, which OpenCV reads itself rather than through libtiff's RGBA
        reader (which turns and inverts what it must)."""
        return max(self.bits if isinstance(self.bits, tuple) else (self.bits or 8,)) > 8

    def opencv_misreads(self) -> bool:
        """Whether OpenCV misreads this layout: deep gray or RGB samples in separate planes (read as interleaved)."""
        return self.deep and self.planar == 2 and self.photometric in (1, 2)

    @property
    def associated_alpha(self) -> bool:
        """Whether the (first) extra sample is associated alpha: the colour stored premultiplied by it."""
        return isinstance(self.extra, tuple) and self.extra[:1] == (1,)

    def samples_left_out(self) -> int:
        """How many samples of a gray or RGB layout darkir leaves out: those after the colour and an alpha (extra
        samples of other kinds, or a second alpha), which OpenCV would drop with the alpha or take for it."""
        if self.photometric not in (0, 1, 2) or not isinstance(self.samples, int):
            return 0
        colour = 3 if self.photometric == 2 else 1
        if not isinstance(self.extra, tuple):  # no ExtraSamples tag (OpenCV writes RGBA so): the first is the alpha
            return max(0, self.samples - colour - 1)
        alpha = 1 if self.extra[:1] in ((1,), (2,)) else 0
        return max(0, self.samples - colour - alpha)

    @property
    def lab(self) -> bool:
        """Whether the colour is CIELAB (photometric 8, 9 or 10: CIELab, ICCLab, ITULab), which OpenCV reads as if it
        were RGB."""
        return self.photometric in (8, 9, 10)

    def left_uninverted(self) -> bool:
        """Whether OpenCV gives this layout's stored values where white is zero (deep min-is-white gray), which
        must then be inverted."""
        return self.deep and self.photometric == 0


def tiff_layout(path: Path) -> TiffLayout | None:
    """The first image's :class:`TiffLayout` of the TIFF at ``path``; None where it cannot be read (OpenCV then
    reports what is wrong)."""
    from PIL import TiffImagePlugin

    try:
        with open(path, "rb") as handle:
            start = handle.read(16)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(start if start[2:4] in (b"+\x00", b"\x00+") else start[:8])
            handle.seek(ifd.next)
            ifd.load(handle)
            return TiffLayout(ifd.get(262), ifd.get(277), ifd.get(338), ifd.get(258), ifd.get(284))
    except Exception:
        return None


def tiff_pillow_mode(layout: TiffLayout | None) -> str | None:
    """The Pillow mode in which to decode a TIFF of ``layout`` (:func:`tiff_layout`) whose alpha OpenCV would lose
    or spoil: "LA" for gray with an extra sample (OpenCV drops it), "RGBA" for 8-bit RGB with unassociated alpha
    (libtiff's RGBA reader, which OpenCV uses for 8-bit colour, premultiplies the colour by it); None for other
    TIFFs, which OpenCV decodes."""
    if layout is None:
        return None
    if layout.photometric in (0, 1) and layout.samples == 2:  # min-is-white/black
        return "LA"
    if layout.photometric == 2 and layout.samples == 4 and layout.extra == (2,) and layout.bits == (8, 8, 8, 8):
        return "RGBA"
    return None


def without_orientation(data: np.ndarray) -> bytes:
    """TIFF bytes with the orientation tag of the first image set to 1, for Pillow to decode them as stored: from
    version 12 Pillow turns a TIFF as it loads it, and (12.3) wrongly so for some modes, e.g. L and I;16."""
    raw = bytearray(data)
    ifd = first_ifd(raw, bigtiff=True)
    for entry in ifd.entries if ifd is not None else []:
        tag, kind = struct.unpack_from(ifd.order + "HH", raw, entry)
        if tag == EXIF_ORIENTATION and kind in (3, 4):  # SHORT (as the standard says) or LONG
            struct.pack_into(ifd.order + ("H" if kind == 3 else "I"), raw, entry + (12 if ifd.big else 8), 1)
    return bytes(raw)


def tiff_alpha_marked(data: bytes) -> bytes:
    """OpenCV's RGBA TIFF ``data`` with its fourth sample marked as unassociated alpha (ExtraSamples 2), which
    OpenCV leaves out (readers then warn, or ask what the sample is): the first IFD, with the tag added, is written
    again at the end of the file and the header points to it; every value it points to stays where it was."""
    ifd = first_ifd(data)
    if ifd is None:
        return data
    order = ifd.order
    entries = {struct.unpack_from(order + "H", data, at)[0]: data[at : at + 12] for at in ifd.entries}
    short = {tag: struct.unpack_from(order + "H", entry, 8)[0] for tag, entry in entries.items() if tag in (262, 277)}
    if _TIFF_EXTRA_SAMPLES in entries or short.get(262) != 2 or short.get(277) != 4:
        return data
    entries[_TIFF_EXTRA_SAMPLES] = struct.pack(order + "HHIHH", _TIFF_EXTRA_SAMPLES, 3, 1, 2, 0)
    (after,) = struct.unpack_from(order + "I", data, ifd.end)
    body = data + b"\0" * (len(data) % 2)  # an IFD starts on a word boundary
    table = struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
    return body[:4] + struct.pack(order + "I", len(body)) + body[8:] + table + struct.pack(order + "I", after)


@dataclass(frozen=True)
class PngInfo:
    """What OpenCV loses of a PNG: its colour type and bit depth, and the gray value its tRNS makes transparent."""

    color_type: int
    bits: int
    gray_key: int | None


def png_info(data: np.ndarray) -> PngInfo | None:
    """The :class:`PngInfo` of PNG bytes ``data`` (None for other formats), after checking that no chunk is cut short
    and the CRC of each critical chunk (a ValueError names a bad one): libpng would print its own error about them to
    stderr, beside darkir's (a truncated PNG, which it cannot decode, even where only its IEND chunk is missing)."""
    if data[:8].tobytes() != PNG_SIGNATURE:
        return None
    buffer, position, color_type, bits, key = memoryview(data), 8, -1, 8, None
    while position + 12 <= len(buffer):
        length, kind = struct.unpack_from(">I4s", buffer, position)
        end, name = position + 12 + length, kind.decode("latin-1")
        if kind == b"IEND":
            return PngInfo(color_type, bits, key)
        if end > len(buffer):
            raise ValueError(f"truncated PNG: the file ends inside its {name} chunk")
        body, (crc,) = buffer[position + 8 : end - 4], struct.unpack_from(">I", buffer, end - 4)
        critical = not kind[0] & 0x20  # a lower-case first letter marks an ancillary chunk, which libpng skips
        if critical and zlib.crc32(buffer[position + 4 : end - 4]) != crc:
            raise ValueError(f"corrupt PNG: CRC error in its {name} chunk")
        if kind == b"IHDR" and length >= 10:
            bits, color_type = body[8], body[9]
        elif kind == b"tRNS" and color_type == 0 and length >= 2:
            key = struct.unpack_from(">H", body)[0]
        position = end
    raise ValueError("truncated PNG: the file ends before its IEND chunk")


def png_gray_alpha(array: np.ndarray, png: PngInfo) -> np.ndarray:
    """Gray + alpha PNG pixels as (H, W, 2): OpenCV widens them to RGBA, and drops a gray PNG's tRNS transparency."""
    if png.color_type == 4 and array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, [0, 3]])
    if png.color_type == 0 and png.gray_key is not None and array.ndim == 2:
        key = png.gray_key * (255 // (2**png.bits - 1)) if png.bits <= 8 else png.gray_key  # as OpenCV widens 1-4 bits
        opaque = np.iinfo(array.dtype).max
        return np.dstack([array, np.where(array == key, 0, opaque).astype(array.dtype)])
    return array


def gray_alpha_png(array: np.ndarray) -> bytes:
    """A PNG of colour type 4 (gray + alpha) of an (H, W, 2) uint8 or uint16 array; Pillow has no 16-bit one."""
    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array, array.dtype.newbyteorder(">")).view(np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # the Up filter, each byte minus the one above it, makes photos compress better
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    compressed = zlib.compress(filtered.tobytes(), 6)
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 8 * array.dtype.itemsize, 4, 0, 0, 0))]
    chunks += [(b"IDAT", compressed[i : i + _PNG_CHUNK]) for i in range(0, len(compressed), _PNG_CHUNK)]
    chunks.append((b"IEND", b""))
    return PNG_SIGNATURE + b"".join(png_chunk(kind, body) for kind, body in chunks)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """A PNG chunk: length, ``kind``, ``body`` and the CRC of kind and body."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
