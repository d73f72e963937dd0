"""Reading and writing images losslessly: 8/16-bit, gray, gray + alpha, RGB, RGBA, EXIF orientation, format kept.

OpenCV reads every bit depth and channel layout (Pillow drops 16-bit colour); Pillow supplies the
EXIF orientation, which OpenCV's unchanged-mode reader ignores except in TIFF files (whose decoder
applies the TIFF orientation tag itself). Gray + alpha, which OpenCV widens to BGRA (PNG) or cuts to
gray (TIFF) and cannot write, is read and written by darkir (PNG: :mod:`darkir.image_formats`) or by Pillow
(8-bit TIFF); Pillow also reads 8-bit RGBA TIFFs, whose colour OpenCV premultiplies by the alpha. What a file's
header says, and what is refused on its word before any pixel is decoded, is :mod:`darkir.image_header`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from darkir import opencv
from darkir.errors import DarkIRError, first_line, is_whole, warn
from darkir.image_formats import (
    TIFF_MAGIC,
    TiffLayout,
    gray_alpha_png,
    has_image_signature,
    png_gray_alpha,
    png_info,
    tiff_alpha_marked,
    tiff_layout,
    tiff_pillow_mode,
    without_orientation,
)
from darkir.image_header import Header, memory_refusal, pil_open, quiet_pillow, quiet_tifffile, read_header
from darkir.image_metadata import Metadata, add_metadata, icc_mismatch
from darkir.infer.defaults import JPEG_QUALITY
from darkir.outputs import write_atomic

if TYPE_CHECKING:
    import torch

#: Suffixes (lower case) that ``darkir restore`` picks up from folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
#: Suffixes (lower case) of image formats darkir does not read: such files in a folder are named in a warning.
UNREAD_IMAGE_SUFFIXES = (
    *(".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".psd", ".exr", ".hdr", ".tga", ".ico"),
    *(".ppm", ".pgm", ".pnm", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"),
)
#: The largest file OpenCV decodes from memory (its buffer's size is a C int); larger ones fail in an assertion.
OPENCV_MAX_BYTES = 2**31 - 1


class ImageReadError(DarkIRError):
    """An image file is missing, unreadable or of an unsupported kind."""


@dataclass
class Image:
    """An image as float32 RGB in [0, 1] (H, W, 3) plus what is needed to write it back alike.

    A gray + alpha image has ``grayscale`` set and an ``alpha``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None  # float32 (H, W) in [0, 1]
    bit_depth: int
    grayscale: bool
    metadata: Metadata | None = None  # ICC profile, EXIF, resolution: written back into JPEG and PNG files


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


def read_image(path: str | os.PathLike[str], check_size: Callable[[int, int], None] | None = None) -> Image:
    """Read ``path`` into an :class:`Image`; raise :class:`ImageReadError` naming the file otherwise.
    ``check_size(height, width)``: called with the size its header gives (as read, turned by its orientation)
    before it is decoded, to refuse one too large to restore by raising."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: {not_a_file(path)}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported format {path.suffix or '(no suffix)'}; use {', '.join(IMAGE_SUFFIXES)}"
        )
    header = read_header(path)
    try:
        signed = header is not None or has_image_signature(path)
    except OSError as exc:  # no permission to read it, say
        raise ImageReadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not signed:  # refused before its bytes are read, however many
        raise ImageReadError(_undecodable(path))
    if header is not None:
        _refuse(path, header.refusal())
        if check_size is not None:
            width, height = header.displayed_size
            check_size(height, width)
        _refuse(path, memory_refusal(header))
    try:
        image = _pixels(path, header)
    except MemoryError:  # a header that lied, or memory taken meanwhile
        raise ImageReadError(f"{path}: not enough memory to decode it; free memory or downscale it") from None
    return replace(image, metadata=_fitting(path, header.metadata if header else None, image.grayscale))


def not_a_file(path: Path, missing: str = "no such file") -> str:
    """Why ``path``, which is no file (nor a link to one), cannot be read: a folder, a link to nothing, a pipe, socket
    or device, or ``missing`` (nothing there)."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link to nothing (its target is missing, or it leads back to itself)"
    if path.is_dir():
        return "a folder, not a file"
    if path.exists():
        return "not a file or folder (a pipe, socket or device)"
    return missing


