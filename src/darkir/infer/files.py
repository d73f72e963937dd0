"""Restoring many image files: input discovery, output naming, skip/overwrite, per-file error reports."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from darkir.errors import DarkIRError
from darkir.imageio import IMAGE_SUFFIXES, read_image, write_image
from darkir.infer.restorer import Restorer
from darkir.outputs import OutputBusyError, OutputExistsError, claim, is_same_file


@dataclass(frozen=True)
class Job:
    """One image to restore: where it comes from and where its result goes."""

    source: Path
    target: Path


@dataclass
class Report:
    """What a batch did: restored, skipped (output existed) and failed files with reasons; which were tiled."""

    done: list[Path] = field(default_factory=list)
    tiled: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def plan_jobs(
    inputs: Sequence[str], output_dir: Path, suffix: str | None = None
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand files, folders (recursively, keeping relative paths) and globs into jobs.

    Returns the jobs and the inputs that yielded nothing (missing paths, empty folders, no glob match),
    each with a reason. ``suffix`` (e.g. ``.png``) changes the output format; by default it is kept.
    """
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    resolved_output = output_dir.resolve()

    def outside_output(source: Path) -> bool:
        return not source.resolve().is_relative_to(resolved_output)

    def add(source: Path, relative: Path) -> None:
        target = output_dir / relative
        jobs.append(Job(source, target.with_suffix(suffix) if suffix else target))

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            images = [p for p in path.rglob("*") if _is_image(p)]
            found = sorted(p for p in images if outside_output(p))
            if images and not found:
                problems.append((path, f"its images are inside the output folder {output_dir}; choose another -o"))
            elif not found:
                problems.append((path, f"no images ({', '.join(IMAGE_SUFFIXES)}) found in this folder"))
            for source in found:
                add(source, source.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(item):
            matches = (Path(p) for p in glob.glob(os.path.expanduser(item), recursive=True))
            found = sorted(p for p in matches if _is_image(p) and outside_output(p))
            if not found:
                problems.append((path, "no image matches this pattern"))
            for source in found:
                add(source, Path(source.name))
        else:
            problems.append((path, "no such file or folder"))
    sources = [job.source for job in jobs]
    targets: dict[Path, Path] = {}
    unique: list[Job] = []
    for job in jobs:
        clash = next((source for source in sources if is_same_file(job.target, source)), None)
        if clash is not None:
            problems.append((job.source, f"its output {job.target} would replace the input {clash}; choose another -o"))
        elif job.target in targets:
            problems.append((job.source, f"same output name as {targets[job.target]}; restore it separately"))
        else:
            targets[job.target] = job.source
            unique.append(job)
    return unique, problems


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and check that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DarkIRError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DarkIRError(f"output folder {path} is not writable")


def _restore_one(restorer: Restorer, job: Job, overwrite: bool) -> bool:
    """Restore one job under a claim on its output; False if the output exists and is kept."""
    job.target.parent.mkdir(parents=True, exist_ok=True)
    with claim(job.target):
        if job.target.exists() and not overwrite:
            return False
        image = read_image(job.source)
        image.rgb = restorer.restore_array(image.rgb)
        write_image(job.target, image, overwrite=overwrite)
    return True


def _reason(job: Job, exc: BaseException) -> str:
    """One line saying why a job failed."""
    if isinstance(exc, DarkIRError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{job.target}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return f"{job.source}: out of memory; try a smaller --tile or --max-memory"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{job.source}: {type(exc).__name__}: {first}"


def restore_files(
    restorer: Restorer, jobs: Iterable[Job], overwrite: bool = False, progress: bool = True, verbose: bool = False
) -> Report:
    """Restore every job; one file's failure is reported and the batch goes on.

    Existing outputs are kept unless ``overwrite``; outputs another darkir run is writing are skipped.
    ``verbose``: say for each image whether it was restored whole or tiled, and why.
    """
    report = Report()
    jobs = list(jobs)
    bar = tqdm(jobs, desc="restoring", unit="img", disable=not progress)
    for job in bar:
        bar.set_postfix_str(job.source.name, refresh=False)
        if job.target.exists() and not overwrite:
            report.skipped.append(job.target)
            continue
        try:
            written = _restore_one(restorer, job, overwrite)
        except OutputBusyError as exc:
            report.busy.append(job.target)
            tqdm.write(f"darkir: {exc}", file=sys.stderr)
            continue
        except OutputExistsError:
            written = False
        except (DarkIRError, OSError, RuntimeError, ValueError, MemoryError) as exc:
            reason = _reason(job, exc)
            report.failed.append((job.source, reason))
            tqdm.write(f"darkir: failed: {reason}", file=sys.stderr)
            continue
        (report.done if written else report.skipped).append(job.target)
        plan = restorer.last_plan
        if written and plan is not None:
            if plan.tile:
                report.tiled.append(job.source)
            if verbose:
                tqdm.write(f"darkir: {job.source}: {plan.reason}", file=sys.stderr)
    return report
