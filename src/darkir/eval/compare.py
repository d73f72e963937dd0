"""Honest variant comparison: cost, latency, metrics with paired bootstrap CIs, win rates, pictures.

Every variant is scored on the same images beside baselines (the input as it is, a global auto-exposure, CLAHE).
Differences are taken per image against the first variant and summarized with a paired bootstrap (resampling
images), so a difference whose 95% interval contains 0 is reported as no evidence of a difference. Images without a
value (SSIM under 11 pixels a side, NIQE under 96x96) are left out of a mean, which then says how many images it
covers, and out of every paired difference that involves them; fewer than
:data:`~darkir.eval.stats.MIN_INTERVAL_IMAGES` images give a mean without interval, win rate or verdict
(:mod:`darkir.eval.stats`); the report files are written as :mod:`darkir.eval.reports` says.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from darkir.complexity import Complexity, measure_complexity
from darkir.data.pairs import Pair
from darkir.errors import DarkIRError, first_line
from darkir.eval.lpips import LPIPS
from darkir.eval.methods import Method
from darkir.eval.metrics import PSNR_CAP, Convention, format_number, prepare
from darkir.eval.paired import METRICS, Scores, evaluate, score_rows
from darkir.eval.reports import (
    TOO_FEW_NOTE,
    count_note,
    csv_bytes,
    json_numbers,
    plural,
    replace_report,
    sources_note,
    text_bytes,
    unique_names,
)
from darkir.eval.stats import MIN_INTERVAL_IMAGES, Interval, bootstrap_mean, paired
from darkir.imageio import Image, encode_image, read_image

#: Timed calls of each model, after one warm-up (:func:`latencies`).
LATENCY_REPEATS = 5


def latencies(methods: Sequence[Method], size: int, repeats: int = LATENCY_REPEATS) -> list[tuple[float, float, float]]:
    """(median, fastest, slowest) seconds of ``repeats`` calls of each method's Restorer on one 3 x size x size input
    (its checks and copies included; on a GPU the transfers too), on its device, after a warm-up of each. The calls
    go round the methods, one of each per round, so that a change in the machine's load falls on all of them alike
    (timed in turn, one model's runs differed by 0.2-0.35 s on a shared 2-core machine)."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    for method in methods:
        with _measuring(method, size):
            method.run(x)
    times: list[list[float]] = [[] for _ in methods]
    for _ in range(repeats):
        for method, own in zip(methods, times, strict=True):
            with _measuring(method, size):
                start = time.perf_counter()
                method.run(x)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                own.append(time.perf_counter() - start)
    return [(statistics.median(own), min(own), max(own)) for own in times]


@contextlib.contextmanager
def _measuring(method: Method, size: int) -> Iterator[None]:
    """Errors of measuring ``method`` at 3 x ``size`` x ``size`` as DarkIRErrors that name it (and ``--size`` where
    the input is too large to allocate)."""
    try:
        yield
    except DarkIRError as exc:  # broken weights (a NaN output), named with their method
        raise DarkIRError(f"{method.name}: {exc}") from None
    except (RuntimeError, MemoryError) as exc:  # an input too large to allocate
        raise DarkIRError(f"--size {size}: cannot measure {method.name} at this size ({first_line(exc)})") from None


def _histogram(differences: Sequence[tuple[Scores, Scores]]) -> bytes:
    """A PNG of the histograms of the per-image PSNR differences ``a - b`` of each pair ``(a, b)``, on shared bins
    (images without a difference left out; a pair without any is not drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=120)
    differences_of = {f"{a.method} - {b.method}": a.array("psnr") - b.array("psnr") for a, b in differences}
    drawn = {label: diff[np.isfinite(diff)] for label, diff in differences_of.items() if np.isfinite(diff).any()}
    if drawn:  # one set of bins: a method whose differences spread little is not drawn as one thin bar
        bins = np.histogram_bin_edges(np.concatenate(list(drawn.values())), bins=30)
        for label, diff in drawn.items():
            axis.hist(diff, bins=bins, alpha=0.6, label=label)
    axis.axvline(0, color="black", linewidth=1)
    axis.set_xlabel("PSNR difference per image (dB)")
    axis.set_ylabel("images")
    if drawn:
        axis.legend(fontsize=8)
    else:
        axis.text(0.5, 0.5, "no image has a PSNR difference", transform=axis.transAxes, ha="center")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


#: The box (height, width) each picture of the grid is scaled to fit: 192 px high, unless it is over twice as wide as
#: high (a 2x3000 strip made a grid 864000 px wide, and ~20 GB of memory went to drawing it).
_PANEL = (192, 384)


def _panel(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to fit :data:`_PANEL` (aspect kept), padded with black below to its height."""
    scale = min(_PANEL[0] / image.shape[0], _PANEL[1] / image.shape[1])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.pad(resized, ((0, _PANEL[0] - resized.shape[0]), (0, 0), (0, 0)))


def _grid(pairs: Sequence[Pair], variants: Sequence[Method], order: list[int], convention: Convention) -> Image:
    """Rows of input | each variant | ground truth for the images at ``order`` (restored again: only these)."""
    rows = []
    for index in order:
        low = read_image(pairs[index].low).rgb
        gt = read_image(pairs[index].high).rgb
        x = torch.from_numpy(np.ascontiguousarray(low)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            outputs = [prepare(v.run(x).float().cpu(), convention)[0].clamp(0, 1) for v in variants]
        tiles = [low] + [out.permute(1, 2, 0).numpy() for out in outputs] + [gt]
        rows.append(np.hstack([_panel(tile) for tile in tiles]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    return Image(rgb=np.vstack(rows), alpha=None, bit_depth=8, grayscale=False)


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
    latency_runs: int = LATENCY_REPEATS,
) -> dict:
    """Score all methods on ``pairs`` and write ``summary.json`` (it marks the folder as a report, see
    :func:`check_report_folder`), ``per_image.csv``, ``psnr_diff_hist.png``, ``grid.png`` and ``report.md`` into
    ``output`` in place of an earlier report (:func:`replace_report`); returns the summary. Every method needs its
    own name."""
    unique_names([*variants, *baselines])
    methods = [*variants, *baselines]
    costs = model_costs(methods, latency_size, latency_runs)  # first: a size too large fails before any scoring
    output.mkdir(parents=True, exist_ok=True)
    all_scores = [evaluate(method, pairs, convention, lpips, progress=progress) for method in methods]
    reference, baseline_scores = all_scores[0], all_scores[len(variants) :]
    summary = _summary(methods, len(variants), all_scores, costs, (convention, len(pairs), resamples))
    if len(variants) >= 2:
        gap = np.abs(all_scores[1].array("psnr") - reference.array("psnr"))
        order = [int(i) for i in np.argsort(-gap)[:grid_images]]
    else:
        order = list(range(min(grid_images, len(pairs))))
    grid = _grid(pairs, variants, order, convention)
    if len(variants) >= 2:  # as the report's differences: each variant against the first ...
        histogram = _histogram([(scores, reference) for scores in all_scores[1 : len(variants)]])
    else:  # ... or the one variant against each baseline, as its reading does
        histogram = _histogram([(reference, scores) for scores in baseline_scores])
    report = render_report(summary, reference.method, [v.name for v in variants], latency_size, order, pairs)
    files = {
        "summary.json": text_bytes(json.dumps(json_numbers(summary), indent=2, allow_nan=False)),
        "per_image.csv": csv_bytes(score_rows(all_scores)),
        "psnr_diff_hist.png": histogram,
        "grid.png": encode_image(".png", grid),
        "report.md": text_bytes(report),
    }
    replace_report(output, files)
    return summary


def _summary(
    methods: Sequence[Method],
    variants: int,
    all_scores: list[Scores],
    costs: list[dict],
    settings: tuple[str, int, int],
) -> dict:
    """The summary of a comparison of ``methods`` (the first ``variants`` of them variants, the rest baselines),
    scored as ``all_scores``: the ``settings`` (convention, images, resamples), and each method's means, intervals,
    costs and paired differences (against the first variant; a variant's PSNR against each baseline too)."""
    reference, baseline_scores = all_scores[0], all_scores[variants:]
    convention, images, resamples = settings
    summary: dict = {
        "convention": convention,
        "images": images,
        "resamples": resamples,
        "bootstrap_seed": 0,
        "min_interval_images": MIN_INTERVAL_IMAGES,
        "psnr_cap_db": PSNR_CAP,
        "methods": {},
    }
    for index, (method, scores, cost) in enumerate(zip(methods, all_scores, costs, strict=True)):
        entry = {**_entry(scores, resamples), **cost, **({"source": method.source} if method.source else {})}
        if index > 0:
            entry["vs_reference"] = {m: paired(scores.array(m) - reference.array(m), m, resamples) for m in METRICS}
        if index < variants:
            entry["psnr_vs_baselines"] = {
                b.method: paired(scores.array("psnr") - b.array("psnr"), "psnr", resamples) for b in baseline_scores
            }
        summary["methods"][method.name] = entry
    return summary


def _entry(scores: Scores, resamples: int) -> dict:
    """A method's summary entry: means, intervals (with the count of images that have a value) and tone."""
    entry: dict = {"mean": {m: scores.mean(m) for m in METRICS}}
    entry["ci"] = {m: vars(bootstrap_mean(scores.array(m), resamples)) for m in METRICS}
    entry["tone"] = vars(scores.tone())
    return entry


def model_costs(methods: Sequence[Method], size: int, runs: int = LATENCY_REPEATS) -> list[dict]:
    """Each model's parameters, multiply-accumulates and latency (of ``runs`` calls) at 3 x ``size`` x ``size``
    (nothing for a method without a model); a DarkIRError naming ``--size`` where a model cannot run at that size."""
    models = [method for method in methods if method.restorer is not None]
    complexities = {}
    for method in models:
        with _measuring(method, size):
            complexities[method.name] = measure_complexity(method.restorer.model, size=size)
    timings = dict(zip((method.name for method in models), latencies(models, size, runs), strict=True))
    return [
        _cost(method, complexities[method.name], timings[method.name], runs) if method.restorer is not None else {}
        for method in methods
    ]


def _cost(method: Method, complexity: Complexity, timing: tuple[float, float, float], runs: int) -> dict:
    """A model's summary entry of cost: its ``complexity``, the (median, fastest, slowest) seconds of ``timing``
    over ``runs`` calls, and how it ran."""
    seconds, fastest, slowest = timing
    return {
        "params": complexity.params,
        "macs": complexity.macs,
        "latency_s": seconds,
        "latency_range_s": [fastest, slowest],
        "latency_runs": runs,
        "device": str(method.restorer.device),
        "precision": str(method.restorer.dtype).removeprefix("torch."),
        "tile": method.restorer.tile,
        "threads": torch.get_num_threads(),
    }


def cost_cells(entry: dict) -> str:
    """A report table's cells of a method's cost (:func:`model_costs`): params, GMac and latency with its fastest and
    slowest, or dashes for a method without a model."""
    if "params" not in entry:
        return "- | - | -"
    fastest, slowest = entry["latency_range_s"]
    return (
        f"{entry['params'] / 1e6:.2f} M | {entry['macs'] / 1e9:.2f} | {entry['latency_s']:.3f} "
        f"[{fastest:.3f}, {slowest:.3f}] ({entry['device']})"
    )


def method_line(name: str, entry: dict, total: int) -> str:
    """One line of a method's means (with how many of ``total`` images have a value where not all have one)."""
    ci, shade = entry["ci"], entry["tone"]

    def mean(metric: str, digits: int, unit: str = "") -> str:
        value = ci[metric]["mean"]
        return format_number(value, f".{digits}f") + unit + count_note(ci[metric]["images"], total)

    corr = format_number(shade["correlation"], ".2f")
    return (
        f"{name}: PSNR {mean('psnr', 2, ' dB')}, SSIM {mean('ssim', 4)}; detail {mean('psnr_detail', 2, ' dB')}, "
        f"{mean('ssim_detail', 4)}; brightness ratio {format_number(shade['ratio'], '.3f')}, correlation {corr}"
    )


def render_report(
    summary: dict, reference: str, variants: list[str], size: int, order: list[int], pairs: Sequence[Pair]
) -> str:
    """The markdown report: tables of cost and metrics, differences with CIs, and the pictures."""
    methods, total = summary["methods"], summary["images"]
    rows = ", ".join(pairs[i].name for i in order)
    chosen = (
        f"the images where {variants[0]} and {variants[1]} differ most in PSNR"
        if len(variants) >= 2
        else f"the first {len(order)} images"
    )
    lines = [
        *_overview(summary, size),
        *_differences(methods, reference, total),
        *_detail_and_tone(methods, total),
        *_reading(methods, reference, variants, total),
        "",
        "![PSNR differences](psnr_diff_hist.png)",
        "",
        f"Rows: {rows} ({chosen}). Columns: input | {' | '.join(variants)} | ground truth (each picture scaled to "
        f"{_PANEL[0]} px high, or {_PANEL[1]} px wide where it is wider than that).",
        "",
        "![grid](grid.png)",
        "",
    ]
    return "\n".join(lines)


def _too_few(methods: dict) -> bool:
    """Whether some mean or difference of the report has a value but too few images for an interval."""
    intervals = [
        interval
        for entry in methods.values()
        for group in (entry["ci"], entry.get("vs_reference", {}), entry.get("psnr_vs_baselines", {}))
        for interval in group.values()
    ]
    return any(0 < interval["images"] < MIN_INTERVAL_IMAGES for interval in intervals)


def timing_note(methods: dict, size: int) -> list[str]:
    """The report's line on how the models ran and were timed (where a method has a model)."""
    runs: dict[str, list[str]] = {}
    for name, e in methods.items():
        if "params" in e:
            how = f"on {e['device']} in {e['precision']}, tile {e['tile']}, {e['threads']} thread"
            runs.setdefault(how + "s" * (e["threads"] != 1), []).append(name)
    if not runs:
        return []
    calls = next(e["latency_runs"] for e in methods.values() if "params" in e)
    ran = (
        f"Models ran {next(iter(runs))}"
        if len(runs) == 1
        else "; ".join(f"{', '.join(names)} ran {how}" for how, names in runs.items())
    )
    return [
        "",
        f"{ran}. Latency: the median of {calls} calls on one 3x{size}x{size} input "
        "after a warm-up (checks and copies included; the fastest and slowest in brackets), the models' calls taken "
        "in rounds, one of each per round: compare it across models of one report, on a quiet machine.",
    ]


def _overview(summary: dict, size: int) -> list[str]:
    """The report's title, how it was computed, and the table of cost and metrics with CIs."""
    outputs = (
        "clamped to [0,1] and quantized to 8 bits (16 for 16-bit inputs)"
        if summary["convention"] == "8bit"
        else "as raw floats"
    )
    resampling = f"{summary['resamples']} resamples, seed {summary['bootstrap_seed']}"
    total = summary["images"]
    lines = [
        "# Variant comparison",
        "",
        f"{plural(total)}; metrics on outputs {outputs}; 95% intervals from a paired bootstrap over images "
        f"({resampling}), widened for few images (docs/evaluation.md). Per-image values are in `per_image.csv`; "
        "every score below is recomputable from it (params, MACs and latency are not scores). PSNR of an output "
        f"identical to its reference counts as {summary['psnr_cap_db']:g} dB. A mean or difference over only some "
        "of the images (the others have no value) says how many it covers.",
        *_too_few_note(summary["methods"]),
        *timing_note(summary["methods"], size),
        "",
        f"| method | params | GMac @{size} | latency @{size} (s) | PSNR (dB) | SSIM | LPIPS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in summary["methods"].items():
        cost = cost_cells(entry)
        cells = [
            Interval.of(entry["ci"][metric]).as_text(digits, signed=False)
            + count_note(entry["ci"][metric]["images"], total)
            for metric, digits in (("psnr", 2), ("ssim", 4), ("lpips", 4))
        ]
        lines.append(f"| {name} | {cost} | " + " | ".join(cells) + " |")
    return [*lines, *sources_note(summary["methods"])]


def _too_few_note(methods: dict) -> list[str]:
    """The report's line on missing intervals, where some are."""
    if not _too_few(methods):
        return []
    return ["", TOO_FEW_NOTE]


def _differences(methods: dict, reference: str, total: int) -> list[str]:
    """The table of paired differences against ``reference``, with CIs and win rates."""
    lines = [
        "",
        f"## Differences against {reference} (per image, paired)",
        "",
        "wins: the share of images on which the method scores better than the reference, a tie counting half.",
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
            wins = format_number(d["win_rate"], ".0%")
            cells += [Interval.of(d).as_text(digits) + count_note(d["images"], total), wins]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _detail_and_tone(methods: dict, total: int) -> list[str]:
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
        ci, shade = entry["ci"], entry["tone"]
        detail = [
            format_number(ci[m]["mean"], f".{digits}f") + count_note(ci[m]["images"], total)
            for m, digits in (("psnr_detail", 2), ("ssim_detail", 4))
        ]
        corr, ratio = format_number(shade["correlation"], ".2f"), format_number(shade["ratio"], ".3f")
        lines.append(
            f"| {name} | {detail[0]} | {detail[1]} | "
            f"{shade['output_mean']:.3f} / {shade['reference_mean']:.3f} | {ratio} | {corr} |"
        )
    return lines


def _verdict(d: dict, total: int) -> str:
    """What a paired PSNR difference says: better, worse or no evidence, and the win rate; or why it says nothing."""
    if d["images"] == 0:
        return "no image has a PSNR difference, so no verdict"
    if d["images"] < MIN_INTERVAL_IMAGES:
        return (
            f"too few images for an interval ({d['images']} with a PSNR difference, at least {MIN_INTERVAL_IMAGES} "
            "needed), so no verdict"
        )
    verdict = (
        "no evidence of a PSNR difference (the interval contains 0)"
        if d["low"] <= 0 <= d["high"]
        else ("better" if d["mean"] > 0 else "worse") + " in PSNR (the interval excludes 0)"
    )
    scope = "images" if d["images"] >= total else f"the {d['images']} of {total} images with a PSNR difference"
    return f"{verdict}; it wins on {d['win_rate']:.0%} of {scope} (a tie counts half)"


def _reading(methods: dict, reference: str, variants: list[str], total: int) -> list[str]:
    """What the numbers say: each variant against ``reference``, and against the auto-exposure baseline."""
    lines = ["", "## Reading", ""]
    for name in variants[1:]:
        lines.append(f"- {name} vs {reference}: {_verdict(methods[name]['vs_reference']['psnr'], total)}.")
    baselines = [name for name in methods if name not in variants]
    exposure = next((name for name in baselines if name.startswith("auto-exposure")), None)
    for name in variants if exposure else []:
        d = methods[name]["psnr_vs_baselines"][exposure]
        lines.append(
            f"- {name} vs the {exposure} baseline: {Interval.of(d).as_text(2)} dB PSNR per image; {_verdict(d, total)}."
        )
    return lines
