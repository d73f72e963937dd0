"""Unpaired sets: restore, save, and report the no-reference statistics that can run offline.

No no-reference quality model (NIQE, BRISQUE, ...) works offline as installed (their parameters are
downloaded), so darkir reports what needs none and says so: mean brightness (sRGB, 0-1) and the noise
standard deviation estimated with Immerkaer's fast method (1996), before and after restoration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from darkir.data.pairs import Pair
from darkir.infer.images import read_image, write_image
from darkir.infer.restorer import Restorer

NO_REFERENCE_NOTE = (
    "no-reference statistics (no NIQE/BRISQUE model can run offline): mean brightness in sRGB [0,1] "
    "and Immerkaer noise sigma in sRGB [0,1]"
)
_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def noise_sigma(rgb: np.ndarray) -> float:
    """Immerkaer's estimate of Gaussian noise sigma on the luma of an RGB image in [0, 1]."""
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    height, width = gray.shape
    if height < 3 or width < 3:
        return math.nan
    total = np.abs(cv2.filter2D(gray, cv2.CV_64F, _KERNEL)[1:-1, 1:-1]).sum()
    return float(total * math.sqrt(math.pi / 2) / (6 * (width - 2) * (height - 2)))


@dataclass
class UnpairedRow:
    """Statistics of one image before and after restoration."""

    name: str
    brightness_in: float
    brightness_out: float
    noise_in: float
    noise_out: float


def restore_unpaired(restorer: Restorer, pairs: list[Pair], output: Path, progress: bool = True) -> list[UnpairedRow]:
    """Restore every input into ``output`` (relative names kept) and collect the statistics."""
    rows = []
    for pair in tqdm(pairs, desc="restoring", unit="img", disable=not progress):
        image = read_image(pair.low)
        before = image.rgb
        image.rgb = restorer.restore_array(before)
        target = output / pair.name
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, image)
        rows.append(
            UnpairedRow(
                pair.name, float(before.mean()), float(image.rgb.mean()), noise_sigma(before), noise_sigma(image.rgb)
            )
        )
    return rows
