"""Honest variant comparison: cost, latency, metrics with paired bootstrap CIs, win rates, pictures.

Every variant is scored on the same images beside two baselines (the input as it is and a global
auto-exposure). Differences are taken per image against the first variant and summarized with a
paired bootstrap (resampling images), so a difference whose 95% interval contains 0 is reported as
no evidence of a difference.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from darkir.complexity import measure_complexity
from darkir.data.pairs import Pair
from darkir.eval.lpips import LPIPS
from darkir.eval.methods import Method
from darkir.eval.metrics import PSNR_CAP, Convention, prepare
from darkir.eval.paired import METRICS, Scores, evaluate, write_csv
from darkir.imageio import Image, read_image, write_image

HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "psnr_detail": True, "ssim_detail": True, "niqe": False}


@dataclass(frozen=True)
class Interval:
    """A bootstrap estimate: the observed mean and its 95% percentile interval."""

    mean: float
    low: float
    high: float

    def as_text(self, digits: int) -> str:
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def json_numbers(value: object) -> object:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``: strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_numbers(item) for item in value]
    return value


def bootstrap_mean(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean of ``values`` with a 95% percentile bootstrap interval (images resampled with replacement)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    return Interval(float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def win_rate(diff: np.ndarray, metric: str) -> float:
    """Share of images on which the compared method is strictly better (ties count half)."""
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return math.nan
    better = diff > 0 if HIGHER_IS_BETTER[metric] else diff < 0
    return float((better.sum() + 0.5 * (diff == 0).sum()) / diff.size)


def latency(method: Method, size: int, repeats: int = 3) -> float:
    """Median seconds of one forward at 3 x size x size on the method's device (after a warm-up)."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    method.run(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        method.run(x)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _histogram(path: Path, reference: Scores, others: Sequence[Scores]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=120)
    for scores in others:
        axis.hist(
            scores.array("psnr") - reference.array("psnr"),
            bins=30,
            alpha=0.6,
            label=f"{scores.method} - {reference.method}",
        )
    axis.axvline(0, color="black", linewidth=1)
    axis.set_xlabel("PSNR difference per image (dB)")
    axis.set_ylabel("images")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _grid(
    path: Path, pairs: Sequence[Pair], variants: Sequence[Method], order: list[int], convention: Convention
) -> None:
    """Rows of input | each variant | ground truth for the images at ``order`` (restored again: only these)."""
    rows = []
    for index in order:
        low = read_image(pairs[index].low).rgb
        gt = read_image(pairs[index].high).rgb
        x = torch.from_numpy(np.ascontiguousarray(low)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            outputs = [prepare(v.run(x).float().cpu(), convention)[0].clamp(0, 1) for v in variants]
        tiles = [low] + [out.permute(1, 2, 0).numpy() for out in outputs] + [gt]
        height = 192
        resized = [
            cv2.resize(t, (max(1, round(t.shape[1] * height / t.shape[0])), height), interpolation=cv2.INTER_AREA)
            for t in tiles
        ]
        rows.append(np.hstack(resized))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    write_image(path, Image(rgb=np.vstack(rows), alpha=None, bit_depth=8, grayscale=False))


def compare(
    variants: Sequence[Method],
    baselines: Sequence[Method],
    pairs: Sequence[Pair],
    output: Path,
    convention: Convention = "8bit",
    lpips: LPIPS | None = None,
    latency_size: int = 256,
    resamples: int = 2000,
    grid_images: int = 4,
    progress: bool = True,
) -> dict:
    """Score all methods on ``pairs`` and write ``report.md``, ``per_image.csv``, ``summary.json``,
    ``psnr_diff_hist.png`` and ``grid.png`` into ``output``; returns the summary."""
    output.mkdir(parents=True, exist_ok=True)
    methods = [*variants, *baselines]
    all_scores = [evaluate(method, pairs, convention, lpips, progress=progress) for method in methods]
    write_csv(output / "per_image.csv", all_scores)
    reference = all_scores[0]
    summary: dict = {
        "convention": convention,
        "images": len(pairs),
        "resamples": resamples,
        "bootstrap_seed": 0,
        "psnr_cap_db": PSNR_CAP,
        "methods": {},
    }
    for method, scores in zip(methods, all_scores, strict=True):
        entry: dict = {"mean": {m: scores.mean(m) for m in METRICS}}
        entry["ci"] = {m: vars(bootstrap_mean(scores.array(m), resamples)) for m in METRICS}
        entry["tone"] = vars(scores.tone())
        if method.restorer is not None:
            cost = measure_complexity(method.restorer.model, size=latency_size)
            entry.update(
                params=cost.params,
                macs=cost.macs,
                latency_s=latency(method, latency_size),
                device=str(method.restorer.device),
            )
        if scores is not reference:
            diffs = {m: scores.array(m) - reference.array(m) for m in METRICS}
            entry["vs_reference"] = {
                m: {**vars(bootstrap_mean(diffs[m], resamples)), "win_rate": win_rate(diffs[m], m)} for m in METRICS
            }
        summary["methods"][method.name] = entry
    (output / "summary.json").write_text(json.dumps(json_numbers(summary), indent=2, allow_nan=False))
    _histogram(output / "psnr_diff_hist.png", reference, all_scores[1 : len(variants)] or all_scores[1:])
    if len(variants) >= 2:
        gap = np.abs(all_scores[1].array("psnr") - reference.array("psnr"))
        order = [int(i) for i in np.argsort(-gap)[:grid_images]]
    else:
        order = list(range(min(grid_images, len(pairs))))
    _grid(output / "grid.png", pairs, variants, order, convention)
    (output / "report.md").write_text(
        render_report(summary, reference.method, [v.name for v in variants], latency_size, order, pairs)
    )
    return summary


def render_report(
    summary: dict, reference: str, variants: list[str], size: int, order: list[int], pairs: Sequence[Pair]
) -> str:
    """The markdown report: tables of cost and metrics, differences with CIs, and the pictures."""
    methods = summary["methods"]
    lines = [
        *_overview(summary, size),
        *_differences(methods, reference),
        *_detail_and_tone(methods),
        *_reading(methods, reference, variants),
        "",
        "![PSNR differences](psnr_diff_hist.png)",
        "",
        f"Rows: {', '.join(pairs[i].name for i in order)} (the images where the first two variants differ most). "
        f"Columns: input | {' | '.join(variants)} | ground truth.",
        "",
        "![grid](grid.png)",
        "",
    ]
    return "\n".join(lines)


def _overview(summary: dict, size: int) -> list[str]:
    """The report's title, how it was computed, and the table of cost and metrics with CIs."""
    outputs = "clamped to [0,1] and quantized to 8 bits" if summary["convention"] == "8bit" else "as raw floats"
    resampling = f"{summary['resamples']} resamples, seed {summary['bootstrap_seed']}"
    lines = [
        "# Variant comparison",
        "",
        f"{summary['images']} images; metrics on outputs {outputs}; 95% intervals from a paired bootstrap over "
        f"images ({resampling}). Per-image values are in `per_image.csv`; every number below is recomputable from it. "
        f"PSNR of an output identical to its reference counts as {summary['psnr_cap_db']:g} dB.",
        "",
        f"| method | params | GMac @{size} | latency @{size} (s) | PSNR (dB) | SSIM | LPIPS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in summary["methods"].items():
        cost = (
            f"{entry['params'] / 1e6:.2f} M | {entry['macs'] / 1e9:.2f} | {entry['latency_s']:.3f} ({entry['device']})"
            if "params" in entry
            else "- | - | -"
        )
        ci = entry["ci"]
        cells = [
            f"{ci['psnr']['mean']:.2f} [{ci['psnr']['low']:.2f}, {ci['psnr']['high']:.2f}]",
            f"{ci['ssim']['mean']:.4f} [{ci['ssim']['low']:.4f}, {ci['ssim']['high']:.4f}]",
            "n/a"
            if math.isnan(ci["lpips"]["mean"])
            else f"{ci['lpips']['mean']:.4f} [{ci['lpips']['low']:.4f}, {ci['lpips']['high']:.4f}]",
        ]
        lines.append(f"| {name} | {cost} | " + " | ".join(cells) + " |")
    return lines


def _differences(methods: dict, reference: str) -> list[str]:
    """The table of paired differences against ``reference``, with CIs and win rates."""
    lines = [
        "",
        f"## Differences against {reference} (per image, paired)",
        "",
        "| method | ΔPSNR (dB) [95% CI] | wins | ΔSSIM [95% CI] | wins | ΔLPIPS [95% CI] | wins |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in methods.items():
        if "vs_reference" not in entry:
            continue
        cells = []
        for metric, digits in (("psnr", 2), ("ssim", 4), ("lpips", 4)):
            d = entry["vs_reference"][metric]
            if math.isnan(d["mean"]):
                cells += ["n/a", "n/a"]
            else:
                cells += [Interval(d["mean"], d["low"], d["high"]).as_text(digits), f"{d['win_rate']:.0%}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _detail_and_tone(methods: dict) -> list[str]:
    """The table of detail scores (gain and gamma fitted away) and tone (brightness against the references)."""
    lines = [
        "",
        "## Detail and tone",
        "",
        "Detail: PSNR/SSIM after fitting each output's global gain and gamma to its reference (no choice of global "
        "brightness changes them). Tone: mean brightness of the outputs against the references', their ratio, and "
        "their correlation across images (does the output follow the scene?).",
        "",
        "| method | detail PSNR (dB) | detail SSIM | brightness / reference | ratio | correlation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in methods.items():
        mean, shade = entry["mean"], entry["tone"]
        corr = "n/a" if math.isnan(shade["correlation"]) else f"{shade['correlation']:.2f}"
        lines.append(
            f"| {name} | {mean['psnr_detail']:.2f} | {mean['ssim_detail']:.4f} | "
            f"{shade['output_mean']:.3f} / {shade['reference_mean']:.3f} | {shade['ratio']:.3f} | {corr} |"
        )
    return lines


def _reading(methods: dict, reference: str, variants: list[str]) -> list[str]:
    """What the numbers say: each variant against ``reference``, and against the auto-exposure baseline."""
    lines = ["", "## Reading", ""]
    for name in variants[1:]:
        d = methods[name]["vs_reference"]["psnr"]
        verdict = (
            "no evidence of a PSNR difference (the interval contains 0)"
            if d["low"] <= 0 <= d["high"]
            else ("better" if d["mean"] > 0 else "worse") + " in PSNR (the interval excludes 0)"
        )
        lines.append(f"- {name} vs {reference}: {verdict}; it wins on {d['win_rate']:.0%} of images.")
    exposure = next((n for n in methods if n.startswith("auto-exposure")), None)
    for name in variants if exposure else []:
        gap = methods[name]["mean"]["psnr"] - methods[exposure]["mean"]["psnr"]
        lines.append(f"- {name} is {gap:+.2f} dB PSNR against the {exposure} baseline.")
    return lines
