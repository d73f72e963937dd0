"""What a :class:`~darkir.infer.restorer.Restorer` is called on, and gives back (:meth:`Restorer.__call__`): file
paths, PIL images, numpy arrays and tensors, each checked, restored through the Restorer's float RGB methods and
returned as the kind it came as; and the checks of what those methods take."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from darkir.errors import DarkIRError, first_line, warn

if TYPE_CHECKING:
    from darkir.infer.restorer import Restorer

#: What a PIL image restored by :meth:`Restorer.__call__` keeps of its ``info``: colour profile, EXIF, resolution.
PIL_INFO_KEPT = ("icc_profile", "exif", "dpi")


def restore_input(restorer: Restorer, image: Any) -> Any:
    """``restorer(image)``: ``image`` restored, returned as the same kind of thing (:meth:`Restorer.__call__`)."""
    from darkir.imageio import image_from_array, image_to_array

    if isinstance(image, torch.Tensor):
        return _restore_tensor(restorer, image)
    if isinstance(image, bytes) and (b"\0" in image or len(image) > 4096):
        raise DarkIRError(
            f"cannot restore {len(image)} bytes of data: pass a file path (as bytes too), or decode the data first, "
            "e.g. PIL.Image.open(io.BytesIO(data)) or cv2.imdecode"
        )
    if isinstance(image, (str, bytes, os.PathLike)):
        return _restore_file(restorer, os.fsdecode(image))
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 1:  # gray as OpenCV and scikit-image give it
            return restore_input(restorer, image[..., 0])[..., None]
        restored = image_from_array(image)
        restored.rgb = restorer.restore_array(restored.rgb)
        return image_to_array(restored, image.dtype)
    if type(image).__module__.startswith("PIL."):
        return _restore_pil(restorer, image)
    raise DarkIRError(
        f"cannot restore a {type(image).__name__}: pass a file path, a PIL image, a numpy array or an NCHW tensor"
    )


def _restore_file(restorer: Restorer, image: str) -> np.ndarray:
    """The image file ``image`` decoded (refused before where it fits no plan) and restored, at its bit depth."""
    from darkir.imageio import DEPTH_DTYPES, ImageReadError, image_to_array, read_image

    if not str(image).strip():
        raise ImageReadError("the image path is empty (an unset variable?); an empty path is not a file")
    path = Path(image).expanduser()  # '~/night.png' as create_model and the command line take it
    if path.is_dir():
        raise ImageReadError(
            f"{image} is a folder; a Restorer restores one image (`darkir restore {image} -o OUT` restores a folder)"
        )
    decoded = read_image(path, functools.partial(check_image_fits, restorer, path))
    decoded.rgb = restorer.restore_array(decoded.rgb)
    return image_to_array(decoded, DEPTH_DTYPES[decoded.bit_depth])


def _restore_tensor(restorer: Restorer, x: torch.Tensor) -> torch.Tensor:
    """An (N, 3, H, W) float batch in [0, 1] restored, clamped, in ``x``'s dtype, device and layout."""
    from darkir.imageio import outside_unit_range

    x = x.detach()  # restored values, never a graph back to the input
    restorer.require_rgb()
    check_batch(x, 3)
    if not bool(torch.isfinite(x).all()):
        raise DarkIRError("the tensor has NaN or infinite values")
    span = outside_unit_range(x)
    if span:
        raise DarkIRError(f"tensor values must be in [0, 1]; this one spans [{span[0]:.4g}, {span[1]:.4g}]")
    return torch.empty_like(x).copy_(restorer.restore_tensor(x.float()).clamp(0, 1))


def _restore_pil(restorer: Restorer, image: Any) -> Any:
    """A PIL image restored as a PIL image of its mode, with its :data:`PIL_INFO_KEPT`."""
    from PIL import Image as PILImage

    modes = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "RGB": np.uint8, "RGBA": np.uint8}
    if image.mode not in modes or (image.mode != "RGBA" and "transparency" in image.info):
        raise DarkIRError(_unsupported_pil(image.mode, "transparency" in image.info))
    try:
        array = np.asarray(image, dtype=modes[image.mode])  # a lazily opened image is decoded here
    except (OSError, SyntaxError) as exc:  # Pillow's errors for a truncated or corrupt file
        name = getattr(image, "filename", "") or "the PIL image"
        raise DarkIRError(f"{name}: cannot decode it ({first_line(exc)})") from None
    # uint8 (H, W) / (H, W, 3) / (H, W, 4) -> L / RGB / RGBA; uint16 -> I;16
    restored = PILImage.fromarray(restore_input(restorer, array))
    restored.info.update({key: image.info[key] for key in PIL_INFO_KEPT if key in image.info})
    _drop_unfitting_icc(restored, getattr(image, "filename", "") or "the PIL image")
    return restored


