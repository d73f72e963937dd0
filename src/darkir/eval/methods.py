"""What can be evaluated: a restoration model, or a baseline every model must beat (input, auto-exposure,
CLAHE, and, given its weights, Zero-DCE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
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
    #: Where a model's weights came from (a zoo name, a checkpoint, an options file), for reports to name.
    source: str | None = None
    #: Whether the time its ``run`` takes means anything (the input as it is, or outputs scored as files, take none).
    timed: bool = True


def identity() -> Method:
    """The input as it is."""
    return Method("input", lambda x: x.clone(), timed=False)


def auto_exposure(target: float = AUTO_EXPOSURE_TARGET) -> Method:
    """A global gain per image that brings its mean brightness to ``target`` (clipped to [0, 1])."""

    def run(x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (x * (target / mean)).clamp(0, 1)

    return Method(f"auto-exposure {target:g}", run)


def model_method(name: str, restorer: Restorer, source: str | None = None) -> Method:
    """A model run through a Restorer (same tiling/precision as ``darkir restore``); ``source``: its weights'."""
    return Method(name, restorer.restore_tensor, restorer, source)


def clahe(clip_limit: float = 2.0, tiles: int = 8) -> Method:
    """Contrast-limited adaptive histogram equalization of the L channel (CIE Lab), as OpenCV does it."""
    equalizer = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, tiles))

    def run(x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for image in x:
            rgb = np.rint(image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
            lab[..., 0] = equalizer.apply(lab[..., 0])
            out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255
            outputs.append(torch.from_numpy(out).permute(2, 0, 1))
        return torch.stack(outputs)

    return Method("CLAHE", run)


def zero_dce(weights: str) -> Method:
    """The official Zero-DCE weights (``Epoch99.pth``, given by path; never shipped)."""
    from darkir.eval.zerodce import load_zero_dce

    model = load_zero_dce(weights)

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x).clamp(0, 1)

    return Method("Zero-DCE", run)
