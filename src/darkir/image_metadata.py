"""What a photo carries besides its pixels, kept from input to output: the ICC colour profile (without it a wide-gamut
photo changes colour in colour-managed viewers), the EXIF block (camera, date, place; its orientation set to 1, as
the pixels are turned upright on reading, and the thumbnail of the dark input unlinked) and the resolution in dots
per inch. JPEG and PNG outputs carry them; TIFF, WebP and BMP outputs do not, and a warning says so where an image loses
a profile or EXIF."""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

from darkir.errors import DarkIRWarning

#: The prefix of an EXIF block in a JPEG APP1 segment (and in what Pillow reads from PNG and WebP).
_EXIF_PREFIX = b"Exif\x00\x00"
#: The EXIF tag of the orientation, and the TIFF type of its value (SHORT).
_ORIENTATION, _SHORT = 0x0112, 3
#: The most bytes one JPEG segment holds after its marker and length.
_JPEG_SEGMENT = 65533
#: The identifier of an ICC profile's APP2 segments, and the profile bytes one of them holds.
_ICC_ID = b"ICC_PROFILE\x00"
_ICC_CHUNK = _JPEG_SEGMENT - len(_ICC_ID) - 2
#: Metres in an inch (PNG states its resolution per metre).
_INCH = 0.0254


@dataclass(frozen=True)
class Metadata:
    """An image's ICC profile, EXIF block (TIFF-structured, orientation 1) and (x, y) dots per inch (each or None)."""

    icc: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.icc, self.exif, self.dpi))


def read_metadata(handle: Any) -> Metadata | None:
    """The metadata of an image open in Pillow (None where it has none, or it cannot be read)."""
    info = getattr(handle, "info", {})
    icc = info.get("icc_profile") or None
    exif = info.get("exif") or None
    if exif is not None:
        exif = _for_restored(exif.removeprefix(_EXIF_PREFIX))
    dpi = info.get("dpi")
    try:
        dpi = (float(dpi[0]), float(dpi[1])) if dpi and min(float(dpi[0]), float(dpi[1])) > 0 else None
    except (TypeError, ValueError, IndexError):
        dpi = None
    metadata = Metadata(icc if isinstance(icc, bytes) else None, exif, dpi)
    return metadata or None


def _for_restored(exif: bytes) -> bytes | None:
    """The TIFF-structured EXIF block ``exif`` for the restored image: its orientation (in the first IFD) set to 1
    and its thumbnail (the second IFD, a small copy of the dark input) no longer linked; None where it is not a TIFF
    structure (it is then dropped rather than written malformed)."""
    if exif[:4] not in (b"II*\x00", b"MM\x00*") or len(exif) < 8:
        return None
    order = "<" if exif[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return None
    (entries,) = struct.unpack_from(order + "H", exif, ifd)
    block = bytearray(exif)
    end = ifd + 2 + 12 * entries
    for entry in range(ifd + 2, min(end, len(exif) - 11), 12):
        tag, kind, count = struct.unpack_from(order + "HHI", exif, entry)
        if tag == _ORIENTATION and kind == _SHORT and count == 1:
            struct.pack_into(order + "H", block, entry + 8, 1)
    if end + 4 <= len(exif):
        struct.pack_into(order + "I", block, end, 0)
    return bytes(block)


def add_metadata(suffix: str, data: bytes, metadata: Metadata | None) -> bytes:
    """The encoded image ``data`` (a file of ``suffix``) with ``metadata`` added where the format is JPEG or PNG."""
    if not metadata:
        return data
    if suffix in (".jpg", ".jpeg") and data[:4] == b"\xff\xd8\xff\xe0":
        return _jpeg_with(data, metadata)
    if suffix == ".png":
        return _png_with(data, metadata)
    if metadata.icc is not None or metadata.exif is not None:
        warnings.warn(
            f"{suffix.lstrip('.').upper()} outputs keep no ICC profile or EXIF: images that have them lose them "
            "(JPEG and PNG keep them)",
            DarkIRWarning,
            stacklevel=3,
        )
    return data


def _jpeg_with(data: bytes, metadata: Metadata) -> bytes:
    """A JPEG (SOI, then a JFIF APP0 segment) with the resolution in its APP0 and EXIF and ICC segments after it."""
    app0_end = 4 + struct.unpack_from(">H", data, 4)[0]
    app0 = bytearray(data[4:app0_end])
    if metadata.dpi is not None and app0[2:7] == b"JFIF\x00" and len(app0) >= 14:
        app0[9] = 1  # units: dots per inch
        struct.pack_into(">HH", app0, 10, *(min(65535, max(1, round(d))) for d in metadata.dpi))
    segments = []
    if metadata.exif is not None and len(_EXIF_PREFIX) + len(metadata.exif) <= _JPEG_SEGMENT:
        segments.append(_segment(0xE1, _EXIF_PREFIX + metadata.exif))
    if metadata.icc is not None:
        chunks = [metadata.icc[i : i + _ICC_CHUNK] for i in range(0, len(metadata.icc), _ICC_CHUNK)]
        if len(chunks) <= 255:
            segments += [_segment(0xE2, _ICC_ID + bytes([n, len(chunks)]) + c) for n, c in enumerate(chunks, 1)]
    return data[:4] + bytes(app0) + b"".join(segments) + data[app0_end:]


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _png_with(data: bytes, metadata: Metadata) -> bytes:
    """A PNG with iCCP, eXIf and pHYs chunks right after its IHDR (replacing any it has)."""
    chunks = []
    if metadata.icc is not None:
        chunks.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(metadata.icc)))
    if metadata.exif is not None:
        chunks.append(_chunk(b"eXIf", metadata.exif))
    if metadata.dpi is not None:
        per_metre = (min(2**31 - 1, round(d / _INCH)) for d in metadata.dpi)
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    replaced = {chunk[4:8] for chunk in chunks} | ({b"sRGB"} if metadata.icc is not None else set())
    kept, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        end = position + 12 + length
        if data[position + 4 : position + 8] not in replaced:
            kept.append(data[position:end])
        position = end
    return data[:8] + kept[0] + b"".join(chunks) + b"".join(kept[1:])


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
