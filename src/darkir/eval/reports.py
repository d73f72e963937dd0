"""The report files of ``darkir compare`` and ``darkir test-unpaired``: where they may go, how they are written
(atomically, strict JSON, CSV), and the notes they share (images skipped as unreadable, means over some images)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from darkir.errors import DarkIRError, printable, some_of
from darkir.eval.methods import Method
from darkir.eval.stats import MIN_INTERVAL_IMAGES
from darkir.imageio import decodes
from darkir.outputs import (
    OutputBusyError,
    OutputError,
    claim,
    clean_stale,
    commit,
    is_inside,
    parent_made,
    stage,
    write_atomic,
)
from darkir.progress import note

#: The pictures of a report with references, which a report without them, written over it, removes.
PAIRED_PICTURES = ("psnr_diff_hist.png", "grid.png")
#: The files of a report, each replaced by a new report.
REPORT_FILES = ("summary.json", "per_image.csv", "report.md", *PAIRED_PICTURES)
#: The results, in words, that :func:`kept_elsewhere` keeps: a CSV file's rows, a report's files.
SCORES, REPORT = "the rows", "the report's files"
#: What a report says where some mean or difference has a value but no interval.
TOO_FEW_NOTE = (
    f"Too few images for an interval: intervals, win rates and verdicts need at least {MIN_INTERVAL_IMAGES} images "
    "with a value; below that they read n/a."
)


#: Unreadable images a summary names (the others are counted).
MAX_NAMED = 5


def skip_unreadable_image(exc: Exception, unreadable: list[str]) -> None:
    """Record an image that could not be read (``exc`` names it; a newline in its name escaped, not cut there) in
    ``unreadable`` and say so in one line on stderr, without breaking a progress bar."""
    unreadable.append(printable(str(exc).strip() or type(exc).__name__, one_line=True))
    note(f"darkir: skipped unreadable image: {unreadable[-1]}")


def unreadable_note(scored: int, unreadable: Sequence[str]) -> str:
    """``scored 9 of 10 images; 1 unreadable, skipped: <path: why>`` (empty when every image was read)."""
    if not unreadable:
        return ""
    named = some_of(unreadable, MAX_NAMED, sep="; ")
    return f"scored {scored} of {scored + len(unreadable)} images; {len(unreadable)} unreadable, skipped: {named}"


def count_note(images: int, total: int) -> str:
    """`` (k of n images)`` where only some of the ``total`` images have a value; empty where all or none have."""
    return f" ({images} of {total} images)" if 0 < images < total else ""


def plural(images: int) -> str:
    """``1 image``, ``2 images``."""
    return f"{images} image" if images == 1 else f"{images} images"


def json_numbers(value: object) -> object:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``: strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_numbers(item) for item in value]
    return value


def write_text(path: Path, text: str) -> None:
    """Write a report file through a temporary file and one atomic rename (a failure leaves the old one)."""
    write_atomic(path, text_bytes(text), overwrite=True)


def text_bytes(text: str) -> bytes:
    """A report's ``text`` as the bytes of its file (names that are not UTF-8 kept as their bytes)."""
    return text.encode(errors="surrogateescape")


def replace_report(output: Path, files: Mapping[str, bytes]) -> None:
    """Write a report's ``files`` (name -> contents) into ``output`` in place of an earlier report there. Each goes to
    a fsynced temporary file first (pictures read back); only once all are written (a full disk fails here, leaving
    the earlier report whole) are the earlier report's files removed, ``summary.json`` last, and the new ones moved in,
    ``summary.json`` first; Ctrl-C or SIGTERM meanwhile lets the swap finish. One run swaps at a time (another is
    refused), and what killed runs left there is removed first. Where the report cannot be written, its files are
    kept as :func:`kept_elsewhere` keeps them."""
    clean_stale(output)
    try:
        with claim(output / "summary.json"):
            _swap_report(output, files)
    except OutputBusyError:
        busy = OutputError(f"{output}: another darkir run is writing a report there; this one is not written")
        raise kept_elsewhere(files, busy, REPORT) from None
    except OutputError as exc:
        raise kept_elsewhere(files, exc, REPORT) from None


