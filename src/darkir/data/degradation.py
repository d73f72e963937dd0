"""The degradation model: a clean photo into a night capture and its reference (low light, lamps, uneven light,
camera noise and shake).

Per pair, in linear light (after inverting the sRGB curve):

1. **Reference exposure.** The clean crop is scaled so that its sRGB mean is ``target_mean``. A model learns the
   brightness of its targets, so this convention is explicit. By default ``target_mean`` is uniform in
   ``target_mean_range`` (0.28-0.40, the brightness of real street-scene references), drawn apart from the
   capture's darkness (with ``target_margin``, at least the capture's mean plus that margin). With ``target_tone``
   ``(level, slope)`` the reference follows the scene as real pairs do: a darker capture has a darker reference,
   ``target_mean = level * (s / 0.1) ** slope * exp(N(0, target_jitter))``, clipped to ``target_mean_range``, where
   ``s`` is the capture's ``target_statistic``: its drawn sRGB mean ``low_mean`` (``"mean"``), or the 90th
   percentile of the finished capture's sRGB values (``"p90"``: the reference is re-exposed to ``target_mean`` at
   the end; with ``target_keep_range`` a capture that is not dark keeps its own brightness instead). Real
   references follow their captures' bright parts more closely than their means. With
   ``target_scene_slope`` above 0 the reference also keeps some of the clean photo's own brightness, a property of
   the scene rather than of the capture: ``target_mean`` is multiplied by ``(clean mean / 0.4) ** target_scene_slope``
   (the clean crop's sRGB mean; 0.4 is about the photo corpus's average), so a night or shaded scene stays darker
   than a sunny one whatever its capture's exposure.
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

:func:`degrade` makes one pair from the draws of a ``numpy.random.Generator``; :mod:`darkir.data.synth` builds the
datasets and the written sets on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError


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


#: The clean-photo sRGB mean at which ``target_scene_slope`` leaves the reference's brightness unchanged.
SCENE_PIVOT = 0.4


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
    #: How much of the clean photo's own brightness the ``target_tone`` reference keeps: the exponent of
    #: ``clean mean / 0.4`` in ``target_mean`` (0: none, the reference follows the capture alone).
    target_scene_slope: float = 0.0
    #: ``(low, high)`` sRGB means of the finished capture over which a ``target_tone`` (p90) reference gives way to the
    #: capture's own brightness: the tone's below ``low``, the capture's above ``high`` (a photo that is not dark
    #: keeps its exposure), log-linear in between; ``None``: the tone's for every capture.
    target_keep_range: tuple[float, float] | None = None
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

    #: Numbers are finite (read by pydantic in :func:`synth_params`).
    __pydantic_config__ = ConfigDict(allow_inf_nan=False)

    def __post_init__(self) -> None:
        problems = [f"{name} {value}: {why}" for name, value, why in _out_of_bounds(self)]
        if problems:
            raise ValueError("; ".join(problems))


#: Fields of :class:`SynthParams` whose values lie in (0, 1] and [1, 100], and ranges drawn log-uniformly (above 0);
#: every other range is at least 0.
_IN_UNIT = {"target_mean_range", "low_mean_range"}
_QUALITY = {"jpeg_quality_range"}
_POSITIVE = {
    "light_radius_range", "glow_range", "red_gain_range", "blue_gain_range", "photons_range", "read_noise_range",
    "kernel_size_range",
}  # fmt: skip


def _out_of_bounds(params: SynthParams) -> list[tuple[str, object, str]]:
    """``(field, value, why)`` for each probability outside [0, 1], range whose low end is above its high end, range
    outside its bounds, and scale that is not above 0."""
    found = []
    for name in params.__dataclass_fields__:
        value = getattr(params, name)
        if name.endswith("_prob") and not 0 <= value <= 1:
            found.append((name, value, "a probability is in [0, 1]"))
        if not name.endswith("_range") or value is None:
            continue
        low, high = value
        if name == "target_keep_range":
            if not 0 < low < high <= 1:
                found.append((name, value, "must be (low, high) with 0 < low < high <= 1"))
        elif low > high:
            found.append((name, value, "its low end is above its high end"))
        elif name in _IN_UNIT and not 0 < low <= high <= 1:
            found.append((name, value, "sRGB means are in (0, 1]"))
        elif name in _QUALITY and not 1 <= low <= high <= 100:
            found.append((name, value, "JPEG qualities are in [1, 100]"))
        elif low < 0 or (name in _POSITIVE and low <= 0):
            found.append((name, value, "must be above 0" if name in _POSITIVE else "must not be negative"))
    if params.cast_sigma < 0:
        found.append(("cast_sigma", params.cast_sigma, "must not be negative"))
    return found


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
        problems = "; ".join(_problem(e) for e in error.errors())
        raise ValueError(f"bad degradation parameter(s): {problems}") from None


def _problem(error: Mapping[str, Any]) -> str:
    """One validation error: ``field: why (got value)``, or the message of a check across fields."""
    if error["loc"]:
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']} (got {error['input']!r})"
    return str(error["msg"]).removeprefix("Value error, ")


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


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
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
        radius = log_uniform(rng, params.light_radius_range)
        colour = LAMP_COLOURS[rng.integers(len(LAMP_COLOURS))]
        cores += _gaussian_spot(shape, center, radius)[..., None] * colour
        glow = _gaussian_spot(shape, center, radius * rng.uniform(4, 12))
        glows += log_uniform(rng, params.glow_range) * glow[..., None] * colour
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
    gains = np.array([log_uniform(rng, params.red_gain_range), 1.0, log_uniform(rng, params.blue_gain_range)])
    raw = linear / gains.astype(np.float32)
    photons = log_uniform(rng, params.photons_range)
    read_noise = log_uniform(rng, params.read_noise_range)
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
    linear = srgb_to_linear(clean_srgb)
    scene_mean = float(clean_srgb.mean())
    target_mean, low_mean = _brightness(rng, params, scene_mean)
    scene = linear * exposure_for_mean(linear, target_mean)
    record: dict[str, object] = {"target_mean": round(float(target_mean), 4)}
    camera = _camera(clean_srgb.shape[:2], rng, params, record)
    captured = camera.capture(scene)
    gain = exposure_for_mean(captured, low_mean)
    if rng.random() < params.light_prob:
        cores, glows = light_sources(clean_srgb.shape[:2], rng, params)
        scene = scene + glows + cores * rng.uniform(1.5, 4.0) / gain
        captured = camera.capture(scene)
        record["lights"] = True
    high = _reference(scene, camera.field, rng, params, record)
    low = _low_light_capture(captured * gain, rng, params, record)
    record["low_mean"] = round(low_mean, 4)
    if params.target_tone is not None and params.target_statistic == "p90":
        target_mean = _toned_mean(float(np.percentile(low, 90)), scene_mean, rng, params)
        target_mean = _kept(target_mean, float(low.mean()), params)
        reference = srgb_to_linear(high)
        high = linear_to_srgb(reference * exposure_for_mean(reference, target_mean))
        record["target_mean"] = round(target_mean, 4)
    return low, high, record


def _brightness(rng: np.random.Generator, params: SynthParams, scene_mean: float) -> tuple[float, float]:
    """(the reference's sRGB mean, the capture's drawn sRGB mean) under the tone convention (step 1), for a clean
    crop of sRGB mean ``scene_mean``."""
    target_mean = rng.uniform(*params.target_mean_range)
    low_mean = log_uniform(rng, params.low_mean_range)
    if params.target_tone is not None and params.target_statistic == "mean":
        target_mean = _toned_mean(low_mean, scene_mean, rng, params)
    if params.target_margin is not None:
        target_mean = max(target_mean, low_mean + params.target_margin)
    return target_mean, low_mean


@dataclass(frozen=True)
class _Camera:
    """How the capture sees the scene: a shake kernel and an illumination field, each maybe absent."""

    kernel: np.ndarray | None
    field: np.ndarray | None

    def capture(self, radiance: np.ndarray) -> np.ndarray:
        blurred = radiance
        if self.kernel is not None:
            blurred = cv2.filter2D(radiance, -1, self.kernel, borderType=cv2.BORDER_REFLECT)
        return blurred * self.field if self.field is not None else blurred


def _camera(shape: tuple[int, int], rng: np.random.Generator, params: SynthParams, record: dict) -> _Camera:
    """Draw the camera shake and the uneven illumination (step 3)."""
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
    return _Camera(kernel, field)


def _reference(
    scene: np.ndarray, field: np.ndarray | None, rng: np.random.Generator, params: SynthParams, record: dict
) -> np.ndarray:
    """The sRGB reference: the scene, keeping a drawn share of the illumination field (step 3)."""
    if field is None or params.reference_shading_range[1] <= 0:
        return linear_to_srgb(scene)
    kept = rng.uniform(*params.reference_shading_range)
    shading = field**kept
    record["reference_shading"] = round(float(kept), 3)
    return linear_to_srgb(scene * (shading / shading.mean()))


def _low_light_capture(dark: np.ndarray, rng: np.random.Generator, params: SynthParams, record: dict) -> np.ndarray:
    """The sRGB capture of the darkened scene: colour cast, camera noise, 8 bits, maybe JPEG (steps 3-5)."""
    if rng.random() < params.cast_prob:
        cast = np.exp(rng.normal(0, params.cast_sigma, 3)).astype(np.float32)
        dark = dark * (cast / cast[1])
        record["cast"] = [round(float(c), 3) for c in cast / cast[1]]
    low = linear_to_srgb(sensor_noise(dark, rng, params, record))
    low = np.rint(low * 255).astype(np.float32) / 255
    if rng.random() < params.jpeg_prob:
        quality = int(rng.integers(params.jpeg_quality_range[0], params.jpeg_quality_range[1] + 1))
        _, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(np.rint(low * 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, quality],
        )
        low = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        record["jpeg_quality"] = quality
    return low


def _kept(target_mean: float, capture_mean: float, params: SynthParams) -> float:
    """``target_mean`` giving way to the capture's own sRGB mean ``capture_mean`` across ``target_keep_range``."""
    if params.target_keep_range is None:
        return target_mean
    low, high = np.log(params.target_keep_range)
    capture = np.log(max(capture_mean, 1e-4))
    weight = float(np.clip((capture - low) / (high - low), 0.0, 1.0))
    return float(np.exp((1 - weight) * np.log(target_mean) + weight * capture))


def _toned_mean(statistic: float, scene_mean: float, rng: np.random.Generator, params: SynthParams) -> float:
    """The reference's sRGB mean under ``target_tone`` for a capture whose ``target_statistic`` is ``statistic``, of a
    clean crop whose sRGB mean is ``scene_mean``."""
    assert params.target_tone is not None
    level, slope = params.target_tone
    jitter = np.exp(rng.normal(0, params.target_jitter)) if params.target_jitter > 0 else 1.0
    scene = (max(scene_mean, 1e-3) / SCENE_PIVOT) ** params.target_scene_slope
    return float(np.clip(level * (statistic / 0.1) ** slope * scene * jitter, *params.target_mean_range))
