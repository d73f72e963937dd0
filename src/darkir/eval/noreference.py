"""No-reference scores that run offline, of images without references: NIQE (:mod:`darkir.eval.niqe`, lower is
better), the mean brightness (sRGB, 0-1) and the noise standard deviation estimated with Immerkaer's fast method
(1996); their CSV rows and summary lines (``darkir metrics FOLDER``, ``test-unpaired``, ``compare --unpaired``).
BRISQUE, MUSIQ and NRQM are not reported: no installable package ships their models for offline use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from darkir.data.pairs import Pair
from darkir.eval.metrics import format_number
from darkir.eval.niqe import niqe
from darkir.eval.reports import count_note, skip_unreadable_image, write_csv_rows
from darkir.eval.stats import Interval, bootstrap_mean, mean_of_defined
from darkir.imageio import Image, ImageReadError, read_image
from darkir.progress import progress_bar

NO_REFERENCE_NOTE = (
    "no-reference scores: NIQE (lower is better; MATLAB-matching, official natural-scene model; nan under 96x96 "
    "pixels and for flat images), mean brightness in sRGB [0,1], Immerkaer noise sigma in sRGB [0,1]; "
    "BRISQUE/MUSIQ/NRQM: not available offline"
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
class NoReferenceScores:
    """No-reference scores of one image."""

    niqe: float
    brightness: float
    noise: float


def no_reference_scores(rgb: np.ndarray) -> NoReferenceScores:
    """NIQE (NaN below 96x96 pixels), mean brightness and noise sigma of an RGB image in [0, 1]."""
    return NoReferenceScores(niqe(rgb), float(rgb.mean()), noise_sigma(rgb))


def read_or_skip(path: Path, unreadable: list[str] | None) -> Image | None:
    """The image at ``path``; when it cannot be read, None if ``unreadable`` collects such images (the failure is
    added to it and said on stderr), else the :class:`~darkir.imageio.ImageReadError`."""
    try:
        return read_image(path)
    except (ImageReadError, OSError) as exc:
        if unreadable is None:
            raise
        skip_unreadable_image(exc, unreadable)
        return None


def score_folder(
    pairs: Sequence[Pair], progress: bool = True, unreadable: list[str] | None = None
) -> list[tuple[str, NoReferenceScores]]:
    """No-reference scores of every image of a folder (as listed by :func:`darkir.data.pairs.find_unpaired`). An image
    that cannot be read raises, or is skipped and added to ``unreadable`` (``path: why``) when given."""
    images = (
        (pair.name, read_or_skip(pair.low, unreadable))
        for pair in progress_bar(pairs, desc="scoring", unit="img", disable=not progress)
    )
    return [(name, no_reference_scores(image.rgb)) for name, image in images if image is not None]


def write_scores_csv(path: Path, rows: Sequence[tuple[str, dict[str, float]]], overwrite: bool = True) -> None:
    """One row per image: its name, then each score (column names from the first row; none without rows). Written
    atomically; an existing file is replaced only with ``overwrite``."""
    write_csv_rows(path, scores_csv_rows(rows), overwrite)


def scores_csv_rows(rows: Sequence[tuple[str, dict[str, float]]]) -> list[list[str]]:
    """The rows of :func:`write_scores_csv`'s file, its header first."""
    lines = [["image", *(rows[0][1] if rows else ())]]
    lines += [[name, *(f"{v:.5f}" for v in values.values())] for name, values in rows]
    return lines


def mean_and_count_of_defined(values: Sequence[float]) -> tuple[float, int]:
    """The mean of the values that are not NaN (NaN without any), and their count."""
    return mean_of_defined(values), sum(not math.isnan(value) for value in values)


def scores_text(niqe: Interval, brightness: float, noise: tuple[float, int], total: int) -> str:
    """``NIQE m [lo, hi], brightness b, noise sigma n``, each mean saying how many of ``total`` images it covers
    where not all have a value."""
    return (
        f"NIQE {niqe.as_text(3, signed=False)}{count_note(niqe.images, total)}, brightness {brightness:.3f}, "
        f"noise sigma {format_number(noise[0], '.4f')}{count_note(noise[1], total)}"
    )


def mean_line(label: str, scores: Sequence[NoReferenceScores]) -> str:
    """``label: NIQE m [lo, hi], brightness b, noise n`` over images (95% bootstrap interval for NIQE)."""
    niqe_interval = bootstrap_mean(np.array([s.niqe for s in scores], dtype=np.float64))
    brightness = mean_of_defined([s.brightness for s in scores])
    noise = mean_and_count_of_defined([s.noise for s in scores])
    return f"{label}: {scores_text(niqe_interval, brightness, noise, len(scores))}"
