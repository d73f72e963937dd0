"""Full-reference image metrics, per image: PSNR and SSIM (LPIPS lives in :mod:`darkir.eval.lpips`).

Convention (the default everywhere in darkir, named ``8bit``): outputs are clamped to [0, 1] and quantized as when
they are saved, before scoring: at their input's bit depth, which callers pass to :func:`prepare` (8 bits, or 16 for
16-bit inputs: ``darkir restore`` saves an output at its input's bit depth), and in gray for a gray input
(:func:`prepare`'s ``grayscale``). ``reference`` scores raw float outputs as the official DarkIR testing code does.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

Convention = Literal["8bit", "reference"]

#: PSNR of identical images (instead of infinity, which would make every mean over a set infinite): the score of
#: an error of 1e-10 of the data range squared.
PSNR_CAP = 100.0


#: How far past [0, data_range] a target's values may stray (float rounding of a conversion), as a share of it.
RANGE_SLACK = 1e-3

#: The largest sample value of each bit depth an output is saved at (32: float samples, clamped but not rounded).
MAX_VALUES = {8: 255, 16: 65535}


def format_number(value: float, spec: str) -> str:
    """``value`` formatted with ``spec`` (``".2f"``, ``".0%"``), or ``n/a`` where it is NaN (no value)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def prepare(
    pred: torch.Tensor, convention: Convention = "8bit", bit_depth: int = 8, grayscale: bool = False
) -> torch.Tensor:
    """Apply the scoring convention to a prediction, (N, C, H, W) or any other layout (it works sample by sample);
    ``bit_depth``: that of its input (8, 16 or 32), at which ``darkir restore`` would save it, and at which the
    ``8bit`` convention rounds it; ``grayscale``: the input is gray, so the ``8bit`` convention takes the (N, 3, H, W)
    prediction in gray, as it is saved (:func:`_as_saved_gray`)."""
    if bit_depth not in (*MAX_VALUES, 32):
        raise ValueError(f"unknown bit depth {bit_depth!r}; use 8, 16 or 32")
    if convention == "8bit":
        clamped = pred.clamp(0, 1)
        saved = clamped if bit_depth == 32 else torch.round(clamped * MAX_VALUES[bit_depth]) / MAX_VALUES[bit_depth]
        return _as_saved_gray(saved, bit_depth) if grayscale else saved
    if convention == "reference":
        return pred
    raise ValueError(f"unknown convention {convention!r}; use '8bit' or 'reference'")


def _as_saved_gray(pred: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """An (N, 3, H, W) output of a gray input, prepared at ``bit_depth``, as ``darkir restore`` saves it: the gray it
    makes of the stored RGB, in all three channels (as a gray file reads)."""
    import numpy as np

    from darkir.imageio import stored_gray, to_storage

    top = MAX_VALUES.get(bit_depth, 1)
    grays = [
        stored_gray(to_storage(image.permute(1, 2, 0).numpy(), bit_depth)).astype(np.float32) / np.float32(top)
        for image in pred.float().cpu()
    ]
    return torch.from_numpy(np.stack(grays))[:, None].expand(-1, 3, -1, -1).to(pred.dtype)


def check_pair(pred: object, target: object, data_range: float = 1.0, metric: str = "the metric") -> None:
    """Raise a ValueError, naming ``metric``, unless ``pred`` and ``target`` are float tensors of one (N, C, H, W)
    shape and ``target``'s values lie in [0, ``data_range``] (the prediction may stray: a raw output scored as the
    reference code does): integer or 0-255 images scored at the default range gave numbers without meaning."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{metric}: {name} must be a torch tensor (N, C, H, W), got {type(x).__name__}")
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"{metric}: {name} must be a float (N, C, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"{metric}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not 0 < data_range < math.inf:
        raise ValueError(f"{metric}: data_range must be a positive number, got {data_range!r}")
    low, high = float(target.min()), float(target.max())
    if low < -RANGE_SLACK * data_range or high > (1 + RANGE_SLACK) * data_range:
        raise ValueError(
            f"{metric}: target values span [{low:.4g}, {high:.4g}], outside data_range [0, {data_range:g}] "
            "(divide 8-bit images by 255, or pass their data_range)"
        )


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image of a (N, C, H, W) float batch against ``target`` in [0, ``data_range``], at most
    :data:`PSNR_CAP` (identical images)."""
    check_pair(pred, target, data_range, "psnr")
    mse = torch.mean((pred.double() - target.double()) ** 2, dim=(1, 2, 3))
    return (10 * torch.log10(data_range**2 / mse)).clamp(max=PSNR_CAP).float()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each image (Gaussian window 11, sigma 1.5, valid region), as scikit-image with gaussian_weights.

    Images smaller than the window (11 px) get NaN. Inputs as :func:`psnr`'s.
    """
    from pytorch_msssim import ssim as _ssim

    check_pair(pred, target, data_range, "ssim")
    if min(pred.shape[-2:]) < 11:
        return torch.full((pred.shape[0],), float("nan"))
    return _ssim(pred.float(), target.float(), data_range=data_range, size_average=False, win_size=11, win_sigma=1.5)
