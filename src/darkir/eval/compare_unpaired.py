"""``darkir compare --unpaired``: every method's no-reference scores on unpaired inputs, with bootstrap intervals and
paired NIQE differences against the first method, written as a report folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from darkir.data.pairs import Pair
from darkir.eval.compare import LATENCY_REPEATS, cost_cells, model_costs, timing_note
from darkir.eval.methods import Method
from darkir.eval.metrics import format_number, prepare
from darkir.eval.noreference import (
    NoReferenceScores,
    mean_and_count_of_defined,
    no_reference_scores,
    scores_csv_rows,
    scores_text,
)
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
from darkir.eval.stats import MIN_INTERVAL_IMAGES, Interval, bootstrap_mean, mean_of_defined, paired
from darkir.imageio import read_image
from darkir.progress import progress_bar

#: What a compare --unpaired report says where its NIQE means cover different images (see :func:`niqe_apart`).
NIQE_APART_NOTE = (
    "The NIQE means below cover different images (some inputs or outputs have no NIQE), so they are not comparable "
    "with one another: compare the methods by the paired differences, which cover the images both score."
)


def unpaired_line(name: str, entry: dict, total: int) -> str:
    """One line of a method's means in a :func:`compare_unpaired` summary."""
    noise = (entry["noise"], entry["noise_images"])
    return f"{name}: {scores_text(Interval.of(entry['niqe']), entry['brightness'], noise, total)}"


def niqe_apart(summary: dict) -> bool:
    """Whether the NIQE means of a :func:`compare_unpaired` summary cover different images (a flat or small input has
    none, its output one): some method's mean covers other images than the reference's, as its paired difference,
    over the images both score, says by its count."""
    entries = list(summary["methods"].values())
    reference = entries[0]["niqe"]["images"]
    return any(
        entry["niqe"]["images"] != reference or entry["niqe_vs_reference"]["images"] != reference
        for entry in entries[1:]
    )


def niqe_apart_lines(summary: dict) -> list[str]:
    """Where the NIQE means of a :func:`compare_unpaired` summary cover different images (:func:`niqe_apart`), each
    method's paired NIQE difference against the first method, over the images both score; else nothing."""
    if not niqe_apart(summary):
        return []
    reference, *others = summary["methods"]
    lines = [f"the NIQE means cover different images; per image against {reference}, over the images both score:"]
    for name in others:
        difference = summary["methods"][name]["niqe_vs_reference"]
        lines.append(f"  {name}: ΔNIQE {Interval.of(difference).as_text(3)} ({plural(difference['images'])})")
    return lines


def compare_unpaired(
    methods: Sequence[Method],
    pairs: Sequence[Pair],
    output: Path,
    resamples: int = 2000,
    progress: bool = True,
    latency_size: int = 256,
    latency_runs: int = LATENCY_REPEATS,
) -> dict:
    """No-reference scores of every method on unpaired inputs (each output scored, then dropped; nothing is
    kept in memory but the scores), with bootstrap intervals and paired differences against ``methods[0]``, and each
    model's cost at 3 x ``latency_size`` x ``latency_size``, its latency of ``latency_runs`` calls (as
    :func:`~darkir.eval.compare.compare` gives it).

    Writes ``summary.json`` (it marks the folder as a report, see :func:`~darkir.eval.reports.check_report_folder`),
    ``per_image.csv`` and ``report.md`` into ``output`` in place of an earlier report, its pictures included
    (:func:`~darkir.eval.reports.replace_report`); returns the summary.
    """
    unique_names(methods)
    measured = model_costs(methods, latency_size, latency_runs)
    costs = dict(zip((method.name for method in methods), measured, strict=True))
    output.mkdir(parents=True, exist_ok=True)
    scores: dict[str, list[NoReferenceScores]] = {method.name: [] for method in methods}
    for pair in progress_bar(pairs, desc="comparing", unit="img", disable=not progress):
        image = read_image(pair.low)
        x = torch.from_numpy(np.ascontiguousarray(image.rgb)).permute(2, 0, 1)[None]
        for method in methods:
            out = prepare(method.run(x), "8bit", image.bit_depth, image.grayscale)  # quantized as saved, not coded
            scores[method.name].append(no_reference_scores(out[0].permute(1, 2, 0).numpy()))
    summary = _summary(methods, scores, costs, resamples)
    reference = methods[0].name
    rows = [
        (pair.name, {f"{key}:{name}": value for name, values in scores.items()
                     for key, value in asdict(values[i]).items()})
        for i, pair in enumerate(pairs)
    ]  # fmt: skip
    files = {
        "summary.json": text_bytes(json.dumps(json_numbers(summary), indent=2, allow_nan=False)),
        "per_image.csv": csv_bytes(scores_csv_rows(rows)),
        "report.md": text_bytes(_render_unpaired(summary, reference, latency_size)),
    }
    replace_report(output, files)
    return summary


