"""What a photo carries besides its pixels, kept from input to output: the ICC colour profile (without it a wide-gamut
photo changes colour in colour-managed viewers), the EXIF block (camera, date, place; its orientation set to 1, as
the pixels are turned upright on reading, and the thumbnail of the dark input unlinked), the XMP packet (ratings,
keywords, captions, edits; its orientation set to 1 too) and the resolution in dots per inch. JPEG and PNG outputs
carry them; TIFF, WebP and BMP outputs do not, and a warning says so where an image loses any of them."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from darkir.errors import warn
from darkir.image_formats import EXIF_ORIENTATION, first_ifd, png_chunk

#: The prefix of an EXIF block in a JPEG APP1 segment (and in what Pillow reads from PNG and WebP).
_EXIF_PREFIX = b"Exif\x00\x00"
#: The TIFF type of the orientation's value (SHORT).
_SHORT = 3
#: The TIFF/EXIF tag of the horizontal resolution.
_RESOLUTION = 282
#: The most bytes one JPEG segment holds after its marker and length.
_JPEG_SEGMENT = 65533
#: The identifier of an ICC profile's APP2 segments, and the profile bytes one of them holds.
_ICC_ID = b"ICC_PROFILE\x00"
_ICC_CHUNK = _JPEG_SEGMENT - len(_ICC_ID) - 2
#: The identifier of a JPEG APP1 segment that holds an XMP packet, and the keyword of a PNG iTXt chunk that does.
_XMP_ID, _XMP_KEYWORD = b"http://ns.adobe.com/xap/1.0/\x00", b"XML:com.adobe.xmp"
#: The orientation in an XMP packet, as an attribute (``tiff:Orientation="6"``) or an element (attributes of its own
#: allowed); a packet that binds the TIFF namespace to another prefix keeps its orientation.
_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation\b[^>]*>\s*)[1-8](?=\s*["\'<])')
#: Metres in an inch (PNG states its resolution per metre).
_INCH = 0.0254


@dataclass(frozen=True)
class Metadata:
    """An image's ICC profile, EXIF block (TIFF-structured, orientation 1), (x, y) dots per inch and XMP packet
    (orientation 1), each or None."""

    icc: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.icc, self.exif, self.dpi, self.xmp))


def read_metadata(handle: Any) -> Metadata | None:
    """The metadata of an image open in Pillow (None where it has none, or it cannot be read)."""
    info = getattr(handle, "info", {})
    icc = info.get("icc_profile") or None
    exif = info.get("exif") or None
    if exif is not None:
        exif = _for_restored(exif.removeprefix(_EXIF_PREFIX))
    xmp = info.get("xmp") or None
    xmp = _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if isinstance(xmp, bytes) else None
    metadata = Metadata(icc if isinstance(icc, bytes) else None, exif, _stated_dpi(handle), xmp)
    return metadata or None


def _stated_dpi(handle: Any) -> tuple[float, float] | None:
    """The resolution the file states, None where Pillow made one up (1 for a TIFF without one, 72 for a JPEG
    without one in its JFIF or EXIF header)."""
    dpi = handle.info.get("dpi")
    if handle.format == "TIFF" and _RESOLUTION not in handle.tag_v2:
        return None
    if handle.format == "JPEG" and handle.info.get("jfif_unit") not in (1, 2) and _RESOLUTION not in handle.getexif():
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if min(x, y) > 0 else None


def icc_space(icc: bytes) -> str:
    """The colour space an ICC profile is for, as its header names it ("RGB", "GRAY", "CMYK", "Lab", ...); "" where
    the bytes are no ICC profile (its header's signature, ``acsp``, is missing)."""
    if icc[36:40] != b"acsp":
        return ""
    return icc[16:20].decode("latin-1").strip()


def icc_mismatch(icc: bytes, grayscale: bool) -> str | None:
    """Why the ICC profile ``icc`` cannot go with a gray (or RGB) image: a profile for another colour space (a CMYK
    photo's, which darkir reads as RGB) would have viewers misread it; None where it fits."""
    space, wanted = icc_space(icc), "GRAY" if grayscale else "RGB"
    if space == wanted:
        return None
    return (
        f"its ICC profile is for {space or 'an unknown colour space'}, the image darkir reads is "
        f"{'gray' if grayscale else 'RGB'}: the profile is not kept"
    )


def _for_restored(exif: bytes) -> bytes | None:
    """The TIFF-structured EXIF block ``exif`` for the restored image: its orientation (in the first IFD) set to 1
    and its thumbnail (the second IFD, a small copy of the dark input) no longer linked; None where it is not a TIFF
    structure (it is then dropped rather than written malformed)."""
    ifd = first_ifd(exif)
    if ifd is None:
        return None
    block = bytearray(exif)
    for entry in ifd.entries:
        if struct.unpack_from(ifd.order + "H", exif, entry)[0] == EXIF_ORIENTATION:  # of any type: one SHORT 1
            struct.pack_into(ifd.order + "HIHH", block, entry + 2, _SHORT, 1, 1, 0)
    if ifd.end + 4 <= len(exif):
        struct.pack_into(ifd.order + "I", block, ifd.end, 0)
    return bytes(block)


def add_metadata(suffix: str, data: bytes, metadata: Metadata | None) -> bytes:
    """The encoded image ``data`` (a file of ``suffix``) with ``metadata`` added where the format is JPEG or PNG."""
    if not metadata:
        return data
    if suffix in (".jpg", ".jpeg") and data[:4] == b"\xff\xd8\xff\xe0":
        return _jpeg_with(data, metadata)
    if suffix == ".png":
        return _png_with(data, metadata)
    held = {"ICC profile": metadata.icc, "EXIF": metadata.exif, "XMP": metadata.xmp, "resolution (dpi)": metadata.dpi}
    lost = [name for name, value in held.items() if value is not None]
    if lost:
        warn(
            f"{suffix.lstrip('.').upper()} outputs keep no {' or '.join(lost)}: images that have them lose them "
            "(JPEG and PNG keep them)"
        )
    return data


def _jpeg_with(data: bytes, metadata: Metadata) -> bytes:
    """A JPEG (SOI, then a JFIF APP0 segment) with the resolution in its APP0 and EXIF, XMP and ICC segments after
    it."""
    app0_end = 4 + struct.unpack_from(">H", data, 4)[0]
    app0 = bytearray(data[4:app0_end])
    if metadata.dpi is not None and app0[2:7] == b"JFIF\x00" and len(app0) >= 14:
        app0[9] = 1  # units: dots per inch
        struct.pack_into(">HH", app0, 10, *(min(65535, max(1, round(d))) for d in metadata.dpi))
    segments, dropped = [], []
    if metadata.exif is not None and len(_EXIF_PREFIX) + len(metadata.exif) <= _JPEG_SEGMENT:
        segments.append(_segment(0xE1, _EXIF_PREFIX + metadata.exif))
    elif metadata.exif is not None:
        dropped.append(f"an EXIF block of {len(metadata.exif)} bytes (at most {_JPEG_SEGMENT - len(_EXIF_PREFIX)})")
    if metadata.xmp is not None and len(_XMP_ID) + len(metadata.xmp) <= _JPEG_SEGMENT:
        segments.append(_segment(0xE1, _XMP_ID + metadata.xmp))
    elif metadata.xmp is not None:  # (JPEG's extended XMP, split over segments, is not written)
        dropped.append(f"an XMP packet of {len(metadata.xmp)} bytes (at most {_JPEG_SEGMENT - len(_XMP_ID)})")
    if metadata.icc is not None:
        chunks = [metadata.icc[i : i + _ICC_CHUNK] for i in range(0, len(metadata.icc), _ICC_CHUNK)]
        if len(chunks) <= 255:
            segments += [_segment(0xE2, _ICC_ID + bytes([n, len(chunks)]) + c) for n, c in enumerate(chunks, 1)]
        else:
            dropped.append(f"an ICC profile of {len(metadata.icc)} bytes (at most {255 * _ICC_CHUNK})")
    if dropped:
        warn(f"JPEG cannot hold {' or '.join(dropped)}: not kept (PNG keeps it)")
    return data[:4] + bytes(app0) + b"".join(segments) + data[app0_end:]


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _png_with(data: bytes, metadata: Metadata) -> bytes:
    """A PNG with iCCP, eXIf, pHYs and (XMP's) iTXt chunks right after its IHDR (replacing any it has)."""
    chunks = []
    if metadata.icc is not None:
        chunks.append(png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(metadata.icc)))
    if metadata.exif is not None:
        chunks.append(png_chunk(b"eXIf", metadata.exif))
    if metadata.dpi is not None:
        per_metre = (min(2**31 - 1, round(d / _INCH)) for d in metadata.dpi)
        chunks.append(png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    if metadata.xmp is not None:  # keyword, uncompressed, no language nor translated keyword, then the packet
        chunks.append(png_chunk(b"iTXt", _XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + metadata.xmp))
    replaced = {chunk[4:8] for chunk in chunks} | ({b"sRGB"} if metadata.icc is not None else set())
    kept, position = [], 8
    while position + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        end = position + 12 + length
        if data[position + 4 : position + 8] not in replaced:
            kept.append(data[position:end])
        position = end
    return data[:8] + kept[0] + b"".join(chunks) + b"".join(kept[1:])
