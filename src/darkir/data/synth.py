"""Synthesis of low-light + blur + noise pairs from clean photos (a LOLBlur-style degradation model).

Per pair, in linear light (after inverting the sRGB curve), following the LEDNet/LOLBlur recipe:

1. **Reference exposure.** The clean crop is scaled so that its sRGB mean is ``target_mean`` (uniform
   in ``target_mean_range``, default 0.30-0.45, the brightness of LOL/LOLBlur references). A model
   learns the brightness of its targets, so this convention is explicit; the reference is this image.
2. **Camera shake.** With probability ``blur_prob`` the linear image is convolved with a random
   camera-shake kernel: a random-walk trajectory with inertia, ``kernel_size_range`` pixels wide.
3. **Darkening.** The exposure is scaled down so that the sRGB mean is ``low_mean``, drawn
   log-uniformly in ``low_mean_range`` (default 0.02-0.20: near-black to dim, as real captures).
4. **Sensor noise.** Poisson shot noise at ``photons`` (log-uniform) electrons for a linear value of 1,
   plus Gaussian read noise of ``read_noise`` (log-uniform), per channel.
5. **Clipping, sRGB curve, 8-bit quantization**, and JPEG compression with probability ``jpeg_prob``.

Everything is drawn from ``numpy.random.default_rng([seed, photo index, crop index])``, so a set is
reproducible from its seed and its photo list.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from darkir.data.layouts import LAYOUTS, DatasetError
from darkir.infer.images import Image, read_image, write_image


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Invert the sRGB transfer curve."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve to values in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def exposure_for_mean(linear: np.ndarray, target: float) -> float:
    """The gain ``k`` such that ``mean(srgb(clip(k * linear)))`` equals ``target`` (bisection)."""
    sample = linear[::4, ::4]
    low, high = 1e-4, 1e3
    for _ in range(40):
        mid = np.sqrt(low * high)
        if linear_to_srgb(sample * mid).mean() < target:
            low = mid
        else:
            high = mid
    return float(np.sqrt(low * high))


def shake_kernel(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random camera-shake blur kernel of odd side ``size``: a jittery trajectory with inertia."""
    steps = 64
    velocity = rng.normal(size=2)
    velocity /= np.linalg.norm(velocity) + 1e-8
    position = np.zeros(2)
    points = []
    for _ in range(steps):
        velocity = 0.8 * velocity + 0.6 * rng.normal(size=2)
        velocity /= np.linalg.norm(velocity) + 1e-8
        position = position + velocity
        points.append(position.copy())
    track = np.array(points)
    track -= track.mean(axis=0)
    extent = np.abs(track).max() + 1e-8
    track *= (size / 2 - 1) / extent * rng.uniform(0.5, 1.0)
    kernel = np.zeros((size, size), np.float32)
    center = size // 2
    for y, x in track:
        y0, x0 = int(np.floor(y + center)), int(np.floor(x + center))
        fy, fx = y + center - y0, x + center - x0
        for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                kernel[y0 + dy, x0 + dx] += w
    return kernel / kernel.sum()


