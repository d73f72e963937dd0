"""Pixel losses of the training recipe, the side-output (enhance) loss, and the detail anchor and tone split of
fine-tunes."""

from __future__ import annotations

import functools
import hashlib
import os

import torch
import torch.nn.functional as F

from darkir.errors import CheckpointError, ConfigError
from darkir.models.factory import create_model


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12, reduction: str = "mean") -> torch.Tensor:
    """Mean (or, with ``reduction="sum"``, sum) of sqrt((pred - target)^2 + eps), a smooth L1 (the reference's
    eps)."""
    distances = torch.sqrt((pred - target) ** 2 + eps)
    return distances.sum() if reduction == "sum" else distances.mean()


PIXEL_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier}


#: The 5-tap binomial-like filter of the official edge loss's Gaussian blur (applied along rows and columns).
_BLUR_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def laplacian_band(image: torch.Tensor) -> torch.Tensor:
    """The finest band of ``image``'s Laplacian pyramid (the official edge loss's edges): the image minus its blur
    (:data:`_BLUR_TAPS`, edges replicated) decimated by 2, put back on the full grid with zeros between (times 4 for
    the energy the zeros take) and blurred again."""
    with torch.autocast(image.device.type, enabled=False):  # (a small difference of close values: not in half)
        return _laplacian_band(image.float())


def _laplacian_band(image: torch.Tensor) -> torch.Tensor:
    channels = image.shape[1]
    taps = image.new_tensor(_BLUR_TAPS)
    kernel = (taps[:, None] * taps[None, :]).expand(channels, 1, 5, 5)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=channels)

    blurred = blur(image)
    expanded = torch.zeros_like(blurred)
    expanded[..., ::2, ::2] = 4 * blurred[..., ::2, ::2]
    return image - blur(expanded)


def side_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The reference downsampled (area) to the side output's size."""
    return F.adaptive_avg_pool2d(target, size)


def _log(image: torch.Tensor, eps: float) -> torch.Tensor:
    """log(image + eps) in float32, negative values taken as 0."""
    return torch.log(image.float().clamp_min(0) + eps)


def log_detail(image: torch.Tensor, size: int = 9, eps: float = 1e-2) -> torch.Tensor:
    """The local contrast of ``image``: its log minus the log's ``size`` x ``size`` box mean. A brightness or tone
    change that is smooth over ``size`` pixels leaves it (nearly) as it is."""
    logged = _log(image, eps)
    pad = size // 2
    local = F.avg_pool2d(F.pad(logged, (pad, pad, pad, pad), mode="reflect"), size, stride=1)
    return logged - local


def tone_matched(out: torch.Tensor, reference: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """``out`` through the global gain and gamma that bring it nearest ``reference`` (one pair per image, fitted by
    least squares between their logs and held constant for the gradient): the pixel loss on it scores detail and
    colour, not the global tone."""
    logged = _log(out, eps)
    with torch.no_grad():
        x, y = logged.flatten(1), _log(reference, eps).flatten(1)
        x_centred = x - x.mean(1, keepdim=True)
        gamma = (x_centred * (y - y.mean(1, keepdim=True))).mean(1) / x_centred.pow(2).mean(1).clamp_min(1e-8)
        gamma = gamma.clamp(0.25, 4.0)
        offset = y.mean(1) - gamma * x.mean(1)
    shape = (-1,) + (1,) * (out.dim() - 1)
    return torch.exp(offset.view(shape) + gamma.view(shape) * logged) - eps


#: The Rec. 709 luminance weights of red, green and blue.
_REC709 = (0.2126, 0.7152, 0.0722)


def log_luminance_stats(image: torch.Tensor, eps: float = 1e-2, block: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's global tone: the mean and standard deviation of the log of its luminance (Rec. 709 weights; a
    gray image's own values) averaged over ``block`` x ``block`` blocks, so that fine detail and noise barely move
    the spread."""
    weights = image.new_tensor(_REC709, dtype=torch.float32).view(1, 3, 1, 1)
    luminance = image.float().mean(1) if image.shape[1] != 3 else (image.float() * weights).sum(1)
    block = max(1, min(block, *luminance.shape[-2:]))
    logged = _log(F.avg_pool2d(luminance.unsqueeze(1), block), eps).flatten(1)
    return logged.mean(1), logged.var(1, correction=0).clamp_min(1e-12).sqrt()


def global_tone(out: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The ``train.tone_split`` tone term: the distance between the global tones (:func:`log_luminance_stats`) of
    ``out`` and ``reference``, averaged over the batch."""
    (out_mean, out_spread), (ref_mean, ref_spread) = log_luminance_stats(out), log_luminance_stats(reference)
    return ((out_mean - ref_mean).abs() + (out_spread - ref_spread).abs()).mean()


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

    @functools.cached_property
    def digest(self) -> str:
        """A SHA-256 of the anchor's weights (names and values), which a resumed run compares with the one its
        checkpoint recorded: other weights under the same name change the run's loss."""
        hashed = hashlib.sha256()
        for name, tensor in self.model.state_dict().items():
            hashed.update(name.encode())
            hashed.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return hashed.hexdigest()

    def __call__(self, low: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.model(low)
        return charbonnier(log_detail(out), log_detail(reference))
