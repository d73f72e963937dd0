"""Unpaired sets: restore, save, and report no-reference scores that run offline.

Per image: NIQE (:mod:`darkir.eval.niqe`, lower is better), the mean brightness (sRGB, 0-1) and the noise standard
deviation estimated with Immerkaer's fast method (1996), before and after restoration. BRISQUE, MUSIQ and NRQM are
not reported: no installable package ships their models for offline use.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from darkir.data.pairs import Pair
from darkir.errors import DarkIRError, printable, some_of
from darkir.eval.methods import Method
from darkir.eval.metrics import format_number, prepare
from darkir.eval.niqe import niqe
from darkir.eval.reports import (
    MAX_NAMED,
    TOO_FEW_NOTE,
    count_note,
    csv_bytes,
    json_numbers,
    plural,
    replace_report,
    skip_unreadable_image,
    sources_note,
    text_bytes,
    unique_names,
    write_csv_rows,
)
from darkir.eval.stats import MIN_INTERVAL_IMAGES, Interval, bootstrap_mean, mean_of_defined, paired
from darkir.imageio import IMAGE_SUFFIXES, Image, ImageReadError, read_image, write_image
from darkir.infer.restorer import Restorer
from darkir.outputs import is_inside, is_same_file, temporary_path, write_atomic

NO_REFERENCE_NOTE = (
    "no-reference scores: NIQE (lower is better; MATLAB-matching, official natural-scene model; nan under 96x96 "
    "pixels and for flat images), mean brightness in sRGB [0,1], Immerkaer noise sigma in sRGB [0,1]; "
    "BRISQUE/MUSIQ/NRQM: not available offline"
)
#: What a compare --unpaired report says where its NIQE means cover different images (see :func:`niqe_apart`).
NIQE_APART_NOTE = (
    "The NIQE means below cover different images (some inputs or outputs have no NIQE), so they are not comparable "
    "with one another: compare the methods by the paired differences, which cover the images both score."
)
#: The per-image scores test-unpaired writes beside its outputs; a folder holding one is an earlier run's results.
STATS_FILE = "stats.csv"
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


@dataclass
class UnpairedRow:
    """Scores of one image before and after restoration."""

    name: str
    before: NoReferenceScores
    after: NoReferenceScores


def _stats_columns() -> list[str]:
    """The columns of ``stats.csv`` after ``image``: each score before (``_in``) and after (``_out``) restoring."""
    return [f"{field.name}_{side}" for field in fields(NoReferenceScores) for side in ("in", "out")]


def earlier_results(output: Path) -> bool:
    """Whether ``output`` holds the ``stats.csv`` that an earlier ``darkir test-unpaired`` wrote there (its images are
    then that run's results)."""
    return _earlier_stats(output) is not None


def _earlier_stats(output: Path) -> list[list[str]] | None:
    """The rows (below the header) of the ``stats.csv`` an earlier ``darkir test-unpaired`` wrote in ``output``; None
    where it holds none, or one that cannot be read whole (a file of another program's, or damaged)."""
    try:
        with open(output / STATS_FILE, newline="") as handle:
            header, *rows = list(csv.reader(handle)) or [[]]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return rows if header[:1] == ["image"] and set(header[1:]) <= set(_stats_columns()) else None


def _named(pairs: Sequence[Pair]) -> str:
    """``a.png, b.png`` (at most :data:`MAX_NAMED` names, then ``and N more``)."""
    return some_of([pair.name for pair in pairs], MAX_NAMED)


def outside_output(pairs: list[Pair], output: Path, folder: Path) -> list[Pair]:
    """The inputs of ``folder`` that are not inside ``output``, checked before any work so that restoring never
    replaces nor silently drops the user's images: raises when none is left, when an output would land on an input,
    when ``output`` lies in ``folder`` and holds images without the ``stats.csv`` of an earlier run (they would be
    replaced), when it holds a ``stats.csv`` that test-unpaired did not write, or when it holds files of the outputs'
    names that are not an earlier run's results (its ``stats.csv`` does not list them). The images of an earlier run
    inside the data folder are left out of the inputs and named on stderr in one line."""
    within = [is_inside(pair.low, output) for pair in pairs]
    inside = [pair for pair, is_in in zip(pairs, within, strict=True) if is_in]
    kept = [pair for pair, is_in in zip(pairs, within, strict=True) if not is_in]
    if not kept:
        raise DarkIRError(f"{folder}: its images are inside the output folder {output}; choose another output folder")
    kept = outside_earlier_runs(kept, folder)
    stats, earlier = output / STATS_FILE, earlier_results(output)
    if (stats.exists() or stats.is_symlink()) and not earlier:
        raise DarkIRError(f"{stats} was not written by darkir test-unpaired; move it away or choose another -o folder")
    if inside and not earlier:
        raise DarkIRError(
            f"-o {output} is inside the data folder {folder} and holds {plural(len(inside))} ({_named(inside)}) "
            f"that are not an earlier run's results (it has no {STATS_FILE} of darkir test-unpaired): they would be "
            f"replaced or left out; write to a new folder, or to one outside {folder}"
        )
    for pair in kept:
        if is_same_file(pair.low, output / pair.name):
            target = output / pair.name
            raise DarkIRError(f"{pair.low}: the output {target} is this input; choose another output folder")
    _refuse_taken_names(kept, output, earlier_outputs(output) if earlier else None)
    if inside:
        tqdm.write(
            printable(
                f"darkir: warning: left out {plural(len(inside))} inside the output folder {output} (results of an "
                f"earlier run, not inputs): {_named(inside)}"
            ),
            file=sys.stderr,
        )
    return kept


def outside_earlier_runs(pairs: list[Pair], folder: Path) -> list[Pair]:
    """``pairs`` without the images in folders under ``folder`` that hold an earlier test-unpaired run's results
    (another ``-o``): they are restored images, not inputs. Those left out are named on stderr in one line."""
    results: dict[Path, bool] = {}
    left: list[Pair] = []
    for pair in pairs:
        for parent in [folder / part for part in Path(pair.name).parents][:-1]:  # not ``folder`` itself
            if parent not in results:
                results[parent] = earlier_results(parent)
            if results[parent]:
                left.append(pair)
                break
    if len(left) == len(pairs):
        raise DarkIRError(f"{folder}: every image is in an earlier darkir test-unpaired run's results folder")
    if left:
        runs = sorted({str(path) for path, is_run in results.items() if is_run})
        tqdm.write(
            printable(
                f"darkir: warning: left out {plural(len(left))} in results folders of earlier runs inside the data "
                f"({', '.join(runs)}), not inputs: {_named(left)}"
            ),
            file=sys.stderr,
        )
    left_out = set(left)
    return [pair for pair in pairs if pair not in left_out]


def earlier_outputs(output: Path) -> set[str]:
    """The images that an earlier test-unpaired run listed in ``output``'s ``stats.csv`` (none where it holds none, or
    one that run did not finish)."""
    return {row[0] for row in _earlier_stats(output) or () if row}


def remove_stale(output: Path, earlier: set[str], written: set[str]) -> list[str]:
    """Remove the earlier run's outputs (``earlier``) that this run did not write again, so that no image of another
    model or input set is left among this run's results; returns their names."""
    removed = []
    for name in sorted(earlier - written):
        target = output / name
        if target.suffix.lower() in IMAGE_SUFFIXES and is_inside(target, output) and target.is_file():
            target.unlink()
            removed.append(name)
    return removed


def _refuse_taken_names(pairs: list[Pair], output: Path, listed: set[str] | None) -> None:
    """Raise when ``output`` holds files of the names the outputs would take that are not an earlier run's results
    (those its ``stats.csv`` lists, ``listed``; None where it has none): they are the user's own, which restoring
    would replace."""
    taken = [
        pair
        for pair in pairs
        if ((output / pair.name).exists() or (output / pair.name).is_symlink()) and pair.name not in (listed or ())
    ]
    if not taken:
        return
    whose = (
        f"no {STATS_FILE} of an earlier darkir test-unpaired run"
        if listed is None
        else f"its {STATS_FILE} (of an earlier darkir test-unpaired run) does not list them as that run's results"
    )
    raise DarkIRError(
        f"-o {output} holds {plural(len(taken))} of the outputs' names ({_named(taken)}) and {whose}: they would be "
        "replaced; write to a new folder or move them away"
    )


def mark_results(output: Path, names: set[str]) -> None:
    """Write a ``stats.csv`` into ``output`` that lists, without scores, the ``names`` of the images there that are
    test-unpaired's (the earlier run's and those this run writes), before the run's first image: the folder of an
    interrupted run is then known as test-unpaired's, and its images as that run's results, when the run is
    repeated. The last step replaces it."""
    write_scores_csv(output / STATS_FILE, [(name, {}) for name in sorted(names)])


def _write_first(target: Path, image: Image, output: Path, listed: set[str]) -> None:
    """Write a run's first image after :func:`mark_results` (``listed``); where it cannot be written (a full disk),
    the earlier run's ``stats.csv`` is put back (or the mark removed where there was none): nothing was replaced.
    The earlier file is kept under a second name (a hard link) meanwhile, so putting it back takes no space; where
    no link can be made, it is written back from memory."""
    stats = output / STATS_FILE
    earlier = stats.read_bytes() if stats.is_file() else None  # (outside_output refused one of another program)
    kept = temporary_path(stats.with_name(f"{STATS_FILE}.earlier")) if earlier is not None else None
    if kept is not None:
        try:
            os.link(stats, kept)
        except OSError:  # (no hard links here, or no room for one)
            kept = None
    marked = False
    try:
        mark_results(output, listed)  # (where this fails, stats.csv is as it was)
        marked = True
        write_image(target, image, overwrite=True)
    except BaseException:
        if marked:
            _put_back(stats, kept, earlier)
        raise
    finally:
        if kept is not None:
            kept.unlink(missing_ok=True)


def _put_back(stats: Path, kept: Path | None, earlier: bytes | None) -> None:
    """Put the earlier ``stats.csv`` back in place of the mark: from its second name ``kept``, else from ``earlier``;
    remove the mark where there was none."""
    with contextlib.suppress(OSError, DarkIRError):
        if kept is not None:
            os.replace(kept, stats)
        elif earlier is not None:
            write_atomic(stats, earlier, overwrite=True)
        else:
            stats.unlink()


def _read(path: Path, unreadable: list[str] | None) -> Image | None:
    """The image at ``path``; when it cannot be read, None if ``unreadable`` collects such images (the failure is
    added to it and said on stderr), else the :class:`~darkir.imageio.ImageReadError`."""
    try:
        return read_image(path)
    except (ImageReadError, OSError) as exc:
        if unreadable is None:
            raise
        skip_unreadable_image(exc, unreadable)
        return None


def restore_unpaired(
    restorer: Restorer,
    pairs: list[Pair],
    output: Path,
    progress: bool = True,
    unreadable: list[str] | None = None,
    listed: set[str] | None = None,
) -> list[UnpairedRow]:
    """Restore every input into ``output`` (relative names kept; earlier results there are replaced) and score both
    (each output as its file holds it).
    An input that cannot be read raises, or is skipped and added to ``unreadable`` (``path: why``) when given.
    ``listed``: the names :func:`mark_results` lists, just before the first image is written."""
    rows: list[UnpairedRow] = []
    for pair in tqdm(pairs, desc="restoring", unit="img", disable=not progress):
        image = _read(pair.low, unreadable)
        if image is None:
            continue
        before = image.rgb
        try:
            image.rgb = restorer.restore_array(before)
        except DarkIRError as exc:  # e.g. broken weights' NaN output: named with the image
            raise DarkIRError(f"{pair.low}: {exc}") from None
        target = output / pair.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if listed is not None and not rows:  # (a row follows each image written)
            _write_first(target, image, output, listed)
        else:
            write_image(target, image, overwrite=True)
        saved = read_image(target).rgb  # as its file holds it: quantized, in gray for a gray input, JPEG's loss too
        rows.append(UnpairedRow(pair.name, no_reference_scores(before), no_reference_scores(saved)))
    return rows


def score_folder(
    pairs: Sequence[Pair], progress: bool = True, unreadable: list[str] | None = None
) -> list[tuple[str, NoReferenceScores]]:
    """No-reference scores of every image of a folder (as listed by :func:`darkir.data.pairs.find_unpaired`). An image
    that cannot be read raises, or is skipped and added to ``unreadable`` (``path: why``) when given."""
    images = (
        (pair.name, _read(pair.low, unreadable))
        for pair in tqdm(pairs, desc="scoring", unit="img", disable=not progress)
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


def unpaired_csv_rows(rows: Sequence[UnpairedRow]) -> list[tuple[str, dict[str, float]]]:
    """Rows for :func:`write_scores_csv`: each score before (``_in``) and after (``_out``) restoration."""
    return [
        (
            row.name,
            {f"{key}_{side}": value for key in asdict(row.before) for side, value in
             (("in", getattr(row.before, key)), ("out", getattr(row.after, key)))},
        )
        for row in rows
    ]  # fmt: skip


def _mean(values: Sequence[float]) -> tuple[float, int]:
    """The mean of the values that are not NaN (NaN without any), and their count."""
    return mean_of_defined(values), sum(not math.isnan(value) for value in values)


def _scores_text(niqe: Interval, brightness: float, noise: tuple[float, int], total: int) -> str:
    """``NIQE m [lo, hi], brightness b, noise sigma n``, each mean saying how many of ``total`` images it covers
    where not all have a value."""
    return (
        f"NIQE {niqe.as_text(3, signed=False)}{count_note(niqe.images, total)}, brightness {brightness:.3f}, "
        f"noise sigma {format_number(noise[0], '.4f')}{count_note(noise[1], total)}"
    )


def mean_line(label: str, scores: Sequence[NoReferenceScores]) -> str:
    """``label: NIQE m [lo, hi], brightness b, noise n`` over images (95% bootstrap interval for NIQE)."""
    niqe_interval = bootstrap_mean(np.array([s.niqe for s in scores], dtype=np.float64))
    brightness = _mean([s.brightness for s in scores])[0]
    return f"{label}: {_scores_text(niqe_interval, brightness, _mean([s.noise for s in scores]), len(scores))}"


def niqe_change_line(rows: Sequence[UnpairedRow]) -> str | None:
    """Where the input's and the output's NIQE means cover different images (a flat or dark input has none, its
    output one), the change over the images scored in and out; None where both cover the same."""
    before = np.array([row.before.niqe for row in rows], dtype=np.float64)
    after = np.array([row.after.niqe for row in rows], dtype=np.float64)
    both = ~np.isnan(before) & ~np.isnan(after)
    if np.array_equal(~np.isnan(before), ~np.isnan(after)) or not both.any():
        return None
    return (
        f"NIQE of the {int(both.sum())} images scored in and out (the means above cover different images): "
        f"{before[both].mean():.3f} -> {after[both].mean():.3f}"
    )


def unpaired_line(name: str, entry: dict, total: int) -> str:
    """One line of a method's means in a :func:`compare_unpaired` summary."""
    noise = (entry["noise"], entry["noise_images"])
    return f"{name}: {_scores_text(Interval.of(entry['niqe']), entry['brightness'], noise, total)}"


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
    methods: Sequence[Method], pairs: Sequence[Pair], output: Path, resamples: int = 2000, progress: bool = True
) -> dict:
    """No-reference scores of every method on unpaired inputs (each output scored, then dropped; nothing is
    kept in memory but the scores), with bootstrap intervals and paired differences against ``methods[0]``.

    Writes ``summary.json`` (it marks the folder as a report, see :func:`~darkir.eval.reports.check_report_folder`),
    ``per_image.csv`` and ``report.md`` into ``output`` in place of an earlier report, its pictures included
    (:func:`~darkir.eval.reports.replace_report`); returns the summary.
    """
    unique_names(methods)
    output.mkdir(parents=True, exist_ok=True)
    scores: dict[str, list[NoReferenceScores]] = {method.name: [] for method in methods}
    for pair in tqdm(pairs, desc="comparing", unit="img", disable=not progress):
        image = read_image(pair.low)
        x = torch.from_numpy(np.ascontiguousarray(image.rgb)).permute(2, 0, 1)[None]
        for method in methods:
            out = prepare(method.run(x), "8bit", image.bit_depth, image.grayscale)  # quantized as saved, not coded
            scores[method.name].append(no_reference_scores(out[0].permute(1, 2, 0).numpy()))
    reference, sources = methods[0].name, {method.name: method.source for method in methods}
    summary: dict = {
        "images": len(pairs),
        "resamples": resamples,
        "bootstrap_seed": 0,
        "min_interval_images": MIN_INTERVAL_IMAGES,
        "methods": {},
    }
    reference_niqe = np.array([s.niqe for s in scores[reference]], dtype=np.float64)
    for name, values in scores.items():
        niqe_values = np.array([s.niqe for s in values], dtype=np.float64)
        noise, noise_images = _mean([s.noise for s in values])
        entry = {
            "niqe": vars(bootstrap_mean(niqe_values, resamples)),
            "brightness": _mean([s.brightness for s in values])[0],
            "noise": noise,
            "noise_images": noise_images,
        }
        if name != reference:
            entry["niqe_vs_reference"] = paired(niqe_values - reference_niqe, "niqe", resamples)
        if sources.get(name):
            entry["source"] = sources[name]
        summary["methods"][name] = entry
    rows = [
        (pair.name, {f"{key}:{name}": value for name, values in scores.items()
                     for key, value in asdict(values[i]).items()})
        for i, pair in enumerate(pairs)
    ]  # fmt: skip
    files = {
        "summary.json": text_bytes(json.dumps(json_numbers(summary), indent=2, allow_nan=False)),
        "per_image.csv": csv_bytes(scores_csv_rows(rows)),
        "report.md": text_bytes(_render_unpaired(summary, reference)),
    }
    replace_report(output, files)
    return summary


def _render_unpaired(summary: dict, reference: str) -> str:
    """The markdown report of :func:`compare_unpaired`: means with intervals, and paired NIQE differences."""
    total = summary["images"]
    intervals = [entry["niqe"] for entry in summary["methods"].values()]
    intervals += [entry["niqe_vs_reference"] for entry in summary["methods"].values() if "niqe_vs_reference" in entry]
    too_few = any(0 < interval["images"] < MIN_INTERVAL_IMAGES for interval in intervals)
    lines = [
        "# Comparison on unpaired images",
        "",
        f"{plural(total)}; outputs clamped to [0,1] and quantized to 8 bits; NIQE: lower is better "
        f"(images under 96x96 have none); 95% intervals from a bootstrap over images ({summary['resamples']} "
        "resamples, seed 0). Per-image values are in `per_image.csv`. A mean or difference over only some of the "
        "images (the others have no value) says how many it covers.",
        *(["", TOO_FEW_NOTE] if too_few else []),
        *(["", NIQE_APART_NOTE] if niqe_apart(summary) else []),
        "",
        "| method | NIQE ↓ [95% CI] | mean brightness | noise sigma |",
        "| --- | --- | --- | --- |",
    ]
    for name, entry in summary["methods"].items():
        niqe_cell = Interval.of(entry["niqe"]).as_text(3, signed=False) + count_note(entry["niqe"]["images"], total)
        noise_cell = format_number(entry["noise"], ".4f") + count_note(entry["noise_images"], total)
        lines.append(f"| {name} | {niqe_cell} | {entry['brightness']:.3f} | {noise_cell} |")
    lines += sources_note(summary["methods"])
    lines += [
        "",
        f"## NIQE differences against {reference} (per image, paired; negative is better)",
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