def _swap_report(output: Path, files: Mapping[str, bytes]) -> None:
    """:func:`replace_report`'s work, with the folder claimed."""
    staged: dict[str, Path] = {}
    order = sorted(files, key=lambda name: name != "summary.json")
    swapping = False
    try:
        for name, data in files.items():
            staged[name] = stage(output / name, data, verify=decodes if name.endswith(".png") else None)
        swapping = True
        if is_report(output):
            for name in sorted(REPORT_FILES, key=lambda name: name == "summary.json"):
                (output / name).unlink(missing_ok=True)
        for name in order:
            commit(staged[name], output / name, overwrite=True)
    except OSError as exc:
        raise OutputError(f"{exc.filename or output}: {exc.strerror or exc}; the report is not complete") from None
    except KeyboardInterrupt:  # the earlier report's files may be gone already: the new ones go in all the same
        if swapping:
            for name in order:
                with contextlib.suppress(OSError):
                    commit(staged[name], output / name, overwrite=True)
        raise
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def sources_note(methods: dict) -> list[str]:
    """The report's lines naming the weights of each method that has a ``source`` (none where no method has one)."""
    named = [f"`{name}`: {entry['source']}" for name, entry in methods.items() if entry.get("source")]
    return ["", "Weights: " + "; ".join(named) + "."] if named else []


def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds the ``summary.json`` of an earlier ``darkir compare`` report."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    keys = {"methods", "resamples", "bootstrap_seed"}
    return isinstance(summary, dict) and keys <= summary.keys() and isinstance(summary["methods"], dict)


def check_report_folder(output: Path, inputs: Iterable[Path]) -> None:
    """Refuse, before any work, a report folder where the report could replace the user's files: ``output`` equal to
    or inside one of the input folders ``inputs``, or holding a file named like a report file (:data:`REPORT_FILES`)
    without being an earlier report (its ``summary.json``); an earlier report is replaced by the new one."""
    for folder in inputs:
        if is_inside(output, folder):
            raise DarkIRError(
                f"-o {output} is inside the input folder {folder}; the report would go among the inputs: "
                "choose a report folder outside the data"
            )
    if not output.is_dir():
        return
    taken = [name for name in REPORT_FILES if (output / name).exists() or (output / name).is_symlink()]
    if taken and not is_report(output):
        raise DarkIRError(
            f"-o {output} holds {', '.join(taken)} but no earlier darkir compare report (its summary.json), so they "
            "would be replaced; choose a new or empty report folder"
        )


def unique_names(methods: Sequence[Method]) -> None:
    """Raise unless every method has its own name (results, columns and report rows are keyed by it)."""
    names = [method.name for method in methods]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DarkIRError(f"methods to compare share a name ({', '.join(repeated)}); give each its own")


def write_csv_rows(path: Path, rows: Sequence[Sequence[object]], overwrite: bool = True) -> None:
    """Write ``rows`` to the CSV file ``path`` through a temporary file and one atomic rename (its folder is made);
    an existing file is replaced only with ``overwrite``, and never half-written; a failed write leaves no folder it
    made. Where the write fails, the rows are kept in a new folder in the temporary folder, which the error names."""
    data = csv_bytes(rows)
    try:
        with parent_made(path):
            write_atomic(path, data, overwrite=overwrite)
    except OutputError as exc:
        raise kept_elsewhere({path.name: data}, exc, SCORES) from None
    except OSError as exc:  # its folder could not be made
        why = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror or exc
        unmade = OutputError(f"{path}: cannot make its folder {exc.filename or path.parent} ({why})")
        raise kept_elsewhere({path.name: data}, unmade, SCORES) from None


def kept_elsewhere(files: Mapping[str, bytes], error: OutputError, what: str) -> OutputError:
    """``error`` (results that could not be written), once ``files`` (name -> contents) are kept in a new folder in
    the temporary folder (``$TMPDIR``), so that a failed last write loses no scores: its message says where ``what``
    (the results, in words) are, or that they could not be kept there either."""
    try:
        folder = Path(tempfile.mkdtemp(prefix="darkir-unwritten-"))
    except OSError as exc:
        return type(error)(f"{error}; {what} could not be kept in the temporary folder either: {exc.strerror or exc}")
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return type(error)(f"{error}; {what} could not be kept in {folder} either: {exc.strerror or exc}")
    kept = folder / next(iter(files)) if len(files) == 1 else folder
    return type(error)(f"{error}; {what} are kept in {kept} instead")


def csv_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    """``rows`` as the bytes of a CSV file (names that are not UTF-8 kept as their bytes)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(errors="surrogateescape")