@dataclass(frozen=True)
class SynthParams:
    """Ranges of the degradation model (see the module docstring)."""

    target_mean_range: tuple[float, float] = (0.30, 0.45)
    low_mean_range: tuple[float, float] = (0.02, 0.20)
    blur_prob: float = 0.85
    kernel_size_range: tuple[int, int] = (7, 31)
    photons_range: tuple[float, float] = (300.0, 6000.0)
    read_noise_range: tuple[float, float] = (2e-4, 4e-3)
    jpeg_prob: float = 0.3
    jpeg_quality_range: tuple[int, int] = (70, 95)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def degrade(
    clean_srgb: np.ndarray, rng: np.random.Generator, params: SynthParams
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(low, high, drawn values) from a clean sRGB float image in [0, 1]."""
    linear = srgb_to_linear(clean_srgb)
    target_mean = rng.uniform(*params.target_mean_range)
    linear = np.clip(linear * exposure_for_mean(linear, target_mean), 0, 1)
    high = linear_to_srgb(linear)
    record: dict[str, object] = {"target_mean": round(float(target_mean), 4)}
    if rng.random() < params.blur_prob:
        size = int(rng.integers(params.kernel_size_range[0] // 2, params.kernel_size_range[1] // 2 + 1)) * 2 + 1
        linear = cv2.filter2D(linear, -1, shake_kernel(rng, size), borderType=cv2.BORDER_REFLECT)
        record["kernel_size"] = size
    low_mean = _log_uniform(rng, params.low_mean_range)
    dark = linear * exposure_for_mean(linear, low_mean)
    photons = _log_uniform(rng, params.photons_range)
    read_noise = _log_uniform(rng, params.read_noise_range)
    noisy = rng.poisson(np.clip(dark, 0, None) * photons) / photons + rng.normal(0, read_noise, dark.shape)
    low = linear_to_srgb(noisy.astype(np.float32))
    record.update(low_mean=round(low_mean, 4), photons=round(photons, 1), read_noise=round(read_noise, 6))
    if rng.random() < params.jpeg_prob:
        quality = int(rng.integers(params.jpeg_quality_range[0], params.jpeg_quality_range[1] + 1))
        _, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(np.rint(low * 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, quality],
        )
        low = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        record["jpeg_quality"] = quality
    return low, high, record


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` square from the photo rescaled so its short side is 1-1.6x ``size`` (area filter)."""
    height, width = photo.shape[:2]
    scale = size * rng.uniform(1.0, 1.6) / min(height, width)
    resized = cv2.resize(
        photo, (max(size, round(width * scale)), max(size, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    top = int(rng.integers(0, resized.shape[0] - size + 1))
    left = int(rng.integers(0, resized.shape[1] - size + 1))
    crop = resized[top : top + size, left : left + size]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def assign_splits(names: list[str], val: int, test: int, seed: int) -> dict[str, str]:
    """Photo name -> split, whole photos per split (test photos never appear in training)."""
    if val + test >= len(names):
        raise DatasetError(
            f"{len(names)} photos cannot give {val} validation and {test} test photos plus training ones"
        )
    order = [names[i] for i in np.random.default_rng([seed, 7]).permutation(len(names))]
    return {name: "test" if i < test else "val" if i < test + val else "train" for i, name in enumerate(order)}


def synthesize(
    photos: dict[str, Path],
    output: Path,
    per_photo: int = 16,
    size: int = 384,
    val_photos: int = 3,
    test_photos: int = 6,
    seed: int = 0,
    params: SynthParams | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write a LOLBlur-layout set ``output/{train,val,test}/{low_blur_noise,high_sharp_scaled}/<photo>/<k>.png``.

    Returns the number of pairs per split; the drawn parameters of every pair go to ``output/synth.json``.
    """
    params = params or SynthParams()
    layout = LAYOUTS["lolblur"]
    names = sorted(photos)
    splits = assign_splits(names, val_photos, test_photos, seed)
    records, counts = [], {"train": 0, "val": 0, "test": 0}
    for photo_index, name in enumerate(tqdm(names, desc="synthesizing", unit="photo", disable=not progress)):
        clean = read_image(photos[name]).rgb
        if min(clean.shape[:2]) < size:
            raise DatasetError(f"{photos[name]}: {clean.shape[1]}x{clean.shape[0]} is smaller than --size {size}")
        split = splits[name]
        for k in range(per_photo):
            rng = np.random.default_rng([seed, photo_index, k])
            low, high, record = degrade(random_crop(clean, size, rng), rng, params)
            relative = Path(name) / f"{k:03d}.png"
            for folder, image in ((layout.low, low), (layout.high, high)):
                target = output / split / folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(target, Image(rgb=image, alpha=None, bit_depth=8, grayscale=False))
            records.append({"split": split, "pair": str(relative), "source": str(photos[name]), **record})
            counts[split] += 1
    summary = {"seed": seed, "size": size, "per_photo": per_photo, "params": asdict(params), "counts": counts}
    (output / "synth.json").write_text(json.dumps({**summary, "pairs": records}, indent=1))
    return counts
