"""Reading and writing images losslessly: 8/16-bit, gray, RGB, RGBA, EXIF orientation, format kept.

OpenCV reads every bit depth and channel layout (Pillow drops 16-bit colour); Pillow supplies the
EXIF orientation, which OpenCV's unchanged-mode reader ignores.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np

from darkir.errors import DarkIRError, first_line
from darkir.outputs import write_atomic

#: Suffixes (lower case) that ``darkir restore`` picks up from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
_EXIF_ORIENTATION = 0x0112
#: Images whose header claims more pixels than this are refused before decoding (a few bytes can claim a
#: gigapixel: a decompression bomb). OpenCV's own limit, 2**30 (e.g. 32768 x 32768).
MAX_IMAGE_PIXELS = 1 << 30
_PIL_LIMIT = threading.Lock()


class ImageReadError(DarkIRError):
    """An image file is missing, unreadable or of an unsupported kind."""


@dataclass
class Image:
    """An image as float32 RGB in [0, 1] (H, W, 3) plus what is needed to write it back alike."""

    rgb: np.ndarray
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1]
    bit_depth: int
    grayscale: bool


def _cv2() -> ModuleType:
    import cv2

    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(
        cv2.utils.logging.LOG_LEVEL_SILENT
    )  # decoding errors are reported by us, once, with the file name
    return cv2


@dataclass(frozen=True)
class Header:
    """What an image file's header says, read without decoding its pixels."""

    width: int
    height: int
    frames: int
    orientation: int


def read_header(path: Path) -> Header | None:
    """The header of ``path`` as Pillow reads it (None where Pillow cannot read it; OpenCV may still decode it)."""
    from PIL import Image as PILImage

    with _PIL_LIMIT:  # darkir applies its own pixel limit; Pillow's would refuse large photos we restore in tiles
        limit, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
        try:
            with PILImage.open(path) as handle:
                width, height = handle.size
                frames = int(getattr(handle, "n_frames", 1))
                orientation = 1 if width * height > MAX_IMAGE_PIXELS else _orientation(handle)
        except Exception:
            return None
        finally:
            PILImage.MAX_IMAGE_PIXELS = limit
    return Header(width, height, frames, orientation)


def _orientation(handle: object) -> int:
    """The EXIF orientation tag (1-8) of an open Pillow image, 1 where it has none or it cannot be read."""
    if getattr(handle, "format", None) == "PNG" and "exif" not in getattr(handle, "info", {}):
        return 1  # no eXIf chunk before the pixels: Pillow would decode the whole image to look for one after them
    try:
        return int(handle.getexif().get(_EXIF_ORIENTATION, 1))  # type: ignore[attr-defined]
    except Exception:
        return 1


