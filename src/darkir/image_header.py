"""What an image file's header says, read without decoding its pixels, and what is refused on its word before
decoding: no pixels, a decompression bomb, an animation or a multi-page file, more memory than is free.

Pillow reads headers (and EXIF orientation and metadata); tifffile the TIFFs Pillow cannot open. Their warnings and
logs are kept from the user while darkir reads (:func:`quiet_pillow`, :func:`quiet_tifffile`): darkir reports what
fails, once, naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from darkir.errors import warnings_ignored
from darkir.hostmemory import cpu_available_memory
from darkir.image_formats import EXIF_ORIENTATION
from darkir.image_metadata import Metadata, read_metadata

#: Images whose header claims more pixels than this are refused before decoding (a few bytes can claim a
#: gigapixel: a decompression bomb). OpenCV's own limit, 2**30 (e.g. 32768 x 32768).
MAX_IMAGE_PIXELS = 1 << 30
_PIL_LIMIT = threading.Lock()


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read without decoding its pixels.

    ``width`` and ``height`` are as stored; :func:`~darkir.imageio.read_image` applies ``orientation`` (1-8), so the
    image it returns is ``height`` wide and ``width`` high for orientations 5-8.
    """

    width: int
    height: int
    frames: int  # a TIFF's pages counted up to 2
    orientation: int
    metadata: Metadata | None = field(default=None, compare=False)  # carried along, not part of what it says
    float_samples: bool = field(default=False, compare=False)  # float TIFF samples (decoding takes more memory)
    gray: bool = field(default=False, compare=False)  # one channel of colour (with or without alpha)

    def refusal(self) -> str | None:
        """Why :func:`~darkir.imageio.read_image` refuses the image before decoding it (no pixels; a decompression
        bomb; an animation, which would be cut to one frame), or None."""
        pixels = self.width * self.height
        if pixels == 0:
            return f"its header says {self.width}x{self.height} pixels: an image without pixels"
        if pixels > MAX_IMAGE_PIXELS:
            return (
                f"its header claims {self.width}x{self.height} pixels ({pixels / 1e6:.0f} megapixels), above the "
                f"limit of {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; not decoded"
            )
        if self.frames > 1:
            return (
                "an animated or multi-page image (more than one frame); darkir restores still images, so restoring "
                "only the first frame would lose the others: convert it to a video or to single frames"
            )
        return None

    @property
    def displayed_size(self) -> tuple[int, int]:
        """(width, height) of the image :func:`~darkir.imageio.read_image` returns: turned a quarter for orientations
        5-8."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def pil_open(path: Path | BinaryIO) -> Any:
    """``PIL.Image.open(path)`` (a path or a binary file), also of an image over Pillow's pixel limit (darkir applies
    its own; Pillow's refuses photos of over ~360 megapixels that darkir restores in tiles). Pillow checks it only
    when it opens a file; its limit, a global, is lifted only to open such a photo, so that other threads' opens keep
    their check all the while darkir reads ordinary images. Its warning below the limit is the caller's to quiet."""
    from PIL import Image as PILImage

    try:
        return PILImage.open(path)
    except PILImage.DecompressionBombError:
        if not isinstance(path, Path):
            path.seek(0)
    with _PIL_LIMIT:
        limit, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            return PILImage.open(path)
        finally:
            PILImage.MAX_IMAGE_PIXELS = limit


#: Pillow's modes of one colour channel.
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def read_header(path: Path) -> Header | None:
    """The header of ``path`` as Pillow reads it, or tifffile for a TIFF Pillow cannot open (float RGB); None where
    neither reads it (OpenCV may still decode it)."""
    try:
        with quiet_pillow(), pil_open(path) as handle:  # entered first: Pillow also warns while it opens the file
            return _header(handle)
    except Exception:
        return _tiff_header(path)


def _header(handle: Any) -> Header:
    """The :class:`Header` of an open Pillow image."""
    width, height = handle.size
    if handle.format == "TIFF":  # Pillow >= 12 gives a TIFF's size as displayed: use the stored one
        width, height = int(handle.tag_v2[256]), int(handle.tag_v2[257])
    frames = _frames(handle)
    orientation = 1 if width * height > MAX_IMAGE_PIXELS else _orientation(handle)
    gray = handle.mode in GRAY_MODES
    return Header(width, height, frames, orientation, read_metadata(handle), handle.mode == "F", gray)


