"""Synthesis of night captures from clean photos: low light, lamps, uneven light, camera noise and shake.

Per pair, in linear light (after inverting the sRGB curve):

1. **Reference exposure.** The clean crop is scaled so that its sRGB mean is ``target_mean``. A model learns the
   brightness of its targets, so this convention is explicit. By default ``target_mean`` is uniform in
   ``target_mean_range`` (0.28-0.40, the brightness of real street-scene references), drawn apart from the
   capture's darkness (with ``target_margin``, at least the capture's mean plus that margin). With ``target_tone``
   ``(level, slope)`` the reference follows the scene as real pairs do: a darker capture has a darker reference,
   ``target_mean = level * (s / 0.1) ** slope * exp(N(0, target_jitter))``, clipped to ``target_mean_range``, where
   ``s`` is the capture's ``target_statistic``: its drawn sRGB mean ``low_mean`` (``"mean"``), or the 90th
   percentile of the finished capture's sRGB values (``"p90"``: the reference is re-exposed to ``target_mean`` at
   the end). Real references follow their captures' bright parts more closely than their means.
2. **Lamps.** With probability ``light_prob``, 1-6 light sources (Gaussian cores in lamp colours, bright
   enough to stay saturated in the dark capture, with wide dim glows) are added to the scene; the reference
   shows them clipped, as a normal exposure does.
3. **Capture.** The scene is blurred by a random camera-shake kernel (probability ``blur_prob``; lamps leave
   trails), shaded by a smooth uneven illumination with falloff (probability ``falloff_prob``), darkened so
   that its sRGB mean is ``low_mean`` (log-uniform in ``low_mean_range``: near-black to dim), and colour-cast
   (probability ``cast_prob``: lamp colour and white-balance error). The reference keeps the fraction
   ``reference_shading`` (uniform in ``reference_shading_range``; default none) of the uneven illumination in log
   terms: a real reference is lit by the same lamps, and a model taught to flatten all shading washes scenes out.
4. **Camera pipeline.** White balance is undone to raw, the raw image is Bayer-sampled (probability
   ``bayer_prob``), shot noise (``photons`` electrons for a linear value of 1) and read noise are added,
   and it is demosaiced and white-balanced again.
5. **Output.** Clipping, the sRGB curve, 8-bit quantization, and JPEG with probability ``jpeg_prob``.

:func:`synthesize` writes a fixed set (draws from ``numpy.random.default_rng([seed, photo, crop])``);
:class:`SynthDataset` makes a fresh pair for every sample and epoch (``[seed, epoch, index]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import TypeAdapter, ValidationError
from torch.utils.data import Dataset
from tqdm import tqdm

from darkir.data.dataset import to_tensor
from darkir.data.layouts import LAYOUTS, DatasetError
from darkir.imageio import Image, read_image, write_image


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Invert the sRGB transfer curve."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Apply the sRGB transfer curve to values in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def exposure_for_mean(linear: np.ndarray, target: float) -> float:
    """The gain ``k`` such that ``mean(srgb(clip(k * linear)))`` equals ``target`` (bisection on every fourth pixel of
    each axis)."""
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
    """Ranges of the degradation model (see the module docstring); every draw is uniform or log-uniform."""

    target_mean_range: tuple[float, float] = (0.28, 0.40)
    low_mean_range: tuple[float, float] = (0.015, 0.20)
    #: With a capture brighter than usual (``low_mean_range`` reaching into dim-but-visible), the reference is made at
    #: least this much brighter than the capture's mean (sRGB); ``None`` leaves ``target_mean`` as drawn.
    target_margin: float | None = None
    #: ``(level, slope)``: the reference's sRGB mean is ``level`` for a capture of sRGB mean 0.1 and scales as the
    #: capture's mean to the power ``slope`` (clipped to ``target_mean_range``); ``None``: drawn apart from it.
    target_tone: tuple[float, float] | None = None
    #: Standard deviation of a log-normal factor on the ``target_tone`` brightness (drawn only when above 0).
    target_jitter: float = 0.0
    #: What of the capture ``target_tone`` follows: ``"mean"`` (its drawn sRGB mean) or ``"p90"`` (the 90th percentile
    #: of the finished capture's sRGB values).
    target_statistic: Literal["mean", "p90"] = "mean"
    blur_prob: float = 0.85
    kernel_size_range: tuple[int, int] = (5, 25)
    light_prob: float = 0.4
    lights_range: tuple[int, int] = (1, 6)
    light_radius_range: tuple[float, float] = (0.8, 6.0)
    glow_range: tuple[float, float] = (0.02, 0.4)
    falloff_prob: float = 0.6
    falloff_strength_range: tuple[float, float] = (0.2, 1.2)
    #: Exponent of the illumination field kept in the reference (0: flat, the capture's shading is undone; 1: the
    #: reference is shaded as the capture). Drawn only when the upper bound is above 0, so the default draws nothing.
    reference_shading_range: tuple[float, float] = (0.0, 0.0)
    cast_prob: float = 0.5
    cast_sigma: float = 0.15
    red_gain_range: tuple[float, float] = (1.5, 2.4)
    blue_gain_range: tuple[float, float] = (1.3, 2.2)
    bayer_prob: float = 0.7
    photons_range: tuple[float, float] = (400.0, 10000.0)
    read_noise_range: tuple[float, float] = (1e-4, 4e-3)
    jpeg_prob: float = 0.3
    jpeg_quality_range: tuple[int, int] = (70, 95)


def synth_params(overrides: Mapping[str, Any]) -> SynthParams:
    """:class:`SynthParams` with ``overrides`` of some fields. Values get their fields' types (``1e-4``, a string to
    YAML 1.1, is a float); unknown names and wrong types raise a ValueError that names them."""
    known = set(SynthParams.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown degradation parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return TypeAdapter(SynthParams).validate_python(dict(overrides))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})" for e in error.errors())
        raise ValueError(f"bad degradation parameter(s): {problems}") from None


#: Linear RGB colours of common night light sources: sodium, warm white, neutral, cool LED, red, green, blue neon.
LAMP_COLOURS = np.array(
    [
        [1.0, 0.45, 0.12],
        [1.0, 0.72, 0.45],
        [1.0, 0.95, 0.9],
        [0.8, 0.9, 1.0],
        [1.0, 0.15, 0.1],
        [0.2, 1.0, 0.35],
        [0.25, 0.4, 1.0],
    ],
    np.float32,
)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _gaussian_spot(shape: tuple[int, int], center: np.ndarray, radius: float) -> np.ndarray:
    ys, xs = np.ogrid[: shape[0], : shape[1]]
    return np.exp(-(((ys - center[0]) ** 2 + (xs - center[1]) ** 2) / (2 * radius**2))).astype(np.float32)


def light_sources(
    shape: tuple[int, int], rng: np.random.Generator, params: SynthParams
) -> tuple[np.ndarray, np.ndarray]:
    """(cores, glows): lamps as saturating Gaussian cores and their wide, dim halos, in linear RGB."""
    cores = np.zeros((*shape, 3), np.float32)
    glows = np.zeros((*shape, 3), np.float32)
    for _ in range(int(rng.integers(params.lights_range[0], params.lights_range[1] + 1))):
        center = rng.uniform(0, 1, 2) * np.array(shape)
        radius = _log_uniform(rng, params.light_radius_range)
        colour = LAMP_COLOURS[rng.integers(len(LAMP_COLOURS))]
        cores += _gaussian_spot(shape, center, radius)[..., None] * colour
        glow = _gaussian_spot(shape, center, radius * rng.uniform(4, 12))
        glows += _log_uniform(rng, params.glow_range) * glow[..., None] * colour
    return cores, glows


def illumination_field(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth positive gain map of mean 1: random low-frequency shading times a vignette-like falloff."""
    coarse = rng.normal(size=(3, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.ogrid[: shape[0], : shape[1]]
    center = rng.uniform(0, 1, 2) * np.array(shape)
    radial = ((ys - center[0]) ** 2 + (xs - center[1]) ** 2) / float(max(shape) ** 2)
    field = np.exp(strength * (0.5 * smooth - 2.0 * radial)).astype(np.float32)
    return field / field.mean()


def sensor_noise(linear: np.ndarray, rng: np.random.Generator, params: SynthParams, record: dict) -> np.ndarray:
    """Camera-pipeline noise: undo white balance to raw, Bayer-sample, add shot + read noise, demosaic, rebalance."""
    gains = np.array([_log_uniform(rng, params.red_gain_range), 1.0, _log_uniform(rng, params.blue_gain_range)])
    raw = linear / gains.astype(np.float32)
    photons = _log_uniform(rng, params.photons_range)
    read_noise = _log_uniform(rng, params.read_noise_range)
    bayer = rng.random() < params.bayer_prob
    if bayer:
        height, width = raw.shape[:2]
        mosaic = np.empty((height, width), np.float32)
        mosaic[0::2, 0::2] = raw[0::2, 0::2, 0]
        mosaic[0::2, 1::2] = raw[0::2, 1::2, 1]
        mosaic[1::2, 0::2] = raw[1::2, 0::2, 1]
        mosaic[1::2, 1::2] = raw[1::2, 1::2, 2]
        raw = mosaic
    noisy = rng.poisson(np.clip(raw, 0, None) * photons) / photons + rng.normal(0, read_noise, raw.shape)
    if bayer:
        black = 1 / 16
        coded = np.rint(np.clip((noisy + black) / (1 + black), 0, 1) * 65535).astype(np.uint16)
        rgb = cv2.cvtColor(coded, cv2.COLOR_BayerBG2RGB).astype(np.float32) / 65535
        noisy = rgb * (1 + black) - black
    record.update(photons=round(photons, 1), read_noise=round(read_noise, 6), bayer=bool(bayer))
    return (noisy * gains).astype(np.float32)


def degrade(
    clean_srgb: np.ndarray, rng: np.random.Generator, params: SynthParams
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(low, high, drawn values) from a clean sRGB float image in [0, 1]: a night capture and its reference."""
    shape = clean_srgb.shape[:2]
    linear = srgb_to_linear(clean_srgb)
    target_mean = rng.uniform(*params.target_mean_range)
    low_mean = _log_uniform(rng, params.low_mean_range)
    if params.target_tone is not None and params.target_statistic == "mean":
        target_mean = _toned_mean(low_mean, rng, params)
    if params.target_margin is not None:
        target_mean = max(target_mean, low_mean + params.target_margin)
    scene = linear * exposure_for_mean(linear, target_mean)
    record: dict[str, object] = {"target_mean": round(float(target_mean), 4)}
    kernel = None
    if rng.random() < params.blur_prob:
        size = int(rng.integers(params.kernel_size_range[0] // 2, params.kernel_size_range[1] // 2 + 1)) * 2 + 1
        kernel = shake_kernel(rng, size)
        record["kernel_size"] = size
    field = None
    if rng.random() < params.falloff_prob:
        strength = rng.uniform(*params.falloff_strength_range)
        field = illumination_field(shape, rng, strength)[..., None]
        record["falloff"] = round(float(strength), 3)

    def capture(radiance: np.ndarray) -> np.ndarray:
        blurred = cv2.filter2D(radiance, -1, kernel, borderType=cv2.BORDER_REFLECT) if kernel is not None else radiance
        return blurred * field if field is not None else blurred

    captured = capture(scene)
    gain = exposure_for_mean(captured, low_mean)
    if rng.random() < params.light_prob:
        cores, glows = light_sources(shape, rng, params)
        scene = scene + glows + cores * rng.uniform(1.5, 4.0) / gain
        captured = capture(scene)
        record["lights"] = True
    if field is not None and params.reference_shading_range[1] > 0:
        kept = rng.uniform(*params.reference_shading_range)
        shading = field**kept
        high = linear_to_srgb(scene * (shading / shading.mean()))
        record["reference_shading"] = round(float(kept), 3)
    else:
        high = linear_to_srgb(scene)
    dark = captured * gain
    if rng.random() < params.cast_prob:
        cast = np.exp(rng.normal(0, params.cast_sigma, 3)).astype(np.float32)
        dark = dark * (cast / cast[1])
        record["cast"] = [round(float(c), 3) for c in cast / cast[1]]
    low = linear_to_srgb(sensor_noise(dark, rng, params, record))
    low = np.rint(low * 255).astype(np.float32) / 255
    record["low_mean"] = round(low_mean, 4)
    if rng.random() < params.jpeg_prob:
        quality = int(rng.integers(params.jpeg_quality_range[0], params.jpeg_quality_range[1] + 1))
        _, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(np.rint(low * 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, quality],
        )
        low = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        record["jpeg_quality"] = quality
    if params.target_tone is not None and params.target_statistic == "p90":
        target_mean = _toned_mean(float(np.percentile(low, 90)), rng, params)
        reference = srgb_to_linear(high)
        high = linear_to_srgb(reference * exposure_for_mean(reference, target_mean))
        record["target_mean"] = round(target_mean, 4)
    return low, high, record


def _toned_mean(statistic: float, rng: np.random.Generator, params: SynthParams) -> float:
    """The reference's sRGB mean under ``target_tone`` for a capture whose ``target_statistic`` is ``statistic``."""
    assert params.target_tone is not None
    level, slope = params.target_tone
    jitter = np.exp(rng.normal(0, params.target_jitter)) if params.target_jitter > 0 else 1.0
    return float(np.clip(level * (statistic / 0.1) ** slope * jitter, *params.target_mean_range))


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


def load_photos(paths: Sequence[Path], max_short_side: int = 1024) -> list[np.ndarray]:
    """Decode clean photos to uint8 RGB, downscaled (area filter) so their short side is at most ``max_short_side``."""
    photos = []
    for path in paths:
        rgb = np.rint(read_image(path).rgb * 255).astype(np.uint8)
        scale = max_short_side / min(rgb.shape[:2])
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        photos.append(rgb)
    return photos


def sample_crop(photo: np.ndarray, size: int, rng: np.random.Generator, max_zoom_out: float) -> np.ndarray:
    """A random ``size`` square seeing ``size``-``size * max_zoom_out`` source pixels (log-uniform), maybe mirrored."""
    short = min(photo.shape[:2])
    if short < size:
        raise DatasetError(f"a {photo.shape[1]}x{photo.shape[0]} photo is smaller than the crop size {size}")
    window = min(short, round(size * _log_uniform(rng, (1.0, max(max_zoom_out, 1.0 + 1e-6)))))
    top = int(rng.integers(0, photo.shape[0] - window + 1))
    left = int(rng.integers(0, photo.shape[1] - window + 1))
    crop = photo[top : top + window, left : left + window]
    if window != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    crop = crop[:, ::-1] if rng.random() < 0.5 else crop
    return crop.astype(np.float32) / 255


class SynthDataset(Dataset):
    """Pairs degraded on the fly from clean photos: a fresh degradation per sample and epoch.

    Sample ``index`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, index])``, so it is
    the same whichever worker or process makes it (exact resume, multi-process runs). With
    ``fixed=True`` every epoch gives the same samples (a validation set).
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        names: Sequence[str],
        length: int,
        crop: int,
        seed: int = 0,
        params: SynthParams | None = None,
        max_zoom_out: float = 4.0,
        fixed: bool = False,
    ) -> None:
        if not photos:
            raise DatasetError("no clean photos to synthesize pairs from")
        self.photos, self.names, self.length, self.crop = list(photos), list(names), length, crop
        self.seed, self.params, self.max_zoom_out, self.fixed = seed, params or SynthParams(), max_zoom_out, fixed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the draws of ``epoch`` (ignored for a fixed set)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, object]:
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, index])
        which = int(rng.integers(len(self.photos)))
        clean = sample_crop(self.photos[which], self.crop, rng, self.max_zoom_out)
        low, high, _ = degrade(clean, rng, self.params)
        return {"low": to_tensor(low), "high": to_tensor(high), "name": f"{self.names[which]}/{index:06d}"}