def _refuse(path: Path, problem: str | None) -> None:
    """Raise :class:`ImageReadError` naming ``path`` where there is a ``problem``."""
    if problem:
        raise ImageReadError(f"{path}: {problem}")


def _pixels(path: Path, header: Header | None) -> Image:
    """The pixels of the image at ``path`` (of ``header``, where one was read), turned by its orientation."""
    array, oriented = _decode(path, _file_bytes(path))
    if array.size == 0:
        raise ImageReadError(f"{path}: cannot decode image (it has no pixels)")
    if array.dtype == np.uint8:
        bit_depth, scale = 8, 255.0
    elif array.dtype == np.uint16:
        bit_depth, scale = 16, 65535.0
    elif array.dtype in (np.float16, np.float32, np.float64):  # (float TIFFs, whichever decoder read them)
        bit_depth, scale = 32, 1.0
        if np.isnan(array).any():  # no value to restore or score
            raise ImageReadError(f"{path}: its float samples include NaN (not a number); darkir cannot use them")
        _warn_out_of_range(path, array)
        with np.errstate(over="ignore"):  # a float64 sample past float32's range: infinite, clipped as it is
            array = array.astype(np.float32, copy=False)
    else:
        raise ImageReadError(f"{path}: unsupported sample type {array.dtype}")
    if not oriented:
        array = _apply_orientation(array, header.orientation if header else 1)
    return _image(array, bit_depth, scale)


def _file_bytes(path: Path) -> np.ndarray:
    """The bytes of the image file at ``path``. One larger than OpenCV decodes (:data:`OPENCV_MAX_BYTES`) is refused
    before it is read, unless a TIFF (tifffile decodes a gray or RGB one from the file; :func:`_decode` names the
    kinds it cannot): OpenCV failed on it with an assertion after reading it all (a 3 GB file: 39 s)."""
    size = path.stat().st_size
    if size > OPENCV_MAX_BYTES:
        with path.open("rb") as file:
            tiff = file.read(4) in TIFF_MAGIC
        if not tiff:
            raise ImageReadError(
                f"{path}: its file holds {size / 2**30:.1f} GiB, more than the 2 GiB darkir decodes a "
                f"{path.suffix.lstrip('.').upper() or 'file'} from; not read (save an image that large as a TIFF)"
            )
    return np.fromfile(path, dtype=np.uint8)


def _warn_out_of_range(path: Path, array: np.ndarray) -> None:
    """Warn where a float image holds values outside [0, 1] (an HDR or linear render; infinite ones too) by more than
    rounding (:data:`RANGE_TOLERANCE`), which are clipped."""
    finite = np.isfinite(array)
    infinite = array.size - int(np.count_nonzero(finite))
    low = float(np.min(array, where=finite, initial=np.inf))
    high = float(np.max(array, where=finite, initial=-np.inf))
    if infinite:
        warn(
            f"{path}: {infinite} of its float samples are infinite; darkir reads [0, 1], so they are clipped "
            "to 0 (-inf) and 1 (+inf)"
        )
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        warn(
            f"{path}: its float samples span [{low:g}, {high:g}]; darkir reads [0, 1], so the values "
            "outside are clipped (scale the image into [0, 1] first to keep them)"
        )


def _fitting(path: Path, metadata: Metadata | None, grayscale: bool) -> Metadata | None:
    """``metadata`` without an ICC profile for another colour space than the image's, with a warning
    (:func:`icc_mismatch`)."""
    problem = icc_mismatch(metadata.icc, grayscale) if metadata is not None and metadata.icc is not None else None
    if problem is None:
        return metadata
    warn(f"{path}: {problem}")
    return replace(metadata, icc=None) or None


