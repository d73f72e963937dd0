"""Pixel losses of the training recipe, the side-output (enhance) loss, and the detail anchor of fine-tunes."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from darkir.errors import CheckpointError, ConfigError
from darkir.models.factory import create_model


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean of sqrt((pred - target)^2 + eps), a smooth L1 (the reference's eps)."""
    return torch.sqrt((pred - target) ** 2 + eps).mean()


PIXEL_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier}


def side_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The reference downsampled (area) to the side output's size."""
    return F.adaptive_avg_pool2d(target, size)


def log_detail(image: torch.Tensor, size: int = 9, eps: float = 1e-2) -> torch.Tensor:
    """The local contrast of ``image``: its log minus the log's ``size`` x ``size`` box mean. A brightness or tone
    change that is smooth over ``size`` pixels leaves it (nearly) as it is."""
    logged = torch.log(image.float().clamp_min(0) + eps)
    pad = size // 2
    local = F.avg_pool2d(F.pad(logged, (pad, pad, pad, pad), mode="reflect"), size, stride=1)
    return logged - local


class DetailAnchor:
    """The ``train.anchor`` term: Charbonnier between the :func:`log_detail` of the model's output and that of a
    frozen model's output for the same input. A fine-tune that should change tone keeps the anchor's detail so."""

    def __init__(
        self, weights: str | os.PathLike[str], device: torch.device, memory_format: torch.memory_format
    ) -> None:
        try:
            with torch.random.fork_rng(devices=[]):  # building the model leaves the run's random state as seeded
                model = create_model(weights, require_weights=True)
        except (CheckpointError, ConfigError) as error:
            raise ConfigError(f"train.anchor: {error}") from error
        self.model = model.to(device, memory_format=memory_format).eval().requires_grad_(False)

    def __call__(self, low: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.model(low)
        return charbonnier(log_detail(out), log_detail(reference))