def _frames(handle: Any) -> int:
    """An open Pillow image's frame count; a TIFF's pages are counted up to 2 (more than one), since Pillow walks
    every page of a file to count them (minutes for a file of 100000 pages)."""
    if handle.format != "TIFF":
        return int(getattr(handle, "n_frames", 1))
    try:
        handle.seek(1)
    except EOFError:
        return 1
    handle.seek(0)
    return 2


def _tiff_header(path: Path) -> Header | None:
    """The header of the TIFF at ``path`` as tifffile reads it (size, pages, orientation; no metadata), None where
    it is no TIFF tifffile reads."""
    import tifffile

    try:
        with quiet_tifffile(), tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            orientation = page.tags.get(EXIF_ORIENTATION)
            pages = _tiff_pages(tiff)
            turned = int(orientation.value) if orientation else 1
            floats = page.dtype is not None and page.dtype.kind == "f"
            gray = page.photometric in (0, 1)  # MINISWHITE, MINISBLACK
            return Header(page.imagewidth, page.imagelength, pages, turned, None, floats, gray)
    except Exception:
        return None


def _tiff_pages(tiff: Any) -> int:
    """A tifffile TIFF's pages, counted up to 2 as :func:`_frames` counts them (reading the second page only)."""
    try:
        tiff.pages[1]
    except IndexError:
        return 1
    return 2


def _orientation(handle: object) -> int:
    """The EXIF orientation tag (1-8) of an open Pillow image, 1 where it has none or it cannot be read."""
    if getattr(handle, "format", None) == "PNG" and "exif" not in getattr(handle, "info", {}):
        return 1  # no eXIf chunk before the pixels: Pillow would decode the whole image to look for one after them
    try:
        return int(handle.getexif().get(EXIF_ORIENTATION, 1))  # type: ignore[attr-defined]
    except Exception:
        return 1


#: The most bytes a pixel takes while :func:`darkir.imageio.read_image` reads it (measured peaks): the decoded samples
#: (up to four of 16 bits, and a copy as the channels are reordered), then float32 colour and alpha; float TIFF samples
#: (read by tifffile, up to 64 bits) take more.
DECODE_BYTES_PER_PIXEL = 24
DECODE_BYTES_PER_FLOAT_PIXEL = 56


def memory_refusal(header: Header) -> str | None:
    """Why an image of ``header``'s size is not decoded: it needs more memory than this process has free (a file of
    a few hundred bytes may hold a 30000x30000 image); None where it fits or the free memory is not known."""
    per_pixel = DECODE_BYTES_PER_FLOAT_PIXEL if header.float_samples else DECODE_BYTES_PER_PIXEL
    need = header.width * header.height * per_pixel
    try:
        free = cpu_available_memory()
    except (OSError, ValueError):  # neither /proc/meminfo nor the free page count: not known, not checked
        return None
    if need <= free:
        return None
    return (
        f"its {header.width}x{header.height} pixels need about {need / 1e9:.1f} GB to decode, more than the "
        f"{free / 1e9:.1f} GB free; not decoded (free memory or downscale it)"
    )


@contextlib.contextmanager
def quiet_pillow() -> Iterator[None]:
    """Pillow's warnings (a corrupt EXIF block, a damaged TIFF tag) kept from the user while it reads headers: darkir
    drops what it cannot read and reports what fails to decode. Only Pillow's: the filter list is the process's."""
    with warnings_ignored(module=r"PIL(\.|$)"):
        yield


#: Guards :func:`quiet_tifffile`'s count of the threads inside it and the logger's state it found.
_TIFFFILE_LOG = threading.Lock()
_tifffile_readers = 0
_tifffile_was_disabled = False


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[None]:
    """tifffile's log (a damaged tag, say) kept from the user's terminal while it reads: darkir reports what fails.
    The logger's state comes back when the last thread inside leaves (threads overlapping in a plain save and
    restore left it off for good)."""
    global _tifffile_readers, _tifffile_was_disabled
    logger = logging.getLogger("tifffile")
    with _TIFFFILE_LOG:
        if _tifffile_readers == 0:
            _tifffile_was_disabled, logger.disabled = logger.disabled, True
        _tifffile_readers += 1
    try:
        yield
    finally:
        with _TIFFFILE_LOG:
            _tifffile_readers -= 1
            if _tifffile_readers == 0:
                logger.disabled = _tifffile_was_disabled