def _decode(path: Path, data: np.ndarray) -> tuple[np.ndarray, bool]:
    """The pixels of file bytes ``data``: gray (H, W), gray + alpha (H, W, 2), RGB or RGBA; and whether the
    decoder applied the orientation already (OpenCV's TIFF decoder does, its others and tifffile do not)."""
    tiff = data[:4].tobytes() in TIFF_MAGIC
    layout = None
    if tiff:  # (the lock and filter swap only where Pillow reads tags)
        with quiet_pillow():
            layout = tiff_layout(path)
    if layout is not None and layout.lab:
        raise ImageReadError(
            f"{path}: a CIELAB TIFF (its colour is stored as L*a*b*, which would be restored as if it were RGB); "
            "darkir reads gray, RGB and CMYK: convert it to RGB first"
        )
    if layout is not None and layout.samples_left_out():
        return _colour_and_alpha(path, layout), False
    mode = tiff_pillow_mode(layout)
    if mode:
        return _decode_tiff_pillow(path, data, mode), False
    try:
        png = png_info(data)
    except ValueError as exc:
        raise ImageReadError(f"{path}: cannot decode image ({exc})") from None
    if layout is not None and layout.opencv_misreads():
        array, oriented = _decode_tifffile(path), False
    else:
        array, oriented = _decode_opencv(path, data), tiff
    if array is None and layout is not None and layout.photometric in (1, 2):  # gray or RGB that OpenCV's in-memory
        array, oriented = _decode_tifffile(path), False  # decoder fails on (8-bit tiles of 16, 48 or 80 pixels)
    if array is None and data.size > OPENCV_MAX_BYTES:  # (a CMYK, palette or YCbCr TIFF: OpenCV's alone)
        raise ImageReadError(
            f"{path}: its file holds {data.size / 2**30:.1f} GiB, more than the 2 GiB darkir decodes a TIFF of its "
            "kind from (gray and RGB TIFFs of any size are read): save it as an RGB TIFF"
        )
    if array is None:
        raise ImageReadError(_undecodable(path))
    if (
        layout is not None
        and (layout.photometric, layout.samples, layout.extra) == (5, 4, None)
        and array.ndim == 3
        and array.shape[2] == 4
    ):
        array = array[:, :, :3]  # CMYK, which OpenCV gives as RGB with an opaque alpha it does not have
    if layout is not None and layout.left_uninverted():  # deep min-is-white gray, which OpenCV gives as stored
        array = np.iinfo(array.dtype).max - array if array.dtype.kind == "u" else 1.0 - array
    if layout is not None and layout.associated_alpha and array.ndim == 3 and array.shape[2] in (2, 4):
        array = _unpremultiplied(array)  # darkir restores and writes colour apart from its alpha (unassociated)
    return (array if png is None else png_gray_alpha(array, png)), oriented


def _colour_and_alpha(path: Path, layout: TiffLayout) -> np.ndarray:
    """The colour and alpha samples of a gray or RGB TIFF that has other extra samples too (a second alpha, a depth
    or infrared plane), which OpenCV drops with the alpha or takes for it; a warning says what is left out."""
    left_out = layout.samples_left_out()
    colour = 3 if layout.photometric == 2 else 1
    alpha = layout.samples - colour - left_out
    samples = "sample" if left_out == 1 else "samples"
    warn(
        f"{path}: left out {left_out} extra {samples} of this TIFF (beyond its colour{' and alpha' if alpha else ''}"
        "), which darkir does not restore or write"
    )
    array = _decode_tifffile(path)
    kept = array.reshape(*array.shape[:2], -1)[:, :, : colour + alpha]
    if layout.photometric == 0:  # min-is-white, which tifffile gives as stored
        top = np.iinfo(kept.dtype).max if kept.dtype.kind == "u" else 1.0
        kept = np.concatenate([top - kept[:, :, :colour], kept[:, :, colour:]], axis=2).astype(kept.dtype)
    if alpha and layout.associated_alpha:
        kept = _unpremultiplied(kept)
    return kept[:, :, 0] if kept.shape[2] == 1 else np.ascontiguousarray(kept)


def _decode_opencv(path: Path, data: np.ndarray) -> np.ndarray | None:
    """The pixels OpenCV decodes from file bytes ``data``: gray (H, W), RGB or RGBA (OpenCV's BGR order undone);
    None where it decodes nothing."""
    if data.size > OPENCV_MAX_BYTES:  # (a TIFF, which tifffile decodes then)
        return None
    cv2 = opencv.load()
    try:
        with opencv.quiet_single_thread():
            array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        raise ImageReadError(f"{path}: cannot decode image ({opencv.error_gist(exc)})") from None
    if array is not None and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    elif array is not None and array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return array


