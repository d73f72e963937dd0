"""Pixel losses of the training recipe, and the side-output (enhance) loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean of sqrt((pred - target)^2 + eps), a smooth L1 (the reference's eps)."""
    return torch.sqrt((pred - target) ** 2 + eps).mean()


PIXEL_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier}


def side_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The reference downsampled (area) to the side output's size."""
    return F.adaptive_avg_pool2d(target, size)
