"""Full-reference image metrics, per image: PSNR and SSIM (LPIPS lives in :mod:`darkir.eval.lpips`).

Convention (the default everywhere in darkir): outputs are clamped to [0, 1] and quantized to 8 bits,
as when they are saved, before scoring. ``reference`` scores raw float outputs as the official
DarkIR testing code does.
"""

from __future__ import annotations

from typing import Literal

import torch

Convention = Literal["8bit", "reference"]

#: PSNR of identical images (instead of infinity, which would make every mean over a set infinite): the score of
#: an error of 1e-10 of the data range squared.
PSNR_CAP = 100.0


def prepare(pred: torch.Tensor, convention: Convention = "8bit") -> torch.Tensor:
    """Apply the scoring convention to a (N, C, H, W) prediction."""
    if convention == "8bit":
        return torch.round(pred.clamp(0, 1) * 255) / 255
    if convention == "reference":
        return pred
    raise ValueError(f"unknown convention {convention!r}; use '8bit' or 'reference'")


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image of a (N, C, H, W) batch, at most :data:`PSNR_CAP` (identical images)."""
    mse = torch.mean((pred.double() - target.double()) ** 2, dim=(1, 2, 3))
    return (10 * torch.log10(data_range**2 / mse)).clamp(max=PSNR_CAP).float()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each image (Gaussian window 11, sigma 1.5, valid region), as scikit-image with gaussian_weights.

    Images smaller than the window (11 px) get NaN.
    """
    from pytorch_msssim import ssim as _ssim

    if min(pred.shape[-2:]) < 11:
        return torch.full((pred.shape[0],), float("nan"))
    return _ssim(pred.float(), target.float(), data_range=data_range, size_average=False, win_size=11, win_sigma=1.5)