def _unpremultiplied(array: np.ndarray) -> np.ndarray:
    """Gray or RGB samples stored multiplied by the alpha that follows them, divided by it (0 where it is 0)."""
    top = float(np.iinfo(array.dtype).max) if array.dtype.kind == "u" else 1.0
    colour, alpha = array[..., :-1] * top, array[..., -1:].astype(np.float64)
    colour = np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0)
    colour = np.clip(colour, 0.0, top)
    if array.dtype.kind == "u":
        colour = np.rint(colour)
    return np.concatenate([colour.astype(array.dtype), array[..., -1:]], axis=2)


def _undecodable(path: Path) -> str:
    """Why ``path`` could not be decoded, where no decoder said more."""
    return f"{path}: cannot decode image (corrupt or not a {path.suffix.lstrip('.').upper()} file)"


def _decode_tiff_pillow(path: Path, data: np.ndarray, mode: str) -> np.ndarray:
    """The stored pixels of TIFF bytes ``data`` in Pillow ``mode`` (see :func:`tiff_pillow_mode`); refused where
    Pillow reads them otherwise (e.g. 16-bit gray + alpha, which OpenCV would cut to 8-bit gray)."""
    import io

    try:
        with quiet_pillow():
            handle = pil_open(io.BytesIO(without_orientation(data)))
    except Exception:
        handle = None
    if handle is not None and handle.mode == mode:
        with handle:
            try:
                return np.array(handle)
            except Exception as exc:
                raise ImageReadError(f"{path}: cannot decode image ({first_line(exc)})") from None
    if handle is not None:
        handle.close()
    kind, supported = ("gray + alpha", "8-bit gray") if mode == "LA" else ("RGBA", "8-bit RGB")
    raise ImageReadError(
        f"{path}: a {kind} TIFF of a kind darkir cannot read without losing or changing its alpha or bit depth (it "
        f"reads {supported} with unassociated alpha); save it as a PNG, which keeps 16-bit {kind}"
    )


def _decode_tifffile(path: Path) -> np.ndarray:
    """The first image of the TIFF at ``path`` as tifffile decodes it, samples last: for the layouts OpenCV misreads
    (:meth:`TiffLayout.opencv_misreads`), and for gray or RGB ones it cannot decode (tiles of some sizes, float16)."""
    import tifffile

    try:
        with quiet_tifffile(), tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            array = page.asarray()
            if page.axes.startswith("S"):  # separate planes: (samples, height, width)
                array = np.moveaxis(array, 0, -1)
    except Exception as exc:
        gist = first_line(exc)
        hint = "; pip install imagecodecs, which tifffile decodes it with" if "imagecodecs" in gist else ""
        raise ImageReadError(f"{path}: cannot decode image ({gist}{hint})") from None
    return np.ascontiguousarray(array)


def _image(array: np.ndarray, bit_depth: int, scale: float) -> Image:
    """An :class:`Image` of gray (H, W), gray + alpha (H, W, 2), RGB (H, W, 3) or RGBA (H, W, 4) samples."""
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    grayscale = channels <= 2
    rgb = np.repeat(array[:, :, :1], 3, axis=2) if grayscale else array[:, :, :3]
    alpha = array[:, :, -1].astype(np.float32) / scale if channels in (2, 4) else None
    rgb = rgb.astype(np.float32)  # one float copy, scaled and clipped in place: a large image's decoding peak
    np.divide(rgb, scale, out=rgb)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return Image(rgb=rgb, alpha=alpha, bit_depth=bit_depth, grayscale=grayscale)


#: How far beyond [0, 1] float input may go (half an 8-bit step: rounding noise), in arrays, tensors and
#: ``Restorer.restore_array``; such values are clipped (arrays) or passed to the model as they are.
RANGE_TOLERANCE = 0.5 / 255
#: Sample types of arrays darkir takes, and the bit depth each keeps.
ARRAY_DEPTHS = {
    np.dtype(t): depth
    for t, depth in ((np.uint8, 8), (np.uint16, 16), (np.float16, 32), (np.float32, 32), (np.float64, 32))
}
#: The array type an image of each bit depth is stored as.
DEPTH_DTYPES = {8: np.uint8, 16: np.uint16, 32: np.float32}


