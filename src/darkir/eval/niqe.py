"""NIQE (Mittal et al., "Making a Completely Blind Image Quality Analyzer", 2013), offline and MATLAB-matching.

Lower is better. The natural-scene model (a 36-dimensional Gaussian fitted to pristine photos, and the 7x7
Gaussian window) is the official one, as distributed in BasicSR's source package
(``basicsr/metrics/niqe_pris_params.npz``, Apache-2.0) and shipped here as ``assets/niqe/``. The computation follows
the official MATLAB release as BasicSR does: the Y channel of ITU-R BT.601 YCbCr (range 16-235) rounded to
integers, no border crop, 96x96 blocks without overlap over two scales, the second made by MATLAB's antialiased
bicubic ``imresize`` to half size.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import cv2
import numpy as np

BLOCK = 96
#: Shape parameters searched when fitting an asymmetric generalized Gaussian (as the MATLAB release does).
_GAMMAS = np.arange(0.2, 10.001, 0.001)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.cache
def _model() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, covariance, Gaussian window) of the pristine natural-scene model."""
    with resources.files("darkir").joinpath("assets/niqe/niqe_pris_params.npz").open("rb") as handle:
        params = np.load(handle)
        return params["mu_pris_param"][0], params["cov_pris_param"], params["gaussian_window"]


@functools.cache
def _ratio_table() -> np.ndarray:
    """Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) for every searched shape ``a``."""
    lgamma = np.vectorize(math.lgamma)
    return np.exp(2 * lgamma(2 / _GAMMAS) - lgamma(1 / _GAMMAS) - lgamma(3 / _GAMMAS))


def _aggd(values: np.ndarray) -> tuple[float, float, float]:
    """(shape, left scale, right scale) of an asymmetric generalized Gaussian fitted by moment matching."""
    values = values.ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        left = math.sqrt(np.mean(values[values < 0] ** 2)) if (values < 0).any() else math.nan
        right = math.sqrt(np.mean(values[values > 0] ** 2)) if (values > 0).any() else math.nan
        ratio = left / right
        rhat = np.mean(np.abs(values)) ** 2 / np.mean(values**2)
        normalized = rhat * (ratio**3 + 1) * (ratio + 1) / (ratio**2 + 1) ** 2
    if math.isnan(normalized):
        return math.nan, math.nan, math.nan
    shape = float(_GAMMAS[np.argmin((_ratio_table() - normalized) ** 2)])
    spread = math.sqrt(math.gamma(1 / shape) / math.gamma(3 / shape))
    return shape, left * spread, right * spread


def _block_features(block: np.ndarray) -> list[float]:
    """The 18 features of one block of normalized luminance: its AGGD fit and those of 4 neighbour products."""
    shape, left, right = _aggd(block)
    features = [shape, (left + right) / 2]
    for shift in _SHIFTS:
        shape, left, right = _aggd(block * np.roll(block, shift, axis=(0, 1)))
        mean = (right - left) * math.gamma(2 / shape) / math.gamma(1 / shape) if not math.isnan(shape) else math.nan
        features += [shape, mean, left, right]
    return features


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        1.5 * ax**3 - 2.5 * ax**2 + 1,
        np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0),
    )


def _resize_matrix(length: int, scale: float) -> np.ndarray:
    """(out, in) weights of MATLAB's antialiased bicubic resize along one axis, with symmetric borders."""
    out_length = math.ceil(length * scale)
    width = 4 / scale if scale < 1 else 4
    centres = np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale)
    taps = math.ceil(width) + 2
    indices = np.floor(centres - width / 2)[:, None] + np.arange(taps)[None, :]
    distance = centres[:, None] - indices
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    source = indices.astype(int) - 1  # MATLAB indices start at 1
    source = np.where(source < 0, -source - 1, source)
    source = np.where(source >= length, 2 * length - 1 - source, source)
    matrix = np.zeros((out_length, length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), source.ravel()), weights.ravel())
    return matrix


def imresize_half(image: np.ndarray) -> np.ndarray:
    """MATLAB's ``imresize(image, 0.5)`` (bicubic, antialiased) of a 2-D float image."""
    return _resize_matrix(image.shape[0], 0.5) @ image @ _resize_matrix(image.shape[1], 0.5).T


def luma_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 Y (16-235, as MATLAB's ``rgb2ycbcr``) of an RGB float image in [0, 1], rounded like 8-bit data."""
    return np.round(rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) + 16.0)


def niqe_y(y: np.ndarray) -> float:
    """NIQE of a 2-D luminance image in [0, 255]; NaN if it is smaller than one 96x96 block."""
    mu_pristine, cov_pristine, window = _model()
    rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        return math.nan
    image = np.asarray(y, dtype=np.float64)[: rows * BLOCK, : cols * BLOCK]
    features = []
    for scale in (1, 2):
        mu = cv2.filter2D(image, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE)
        var = cv2.filter2D(image * image, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE) - mu * mu
        normalized = (image - mu) / (np.sqrt(np.abs(var)) + 1)
        size = BLOCK // scale
        features.append(
            [
                _block_features(normalized[r * size : (r + 1) * size, c * size : (c + 1) * size])
                for c in range(cols)
                for r in range(rows)
            ]
        )
        if scale == 1:
            image = imresize_half(image / 255.0) * 255.0
    distortion = np.concatenate([np.array(f) for f in features], axis=1)
    if np.isnan(distortion).all(axis=0).any():  # a feature no block has (a flat image): no score
        return math.nan
    mu_distorted = np.nanmean(distortion, axis=0)
    complete = distortion[~np.isnan(distortion).any(axis=1)]
    cov_distorted = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pristine)
    delta = mu_pristine - mu_distorted
    return float(math.sqrt(max(delta @ np.linalg.pinv((cov_pristine + cov_distorted) / 2) @ delta, 0.0)))


def niqe(rgb: np.ndarray) -> float:
    """NIQE of an RGB (H, W, 3) or gray (H, W) float image in [0, 1]; lower is better."""
    _check_image(rgb)
    if rgb.ndim == 2:
        return niqe_y(np.round(rgb.astype(np.float64) * 255))
    return niqe_y(luma_y(rgb[..., :3]))


def _check_image(rgb: object) -> None:
    """Raise a ValueError unless ``rgb`` is a float (H, W) or (H, W, 3) array in [0, 1] (an 8-bit array scored as
    one in [0, 1] gave another number without a word)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3):
        shape = rgb.shape if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"niqe takes an (H, W, 3) RGB or (H, W) gray array, got {shape}")
    if rgb.dtype.kind != "f":
        raise ValueError(f"niqe takes a float array in [0, 1], got {rgb.dtype} (divide 8-bit images by 255)")
    if rgb.size and not (float(rgb.min()) >= -1e-3 and float(rgb.max()) <= 1 + 1e-3):  # (float rounding)
        raise ValueError(
            f"niqe takes values in [0, 1]; this array spans [{float(rgb.min()):.4g}, {float(rgb.max()):.4g}]"
        )