def check_image_fits(
    restorer: Restorer, name: object, height: int, width: int, consequence: str = "not decoded"
) -> None:
    """Raise, naming ``name`` and what did not happen (``consequence``), where a ``height`` x ``width`` image fits no
    plan of ``restorer`` (see :meth:`Restorer.plan_for`): an image before it is decoded, a video's frames before any
    is restored."""
    try:
        restorer.plan_for(height, width)
    except DarkIRError as exc:
        raise DarkIRError(f"{name}: {exc}; {consequence}") from None


def check_batch(x: torch.Tensor, channels: int | None) -> None:
    """Refuse what the model cannot take: not a non-empty (N, ``channels``, H, W) float tensor (None: any C)."""
    c = "C" if channels is None else channels
    if not isinstance(x, torch.Tensor):
        raise DarkIRError(f"expected a (N, {c}, H, W) torch tensor, got {type(x).__name__}")
    if x.is_meta or x.layout != torch.strided:
        kind = "meta" if x.is_meta else str(x.layout).removeprefix("torch.")
        raise DarkIRError(f"expected a dense tensor of values, got a {kind} tensor")
    if x.dim() != 4 or 0 in x.shape or (channels is not None and x.shape[1] != channels):
        raise DarkIRError(f"expected a (N, {c}, H, W) tensor, non-empty, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DarkIRError(f"expected a float tensor with values in [0, 1], got {x.dtype}")


def check_array(rgb: np.ndarray) -> None:
    """Refuse what :meth:`Restorer.restore_array` does not take, naming the shape, dtype or range found."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        shape = rgb.shape if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise DarkIRError(f"restore_array takes one (H, W, 3) RGB array, got {shape}")
    if rgb.dtype.kind != "f":
        hint = "; pass it to restorer(array), which converts by bit depth" if rgb.dtype.kind in "ui" else ""
        raise DarkIRError(f"restore_array takes a float array with values in [0, 1], got dtype {rgb.dtype}{hint}")
    if not np.isfinite(rgb).all():
        raise DarkIRError("restore_array: the array has NaN or infinite values")
    from darkir.imageio import outside_unit_range  # (imageio, and OpenCV with it, load on first use)

    span = outside_unit_range(rgb)
    if span:
        raise DarkIRError(
            f"restore_array takes values in [0, 1]; this array spans [{span[0]:.4g}, {span[1]:.4g}] "
            "(divide 8-bit data by 255, 16-bit by 65535)"
        )


def _unsupported_pil(mode: str, keyed: bool) -> str:
    """Why a PIL image of ``mode`` (with a transparency key where ``keyed``) is not restored, and the conversion that
    keeps what it holds: its alpha, its 16 bits, its float values."""
    what = f"PIL images of mode {mode!r}{' with a transparency key' if keyed else ''} are not supported"
    if mode == "F":
        return f"{what}; restore np.asarray(image) (float values in [0, 1]) instead"
    if mode.startswith("I") and keyed:  # (converting keeps the key)
        return f"{what}; restore the file by its path (its transparent pixels come back as alpha)"
    if mode.startswith("I"):
        return f"{what}; convert first, e.g. image.convert('I;16') (16-bit gray)"
    alpha = keyed or mode in ("LA", "La", "PA", "RGBa")
    return f"{what}; convert first, e.g. image.convert({'RGBA' if alpha else 'RGB'!r})"


def _drop_unfitting_icc(image: Any, name: str) -> None:
    """Drop from the restored PIL ``image`` an ICC profile for another colour space than its own, with the warning
    ``darkir restore`` gives for the same file (:func:`darkir.image_metadata.icc_mismatch`)."""
    from darkir.image_metadata import icc_mismatch

    icc = image.info.get("icc_profile")
    problem = icc_mismatch(icc, image.mode in ("L", "I;16")) if icc else None
    if problem is not None:
        del image.info["icc_profile"]
        warn(f"{name}: {problem}")