def outside_unit_range(values: np.ndarray | torch.Tensor) -> tuple[float, float] | None:
    """The (lowest, highest) of finite float ``values`` (an array or a tensor) where they stray past [0, 1] by more
    than rounding (:data:`RANGE_TOLERANCE`); None where they lie within."""
    low, high = float(values.min()), float(values.max())
    return (low, high) if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE else None


def image_from_array(array: np.ndarray) -> Image:
    """An :class:`Image` from an (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA array (uint8, uint16, float in
    [0, 1]; either byte order)."""
    if not isinstance(array, np.ndarray):
        raise DarkIRError(f"expected a numpy array, got {type(array).__name__}")
    if isinstance(array, np.ma.MaskedArray):
        raise DarkIRError("a masked array: its mask would be ignored; fill it first (array.filled(value))")
    array = np.asarray(array)  # a subclass (np.matrix) as a plain array
    if not array.dtype.isnative:  # e.g. big-endian '>u2' from a file: the same values in this machine's order
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype not in ARRAY_DEPTHS:
        raise DarkIRError(
            f"unsupported array dtype {array.dtype}; use uint8, uint16, or float (16, 32 or 64 bits) in [0, 1]"
        )
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape[:2]:
        raise DarkIRError(f"unsupported array shape {array.shape}; use (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DarkIRError("the float array has NaN or infinite values")
        span = outside_unit_range(array)
        if span:
            raise DarkIRError(
                f"float arrays must hold values in [0, 1]; this one spans [{span[0]:.4g}, {span[1]:.4g}] "
                "(divide 8-bit data by 255, or pass it as uint8)"
            )
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[ARRAY_DEPTHS[array.dtype]]
    return _image(array, ARRAY_DEPTHS[array.dtype], scale)


def image_to_array(image: Image, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """The inverse of :func:`image_from_array`: gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) of ``dtype``; a
    gray + alpha image gives RGBA with R = G = B.

    Values are rounded as ``darkir restore`` rounds them when it writes a file of that bit depth.
    """
    dtype = np.dtype(dtype)
    depth = ARRAY_DEPTHS[dtype.newbyteorder("=")]
    stored = to_storage(image.rgb, depth)
    if image.grayscale:
        array = stored_gray(stored)
        if image.alpha is not None:
            array = np.dstack([array, array, array, to_storage(image.alpha, depth)])
    elif image.alpha is not None:
        array = np.dstack([stored, to_storage(image.alpha, depth)])
    else:
        array = stored
    return array.astype(dtype, copy=False)


def stored_gray(stored: np.ndarray) -> np.ndarray:
    """The gray (H, W) that a gray image's restored RGB (H, W, 3), as stored (:func:`to_storage`), is saved as."""
    cv2 = opencv.load()
    with opencv.quiet_single_thread():
        return cv2.cvtColor(stored, cv2.COLOR_RGB2GRAY)


def to_storage(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float RGB in [0, 1] -> rounded integers of ``bit_depth`` (8 or 16); float32 passes through clipped."""
    rgb = np.clip(rgb, 0.0, 1.0)
    if bit_depth == 16:
        return np.rint(rgb * 65535.0).astype(np.uint16)
    if bit_depth == 32:
        return rgb.astype(np.float32)
    return np.rint(rgb * 255.0).astype(np.uint8)


def encode_image(suffix: str, image: Image, jpeg_quality: int = JPEG_QUALITY) -> bytes:
    """The file bytes of ``image`` in the format of ``suffix``, keeping bit depth, gray and alpha where possible; a
    JPEG at ``jpeg_quality`` (1-100)."""
    check_jpeg_quality(jpeg_quality)
    cv2 = opencv.load()
    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DarkIRError(f"cannot encode as {suffix or '(no suffix)'}; use {', '.join(IMAGE_SUFFIXES)}")
    depth = image.bit_depth if suffix in (".png", ".tif", ".tiff") else 8
    if depth == 32 and suffix == ".png":
        depth = 16
    if depth < image.bit_depth:
        warn(
            f"{suffix.lstrip('.').upper()} keeps at most {depth} bits a sample: deeper images are saved at {depth} "
            "(TIFF keeps 16-bit and float samples, PNG 16-bit)"
        )
    keeps_alpha = suffix in (".png", ".tif", ".tiff", ".webp")
    # Gray + alpha: as such in PNG and 8-bit TIFF; as RGBA with R = G = B in WebP (which has no gray) and in
    # 16-bit/float TIFF (which neither OpenCV nor Pillow reads as gray + alpha).
    gray_alpha = image.grayscale and image.alpha is not None
    if gray_alpha and (suffix == ".png" or (suffix in (".tif", ".tiff") and depth == 8)):
        encoded = _encode_gray_alpha(suffix, image_to_array(image, DEPTH_DTYPES[depth])[:, :, [0, 3]])
        return add_metadata(suffix, encoded, image.metadata)
    if image.alpha is not None and not keeps_alpha:
        warn(
            f"{suffix.lstrip('.').upper()} keeps no alpha channel: images that have one lose it "
            "(PNG, TIFF and WebP keep it)"
        )
    array = image_to_array(image if keeps_alpha else replace(image, alpha=None), DEPTH_DTYPES[depth])
    if suffix == ".webp" and array.ndim == 3 and array.shape[2] == 4:
        try:
            data = _webp_exact(array)
        except (ValueError, OSError, KeyError):  # over WebP's 16383 px, or a Pillow without WebP
            raise DarkIRError(f"cannot encode a {image.rgb.shape[1]}x{image.rgb.shape[0]} image as {suffix}") from None
        return add_metadata(suffix, data, image.metadata)
    if array.ndim == 3:  # RGB(A) -> OpenCV's BGR(A)
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # lossless
    try:
        with opencv.quiet_single_thread():
            ok, encoded = cv2.imencode(suffix, array, params)
    except cv2.error:
        ok = False
    if not ok:
        raise DarkIRError(f"cannot encode a {image.rgb.shape[1]}x{image.rgb.shape[0]} image as {suffix}")
    data = encoded.tobytes()
    if suffix in (".tif", ".tiff") and array.ndim == 3 and array.shape[2] == 4:
        data = tiff_alpha_marked(data)
    return add_metadata(suffix, data, image.metadata)


def _webp_exact(rgba: np.ndarray) -> bytes:
    """Lossless WebP of 8-bit RGBA samples that keeps the colour under transparent pixels as it is (libwebp, as
    OpenCV calls it, rewrites it to compress better), as PNG and TIFF keep it."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(rgba, "RGBA").save(buffer, "WEBP", lossless=True, exact=True)
    return buffer.getvalue()


def _encode_gray_alpha(suffix: str, array: np.ndarray) -> bytes:
    """The bytes of a gray + alpha PNG (8 or 16 bits) or 8-bit TIFF of an (H, W, 2) array (OpenCV writes neither)."""
    if suffix == ".png":
        return gray_alpha_png(array)
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    try:
        PILImage.fromarray(array).save(buffer, "TIFF", compression="tiff_lzw")
    except Exception as exc:
        raise DarkIRError(f"cannot encode a gray + alpha TIFF ({first_line(exc)})") from None
    return buffer.getvalue()


def check_jpeg_quality(quality: object, name: str = "jpeg_quality") -> int:
    """``quality`` as a JPEG quality: a whole number from 1 to 100 (``name``: how errors call the setting)."""
    if not (is_whole(quality) and 1 <= quality <= 100):
        raise DarkIRError(f"{name} must be a whole number from 1 to 100, got {quality!r}")
    return int(quality)


def decodes(path: Path) -> bool:
    """Whether ``path`` holds an image OpenCV can decode."""
    cv2 = opencv.load()
    try:
        with opencv.quiet_single_thread():
            return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    except (cv2.error, OSError, ValueError):
        return False


def write_image(
    path: str | os.PathLike[str], image: Image, jpeg_quality: int = JPEG_QUALITY, overwrite: bool = True
) -> None:
    """Write ``image`` to ``path`` (format from the suffix) keeping bit depth, gray and alpha where possible; a JPEG
    at ``jpeg_quality`` (1-100).

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