def _summary(
    methods: Sequence[Method], scores: dict[str, list[NoReferenceScores]], costs: dict[str, dict], resamples: int
) -> dict:
    """:func:`compare_unpaired`'s summary of each method's ``scores`` per image: means (NIQE with its interval, and
    its paired difference against the first method), cost and source."""
    reference, sources = methods[0].name, {method.name: method.source for method in methods}
    summary: dict = {
        "images": len(scores[reference]),
        "resamples": resamples,
        "bootstrap_seed": 0,
        "min_interval_images": MIN_INTERVAL_IMAGES,
        "methods": {},
    }
    reference_niqe = np.array([s.niqe for s in scores[reference]], dtype=np.float64)
    for name, values in scores.items():
        niqe_values = np.array([s.niqe for s in values], dtype=np.float64)
        noise, noise_images = mean_and_count_of_defined([s.noise for s in values])
        entry = {
            "niqe": vars(bootstrap_mean(niqe_values, resamples)),
            "brightness": mean_of_defined([s.brightness for s in values]),
            "noise": noise,
            "noise_images": noise_images,
            **costs[name],
        }
        if name != reference:
            entry["niqe_vs_reference"] = paired(niqe_values - reference_niqe, "niqe", resamples)
        if sources.get(name):
            entry["source"] = sources[name]
        summary["methods"][name] = entry
    return summary


def _render_unpaired(summary: dict, reference: str, size: int) -> str:
    """The markdown report of :func:`compare_unpaired`: costs at ``size``, means with intervals, and paired NIQE
    differences."""
    total = summary["images"]
    intervals = [entry["niqe"] for entry in summary["methods"].values()]
    intervals += [entry["niqe_vs_reference"] for entry in summary["methods"].values() if "niqe_vs_reference" in entry]
    too_few = any(0 < interval["images"] < MIN_INTERVAL_IMAGES for interval in intervals)
    lines = [
        "# Comparison on unpaired images",
        "",
        f"{plural(total)}; outputs clamped to [0,1] and quantized to 8 bits; NIQE: lower is better "
        "(images under 96x96 have none); 95% intervals from a bootstrap over images "
        f"({summary['resamples']} resamples, seed 0), widened for few images (docs/evaluation.md). Per-image values "
        "are in `per_image.csv`. A mean or difference over only some of the images (the others have no value) says "
        "how many it covers.",
        *(["", TOO_FEW_NOTE] if too_few else []),
        *(["", NIQE_APART_NOTE] if niqe_apart(summary) else []),
        *timing_note(summary["methods"], size),
        "",
        f"| method | params | GMac @{size} | latency @{size} (s) | NIQE ↓ [95% CI] | mean brightness | noise sigma |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in summary["methods"].items():
        niqe_cell = Interval.of(entry["niqe"]).as_text(3, signed=False) + count_note(entry["niqe"]["images"], total)
        noise_cell = format_number(entry["noise"], ".4f") + count_note(entry["noise_images"], total)
        lines.append(f"| {name} | {cost_cells(entry)} | {niqe_cell} | {entry['brightness']:.3f} | {noise_cell} |")
    lines += sources_note(summary["methods"])
    lines += [
        "",
        f"## NIQE differences against {reference} (per image, paired; negative is better)",
        "",
        "better on: the share of images on which the method's NIQE is lower, a tie counting half.",
        "",
        "| method | ΔNIQE [95% CI] | better on |",
        "| --- | --- | --- |",
    ]
    for name, entry in summary["methods"].items():
        if "niqe_vs_reference" in entry:
            d = entry["niqe_vs_reference"]
            wins = format_number(d["win_rate"], ".0%")
            lines.append(f"| {name} | {Interval.of(d).as_text(3)}{count_note(d['images'], total)} | {wins} |")
    return "\n".join([*lines, ""])
