"""Tone apart from detail: global brightness of outputs against references, and scores with the tone fitted away.

A restoration model can recover detail well and still pick the wrong brightness for a scene; PSNR and SSIM on
paired low-light sets mix both. So darkir reports, beside the raw scores:

- **detail scores**: PSNR and SSIM after fitting each output's global tone to its reference, one gain ``g`` and
  one gamma ``y`` per image (``g * out ** y``, least squares; ``y`` from 1/4 to 4), which no choice of global
  brightness in that range can change (undefined against a flat reference, :func:`has_detail`);
- **tone figures** over the images of a set: the Pearson correlation between the outputs' and the references'
  mean brightness (does the output follow the scene?) and the ratio of their means (is it at the right level?).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from darkir.eval.metrics import MAX_VALUES, format_number, prepare

#: Gammas tried by :func:`fit_tone` before its refinement (log-spaced, 1/4 to 4).
_GAMMAS = np.exp(np.linspace(np.log(0.25), np.log(4.0), 49))


def _fit_error(pred: np.ndarray, target: np.ndarray, gamma: float) -> tuple[float, float]:
    """(squared error, gain) of the best gain for ``pred ** gamma`` against ``target`` (closed form)."""
    powered = pred**gamma
    energy = float(np.dot(powered, powered))
    gain = float(np.dot(powered, target)) / energy if energy > 0 else 1.0
    residual = gain * powered - target
    return float(np.dot(residual, residual)), gain


def fit_tone(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(gain, gamma) such that ``gain * pred ** gamma`` best matches ``target`` (one (C, H, W) image each, [0, 1]).

    A coarse search over gamma (closed-form gain for each) refined by golden-section search; fitted on every
    second pixel of each axis, which changes the fit by far less than it changes the scores.
    """
    p = pred.detach().double().clamp(0, 1)[:, ::2, ::2].reshape(-1).numpy()
    t = target.detach().double()[:, ::2, ::2].reshape(-1).numpy()
    errors = [_fit_error(p, t, g)[0] for g in _GAMMAS]
    best = int(np.argmin(errors))
    low, high = np.log(_GAMMAS[max(best - 1, 0)]), np.log(_GAMMAS[min(best + 1, len(_GAMMAS) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _fit_error(p, t, math.exp(a))[0] < _fit_error(p, t, math.exp(b))[0]:
            high = b
        else:
            low = a
    gamma = math.exp((low + high) / 2)
    return _fit_error(p, t, gamma)[1], gamma


def has_detail(reference: torch.Tensor, bit_depth: int = 8) -> bool:
    """Whether a reference image holds detail for the detail scores to measure: its values spread (standard
    deviation) by at least one level of ``bit_depth`` (8; 16 for deeper and float images). Against a flat one (black,
    white, one grey, or black with a few specks) the fitted tone can make any output match (a gain of 0 turned noise
    into 100 dB against a black reference), so its detail scores are undefined."""
    return float(reference.double().std()) >= 1 / MAX_VALUES[min(bit_depth, 16)]


def tone_fitted(pred: torch.Tensor, target: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """``pred`` (N, C, H, W) with each image's global gain and gamma fitted to ``target``, clamped to [0, 1] and
    quantized as a saved output is (:func:`darkir.eval.metrics.prepare`, ``bit_depth`` that of the input)."""
    fitted = []
    for p, t in zip(pred, target, strict=True):
        gain, gamma = fit_tone(p, t)
        fitted.append((gain * p.double().clamp(0, 1) ** gamma).float())
    return prepare(torch.stack(fitted), "8bit", bit_depth)


def brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean value of each image of a (N, C, H, W) batch (sRGB, 0-1): its global brightness."""
    return images.float().mean(dim=(1, 2, 3))


@dataclass(frozen=True)
class Tone:
    """How the outputs' brightness relates to the references' across the images of a set."""

    correlation: float  #: Pearson correlation of output and reference brightness (NaN under 3 images)
    ratio: float  #: mean output brightness / mean reference brightness
    output_mean: float
    reference_mean: float

    def as_text(self) -> str:
        corr = format_number(self.correlation, ".2f")
        out, ref, ratio = (format_number(value, ".3f") for value in (self.output_mean, self.reference_mean, self.ratio))
        return f"brightness {out} vs reference {ref} (ratio {ratio}), correlation across images {corr}"


def tone(outputs: Sequence[float], references: Sequence[float]) -> Tone:
    """Tone figures from per-image mean brightness of outputs and references (NaN entries are left out)."""
    out, ref = np.asarray(outputs, np.float64), np.asarray(references, np.float64)
    keep = ~(np.isnan(out) | np.isnan(ref))
    out, ref = out[keep], ref[keep]
    if out.size == 0:
        return Tone(math.nan, math.nan, math.nan, math.nan)
    varied = out.size >= 3 and out.std() > 0 and ref.std() > 0
    correlation = float(np.corrcoef(out, ref)[0, 1]) if varied else math.nan
    ratio = float(out.mean() / ref.mean()) if ref.mean() > 0 else math.nan
    return Tone(correlation, ratio, float(out.mean()), float(ref.mean()))
