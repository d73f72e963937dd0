"""``darkir test-unpaired``: restore an unpaired set into a results folder (whose earlier results it replaces, and
whose ``stats.csv`` marks it as test-unpaired's) and score each image in and out
(:mod:`darkir.eval.noreference`)."""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from darkir.data.pairs import Pair
from darkir.errors import DarkIRError, printable, some_of
from darkir.eval.noreference import NoReferenceScores, no_reference_scores, read_or_skip, write_scores_csv
from darkir.eval.reports import MAX_NAMED, plural
from darkir.imageio import IMAGE_SUFFIXES, Image, read_image, write_image
from darkir.infer.restorer import Restorer
from darkir.outputs import is_inside, is_same_file, temporary_path, write_atomic
from darkir.progress import progress_bar

#: The per-image scores test-unpaired writes beside its outputs; a folder holding one is an earlier run's results.
STATS_FILE = "stats.csv"


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
    for pair in progress_bar(pairs, desc="restoring", unit="img", disable=not progress):
        image = read_or_skip(pair.low, unreadable)
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