def _check_header(path: Path, header: Header | None) -> None:
    """Refuse decompression bombs and animations (which would be cut to one frame) before decoding."""
    if header is None:
        return
    pixels = header.width * header.height
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageReadError(
            f"{path}: its header claims {header.width}x{header.height} pixels ({pixels / 1e6:.0f} megapixels), above "
            f"the limit of {MAX_IMAGE_PIXELS / 1e6:.0f}; not decoded"
        )
    if header.frames > 1:
        raise ImageReadError(
            f"{path}: an animated or multi-page image ({header.frames} frames); darkir restores still images, so "
            "restoring only the first frame would lose the others: convert it to a video or to single frames"
        )


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an (H, W, ...) array as the EXIF orientation tag (1-8) says, like exif_transpose."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(transforms[orientation](array)) if orientation in transforms else array


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read ``path`` into an :class:`Image`; raise :class:`ImageReadError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported format {path.suffix or '(no suffix)'}; use {', '.join(IMAGE_SUFFIXES)}"
        )
    header = read_header(path)
    _check_header(path, header)
    cv2 = _cv2()
    data = np.fromfile(path, dtype=np.uint8)
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        raise ImageReadError(f"{path}: cannot decode image ({_opencv_gist(exc)})") from None
    if array is None:
        raise ImageReadError(f"{path}: cannot decode image (corrupt or not a {path.suffix.lstrip('.').upper()} file)")
    if array.dtype == np.uint8:
        bit_depth, scale = 8, 255.0
    elif array.dtype == np.uint16:
        bit_depth, scale = 16, 65535.0
    elif array.dtype == np.float32:
        bit_depth, scale = 32, 1.0
    else:
        raise ImageReadError(f"{path}: unsupported sample type {array.dtype}")
    array = _apply_orientation(array, header.orientation if header else 1)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    elif array.ndim == 3:  # OpenCV's BGR(A) -> RGB(A)
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return _image(array, bit_depth, scale)


def _opencv_gist(exc: BaseException) -> str:
    """The gist of an OpenCV error: its message without the source location OpenCV prefixes."""
    gist = next((line for line in str(exc).splitlines() if "error:" in line), first_line(exc))
    return gist.split("error:", 1)[-1].strip(" ()") or type(exc).__name__


def _image(array: np.ndarray, bit_depth: int, scale: float) -> Image:
    grayscale = array.ndim == 2
    alpha = None
    if grayscale:
        rgb = np.repeat(array[:, :, None], 3, axis=2)
    else:
        rgb = array[:, :, :3]
        if array.shape[2] == 4:
            alpha = array[:, :, 3].astype(np.float32) / scale
    rgb = np.clip(rgb.astype(np.float32) / scale, 0.0, 1.0)
    return Image(rgb=np.ascontiguousarray(rgb), alpha=alpha, bit_depth=bit_depth, grayscale=grayscale)


#: Sample types of arrays darkir takes, and the bit depth each keeps.
ARRAY_DEPTHS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32, np.dtype(np.float64): 32}
#: The array type an image of each bit depth is stored as.
DEPTH_DTYPES = {8: np.uint8, 16: np.uint16, 32: np.float32}


def image_from_array(array: np.ndarray) -> Image:
    """An :class:`Image` from an (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA array (uint8, uint16, float in [0, 1])."""
    if not isinstance(array, np.ndarray):
        raise DarkIRError(f"expected a numpy array, got {type(array).__name__}")
    if array.dtype not in ARRAY_DEPTHS:
        raise DarkIRError(
            f"unsupported array dtype {array.dtype}; use uint8, uint16, or float32/float64 with values in [0, 1]"
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape[:2]:
        raise DarkIRError(f"unsupported array shape {array.shape}; use (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DarkIRError("the float array has NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise DarkIRError(
                f"float arrays must hold values in [0, 1]; this one spans [{low:.4g}, {high:.4g}] "
                "(divide 8-bit data by 255, or pass it as uint8)"
            )
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[ARRAY_DEPTHS[array.dtype]]
    return _image(array, ARRAY_DEPTHS[array.dtype], scale)


def image_to_array(image: Image, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """The inverse of :func:`image_from_array`: gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) of ``dtype``.

    Values are rounded as ``darkir restore`` rounds them when it writes a file of that bit depth.
    """
    dtype = np.dtype(dtype)
    depth = ARRAY_DEPTHS[dtype]
    stored = to_storage(image.rgb, depth)
    if image.grayscale:
        cv2 = _cv2()
        array = cv2.cvtColor(stored, cv2.COLOR_RGB2GRAY)
    elif image.alpha is not None:
        array = np.dstack([stored, to_storage(image.alpha, depth)])
    else:
        array = stored
    return array.astype(dtype, copy=False)


def to_storage(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float RGB in [0, 1] -> rounded integers of ``bit_depth`` (8 or 16); float32 passes through clipped."""
    rgb = np.clip(rgb, 0.0, 1.0)
    if bit_depth == 16:
        return np.rint(rgb * 65535.0).astype(np.uint16)
    if bit_depth == 32:
        return rgb.astype(np.float32)
    return np.rint(rgb * 255.0).astype(np.uint8)


def encode_image(suffix: str, image: Image, jpeg_quality: int = 95) -> bytes:
    """The file bytes of ``image`` in the format of ``suffix``, keeping bit depth, gray and alpha where possible."""
    cv2 = _cv2()
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DarkIRError(f"cannot encode as {suffix or '(no suffix)'}; use {', '.join(IMAGE_SUFFIXES)}")
    depth = image.bit_depth if suffix in (".png", ".tif", ".tiff") else 8
    if depth == 32 and suffix == ".png":
        depth = 16
    keeps_alpha = suffix in (".png", ".tif", ".tiff", ".webp")
    array = image_to_array(image if keeps_alpha else replace(image, alpha=None), DEPTH_DTYPES[depth])
    if array.ndim == 3:  # RGB(A) -> OpenCV's BGR(A)
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # lossless
    try:
        ok, encoded = cv2.imencode(suffix, array, params)
    except cv2.error:
        ok = False
    if not ok:
        raise DarkIRError(f"cannot encode a {image.rgb.shape[1]}x{image.rgb.shape[0]} image as {suffix}")
    return encoded.tobytes()


def decodes(path: Path) -> bool:
    """Whether ``path`` holds an image OpenCV can decode."""
    cv2 = _cv2()
    try:
        return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    except (cv2.error, OSError, ValueError):
        return False


def write_image(path: str | os.PathLike[str], image: Image, jpeg_quality: int = 95, overwrite: bool = True) -> None:
    """Write ``image`` to ``path`` (format from the suffix) keeping bit depth, gray and alpha where possible.

    The bytes go to a temporary file that is fsynced and decoded back before one atomic rename, so a
    failure (full disk, I/O error) never leaves half a file nor touches an existing one. Without
    ``overwrite`` an existing file is never replaced (:class:`~darkir.outputs.OutputExists`).
    """
    path = Path(path)
    try:
        data = encode_image(path.suffix, image, jpeg_quality)
    except DarkIRError as exc:
        raise DarkIRError(f"{path}: {exc}") from None
    write_atomic(path, data, overwrite=overwrite, verify=decodes)
