"""Exposure compensation of restored images, as a photographer's EV dial: in linear light, highlights rolled off.

``apply_exposure(image, ev)`` multiplies the linear-light values of an sRGB image by ``2 ** ev``. Brightening would
push highlights past white, so values above :data:`KNEE` (linear) are compressed by a smooth shoulder that maps the
brightest possible value, ``2 ** ev``, to white: the curve is the identity up to the knee, continuous with slope 1
there, monotonic, and exactly the identity at 0 EV. Darkening needs no shoulder.
"""

from __future__ import annotations

import math
import numbers

import torch

from darkir.errors import DarkIRError

#: Linear value above which brightened highlights are rolled off (sRGB about 0.74).
KNEE = 0.5
#: The dial's range, in EV either way.
MAX_EV = 4.0


def check_exposure(ev: float) -> float:
    """``ev`` as a float if it is a finite number of EV within +-:data:`MAX_EV` (a NumPy number too), else a
    DarkIRError naming it."""
    if isinstance(ev, bool) or not isinstance(ev, numbers.Real) or not math.isfinite(ev) or abs(ev) > MAX_EV:
        raise DarkIRError(f"exposure must be a number of EV between -{MAX_EV:g} and {MAX_EV:g}, got {ev!r}")
    return float(ev)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Invert the sRGB transfer curve (values in [0, 1])."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer curve (values in [0, 1])."""
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


def roll_off(x: torch.Tensor, peak: float) -> torch.Tensor:
    """Map linear values in [0, ``peak``] into [0, 1]: identity up to :data:`KNEE`, then ``1 - (1 - t) ** p`` on the
    rest (``t`` the position between the knee and ``peak``, ``p`` chosen for slope 1 at the knee)."""
    if peak <= 1:
        return x
    power = (peak - KNEE) / (1 - KNEE)
    t = ((x - KNEE) / (peak - KNEE)).clamp(0, 1)
    return torch.where(x > KNEE, KNEE + (1 - KNEE) * (1 - (1 - t) ** power), x)


def apply_exposure(image: torch.Tensor, ev: float) -> torch.Tensor:
    """``image`` (sRGB, any shape) exposed by ``ev`` stops in linear light; ``ev == 0`` returns ``image`` itself."""
    if ev == 0:
        return image
    gain = 2.0**ev
    linear = srgb_to_linear(image.clamp(0, 1).double()) * gain
    return linear_to_srgb(roll_off(linear, gain)).to(image.dtype)
