"""What can be evaluated: a restoration model, or one of two trivial baselines every model must beat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from darkir.infer.restorer import Restorer

#: Mean sRGB brightness the auto-exposure baseline scales each image to.
AUTO_EXPOSURE_TARGET = 0.4

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Method:
    """A named image transform on (1, 3, H, W) float tensors in [0, 1] (outputs may leave [0, 1])."""

    name: str
    run: Transform
    restorer: Restorer | None = None


def identity() -> Method:
    """The input as it is."""
    return Method("input", lambda x: x.clone())


def auto_exposure(target: float = AUTO_EXPOSURE_TARGET) -> Method:
    """A global gain per image that brings its mean brightness to ``target`` (clipped to [0, 1])."""

    def run(x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (x * (target / mean)).clamp(0, 1)

    return Method(f"auto-exposure {target:g}", run)


def model_method(name: str, restorer: Restorer) -> Method:
    """A model run through a Restorer (same tiling/precision as ``darkir restore``)."""
    return Method(name, restorer.restore_tensor, restorer)
