"""Restoring many files: input discovery, output naming, skip/overwrite, per-file outcomes and error reports.

The local engine (:func:`restore_files`) and the Ray engine (:mod:`darkir.cluster`) plan the same jobs
(:func:`plan_jobs`), restore each with :func:`restore_job` and collect the same :class:`Report`.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from darkir.errors import DarkIRError, DarkIRWarning, first_line, some_of
from darkir.imageio import IMAGE_SUFFIXES, Image, read_image, write_image
from darkir.infer.pipeline import Drain, Prefetch
from darkir.infer.restorer import Restorer
from darkir.outputs import Claim, OutputBusyError, OutputExistsError, clean_stale, is_inside

#: Video files that ``darkir restore`` restores as ``darkir video`` does, each into ``<name>.mp4`` (``.h264`` and
#: ``.hevc``: raw camera streams).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".h264", ".hevc")


@dataclass(frozen=True)
class Job:
    """One image or video to restore: where it comes from and where its result goes."""

    source: Path
    target: Path

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Outcome:
    """What happened to one job: ``done``, ``skipped`` (output kept), ``busy`` (another run writes it) or
    ``failed``; ``message`` is the failure or busy reason, or for ``done`` how the image was planned."""

    status: str
    message: str = ""
    tiled: bool = False


@dataclass
class Report:
    """What a batch did: restored, skipped (output existed), busy (another run was writing the output) and failed
    files with reasons; which were tiled."""

    done: list[Path] = field(default_factory=list)
    tiled: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def record(self, job: Job, outcome: Outcome, verbose: bool = False) -> None:
        """Add one job's outcome; failures and busy outputs are said on stderr as they happen."""
        if outcome.status == "failed":
            self.failed.append((job.source, outcome.message))
            tqdm.write(f"darkir: failed: {outcome.message}", file=sys.stderr)
        elif outcome.status == "busy":
            self.busy.append(job.target)
            tqdm.write(f"darkir: {outcome.message}", file=sys.stderr)
        elif outcome.status == "skipped":
            self.skipped.append(job.target)
        else:
            self.done.append(job.target)
            if outcome.tiled:
                self.tiled.append(job.source)
            if verbose and outcome.message:
                tqdm.write(f"darkir: {job.source}: {outcome.message}", file=sys.stderr)


def _is_input(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith(".")


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` outside hidden folders (``root`` itself may be one), symlinked folders followed,
    each real folder entered once: loops of links end."""
    seen: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            yield Path(folder) / name


def _part_regex(part: str) -> str:
    """A regex for one path part of a glob: ``*`` and ``?`` never cross a ``/``; ``[...]`` as in glob."""
    out, i = "", 0
    while i < len(part):
        char = part[i]
        close = part.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif close != -1:
            body = part[i + 1 : close]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]"
            i = close
        else:
            out += re.escape(char)
        i += 1
    return out


def _pattern_regex(parts: Sequence[str]) -> re.Pattern[str]:
    """A regex for the relative path parts of a glob; ``**`` spans any number of folders."""
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _part_regex(part) + ("" if last else "/")
    return re.compile(regex + r"\Z", re.DOTALL)


def glob_files(pattern: str) -> list[Path]:
    """Files matching a glob (``**`` recursive), walking each real folder once: symlink loops end."""
    pattern = os.path.expanduser(pattern)
    if "**" not in pattern:
        return [Path(p) for p in glob.glob(pattern)]
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    regex = _pattern_regex(parts[fixed:])
    return [path for path in walk_files(root) if regex.match(path.relative_to(root).as_posix())]


def plan_jobs(
    inputs: Sequence[str], output_dir: Path, suffix: str | None = None, videos: bool = False
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand files, folders (recursively, keeping relative paths) and globs into jobs.

    Returns the jobs and the inputs that yielded nothing (missing paths, empty folders, no glob match),
    each with a reason. ``suffix`` (e.g. ``.png``) changes the output format of images; by default it is kept.
    ``videos``: also take video files (:data:`VIDEO_SUFFIXES`), each restored into ``<name>.mp4``.
    Files inside ``output_dir`` are left out (they are outputs), said in one :class:`DarkIRWarning`; an empty input
    (an unset shell variable, which would mean every image under the current folder) is a :class:`DarkIRError`.
    """
    for index, item in enumerate(inputs):
        if not str(item):
            raise DarkIRError(
                f"empty input path (input {index + 1} of {len(inputs)}); name a file, folder or glob ('.' for the "
                "current folder)"
            )
    jobs, problems = _expand_inputs(inputs, output_dir, suffix, videos)
    unique, clashes = _without_clashes(jobs)
    return unique, problems + clashes


def _expand_inputs(
    inputs: Sequence[str], output_dir: Path, suffix: str | None, videos: bool
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """A job for each file the inputs name, in order, and the inputs that yielded none, each with a reason."""
    suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
    kinds = f"{', '.join(IMAGE_SUFFIXES)}{' or videos' if videos else ''}"
    jobs: list[Job] = []
    problems: list[tuple[Path, str]] = []
    inside: list[Path] = []  # inputs found inside the output folder, left out

    def outside_output(candidates: Iterable[Path]) -> list[Path]:
        """The candidates outside the output folder, sorted; those inside are noted where some are kept (where
        none are, the input's problem says why)."""
        found = sorted(candidates)
        outside = [not is_inside(source, output_dir) for source in found]
        kept = [source for source, keep in zip(found, outside, strict=True) if keep]
        if kept:
            inside.extend(source for source, keep in zip(found, outside, strict=True) if not keep)
        return kept

    def add(source: Path, relative: Path) -> None:
        target = output_dir / relative
        if source.suffix.lower() in VIDEO_SUFFIXES and videos:
            target = target.with_suffix(".mp4")
        elif suffix:
            target = target.with_suffix(suffix)
        jobs.append(Job(source, target))

    for item in inputs:
        path = _expand_user(item)
        if path is None:
            problems.append((Path(item), f"cannot expand {item.split('/')[0]}: no such user"))
        elif path.is_dir():
            images = [p for p in walk_files(path) if _is_input(p, suffixes)]
            found = outside_output(images)
            if images and not found:
                problems.append(
                    (path, f"its images are inside the output folder {output_dir}; choose another output folder")
                )
            elif not found:
                problems.append((path, f"no images ({kinds}) found in this folder"))
            for source in found:
                add(source, source.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif glob.has_magic(item):
            matches = [p for p in glob_files(item) if _is_input(p, suffixes)]
            found = outside_output(matches)
            if matches and not found:
                problems.append((path, f"its matches are inside the output folder {output_dir}; choose another"))
            elif not found:
                problems.append((path, "no image matches this pattern"))
            for source in found:
                add(source, Path(source.name))
        else:
            problems.append((path, "no such file or folder"))
    _warn_left_out(inside, output_dir)
    return jobs, problems


def _expand_user(item: str) -> Path | None:
    """``item`` with a leading ``~`` or ``~user`` expanded; None where that user has no home folder."""
    try:
        return Path(item).expanduser()
    except RuntimeError:  # "Could not determine home directory"
        return None


#: How many of the files left out :func:`_warn_left_out` names.
LEFT_OUT_NAMED = 3


def _warn_left_out(inside: list[Path], output_dir: Path) -> None:
    """One warning naming the inputs left out for being inside ``output_dir``."""
    if not inside:
        return
    named = some_of([str(path) for path in inside], LEFT_OUT_NAMED)
    files = "file" if len(inside) == 1 else "files"
    warnings.warn(
        f"left out {len(inside)} {files} inside the output folder {output_dir} ({named}): files there are "
        "taken for outputs; choose an output folder outside the inputs to restore them",
        DarkIRWarning,
        stacklevel=4,
    )


def _without_clashes(jobs: list[Job]) -> tuple[list[Job], list[tuple[Path, str]]]:
    """``jobs`` without repeats of a file, and without those whose output would replace an input or another job's
    output (returned as problems, with reasons)."""
    sources = {file_id: job.source for job in jobs if (file_id := _file_id(job.source)) is not None}
    targets: dict[Path, Path] = {}
    unique: list[Job] = []
    problems: list[tuple[Path, str]] = []
    planned: set[tuple[int, int]] = set()
    for job in jobs:
        source_id = _file_id(job.source)
        if source_id in planned:
            continue  # the same file given or reached twice (a repeated argument, a link): restored once
        if source_id is not None:
            planned.add(source_id)
        target_id = _file_id(job.target)  # an output that does not exist yet cannot be an input
        clash = sources.get(target_id) if target_id is not None else None
        if clash is not None:
            problems.append(
                (job.source, f"its output {job.target} would replace the input {clash}; choose another output folder")
            )
        elif job.target in targets:
            problems.append((job.source, f"same output name as {targets[job.target]}; restore it separately"))
        else:
            targets[job.target] = job.source
            unique.append(job)
    return unique, problems


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, links followed: equal for two names of one file; None if missing."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and check that files can be written in it."""
    if path.exists() and not path.is_dir():
        raise DarkIRError(f"output folder {path} is a file; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DarkIRError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DarkIRError(f"output folder {path} is not writable")


def _reason(job: Job, exc: BaseException) -> str:
    """One line saying why a job failed."""
    if isinstance(exc, DarkIRError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{job.target}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return f"{job.source}: out of memory; try a smaller tile or max_memory"
    return f"{job.source}: {type(exc).__name__}: {first_line(exc)}"


def _check_output(job: Job, overwrite: bool) -> Outcome | None:
    """The job's outcome if its output rules it out before any work (a folder, a broken link, a kept file)."""
    if job.target.is_dir():
        return Outcome("failed", f"{job.target}: the output is a folder; move it or choose another output folder")
    if job.target.is_symlink() and not job.target.exists():
        return Outcome(
            "failed", f"{job.target}: the output is a link to nothing; remove it or choose another output folder"
        )
    if job.target.exists() and not overwrite:
        return Outcome("skipped")
    return None


@dataclass
class _Work:
    """One image job on its way: its output claimed and its image decoded (:func:`_open`), restored
    (:func:`_restore`), written (:func:`_finish`). ``outcome``: the job's, once known; while ``image`` is set,
    what it will be once the image is written."""

    job: Job
    outcome: Outcome | None = None
    image: Image | None = None
    held: Claim | None = None

    def drop(self) -> None:
        """Let go of the output's claim (the job is finished or abandoned)."""
        if self.held is not None:
            self.held.release()


def _open(job: Job, overwrite: bool) -> _Work:
    """Check and claim the job's output and decode its image (a video is left to :func:`restore_job`)."""
    work = _Work(job, outcome=None if job.is_video else _check_output(job, overwrite))
    if job.is_video or work.outcome is not None:
        return work
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        work.held = Claim(job.target)
        if job.target.exists() and not overwrite:  # written since the check, by a run that has finished
            work.outcome = Outcome("skipped")
        else:
            work.image = read_image(job.source)
    except OutputBusyError as exc:
        work.outcome = Outcome("busy", str(exc))
    except Exception as exc:  # whatever a decoder or size limit raised: this file's failure, not the batch's
        work.outcome = Outcome("failed", _reason(job, exc))
    except BaseException:  # an interrupt: the claim let go
        work.drop()
        raise
    if work.outcome is not None:
        work.drop()
    return work


def _restore(restorer: Restorer, work: _Work, overwrite: bool, codec: str, crf: int) -> None:
    """Restore an opened job's image (a video: the whole of it, with ``codec``/``crf``)."""
    if work.outcome is not None:
        return
    if work.job.is_video:
        work.outcome = restore_job(restorer, work.job, overwrite, codec, crf)
        return
    assert work.image is not None
    try:
        work.image.rgb = restorer.restore_array(work.image.rgb)
    except Exception as exc:  # out of memory, a size the model cannot take: this file's failure
        work.outcome, work.image = Outcome("failed", _reason(work.job, exc)), None
        work.drop()
        return
    work.outcome = _done(restorer)


def _done(restorer: Restorer) -> Outcome:
    """A job restored, with how its (last) image was planned."""
    plan = restorer.last_plan
    return Outcome("done", plan.reason if plan is not None else "", bool(plan is not None and plan.tile))


def _finish(work: _Work, overwrite: bool) -> Outcome:
    """Write a restored image and let go of its claim; the job's outcome."""
    assert work.outcome is not None
    try:
        if work.image is not None:
            write_image(work.job.target, work.image, overwrite=overwrite)
        return work.outcome
    except OutputExistsError:
        return Outcome("skipped")
    except Exception as exc:  # a full disk, a write error: this file's failure
        return Outcome("failed", _reason(work.job, exc))
    finally:
        work.drop()


def restore_job(
    restorer: Restorer, job: Job, overwrite: bool = False, codec: str = "libx264", crf: int = 18
) -> Outcome:
    """Restore one job (an image, or a video as ``darkir video`` does with ``codec``/``crf``); never raises for
    a bad input or a failed write: the :class:`Outcome` says what happened."""
    if not job.is_video:
        work = _open(job, overwrite)
        try:
            _restore(restorer, work, overwrite, codec, crf)
        except BaseException:  # an interrupt: nothing written, the claim let go
            work.drop()
            raise
        return _finish(work, overwrite)
    early = _check_output(job, overwrite)
    if early is not None:
        return early
    try:
        from darkir.infer.video import restore_video

        job.target.parent.mkdir(parents=True, exist_ok=True)
        restore_video(restorer, job.source, job.target, codec=codec, crf=crf, progress=False, overwrite=overwrite)
    except OutputBusyError as exc:
        return Outcome("busy", str(exc))
    except OutputExistsError:
        return Outcome("skipped")
    except Exception as exc:  # whatever a decoder, codec or size limit raised: this file's failure, not the batch's
        return Outcome("failed", _reason(job, exc))
    return _done(restorer)


def clean_stale_outputs(jobs: Iterable[Job]) -> None:
    """Remove what killed runs left in the jobs' output folders (:func:`darkir.outputs.clean_stale`)."""
    for folder in sorted({job.target.parent for job in jobs}):
        clean_stale(folder)


def restore_files(
    restorer: Restorer,
    jobs: Iterable[Job],
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
    codec: str = "libx264",
    crf: int = 18,
    overlap: bool | None = None,
) -> Report:
    """Restore every job in this process; one file's failure is reported and the batch goes on.

    Existing outputs are kept unless ``overwrite``; outputs another darkir run is writing are skipped.
    ``verbose``: say for each image whether it was restored whole or tiled, and why.
    ``overlap``: read the next image and write the last one in their own threads while one is restored (default:
    on CUDA, where reading and writing would otherwise take longer than restoring; on the CPU the restore takes
    nearly all the time, and an image read ahead would add to the memory that ``max_memory`` plans).
    """
    report = Report()
    jobs = list(jobs)
    clean_stale_outputs(jobs)
    overlap = restorer.device.type == "cuda" if overlap is None else overlap
    with tqdm(total=len(jobs), desc="restoring", unit="file", disable=not progress) as bar:

        def finish(work: _Work) -> None:
            report.record(work.job, _finish(work, overwrite), verbose)
            bar.update()

        def restore(work: _Work) -> _Work:
            bar.set_postfix_str(work.job.source.name)  # the file being restored
            try:
                _restore(restorer, work, overwrite, codec, crf)
            except BaseException:  # an interrupt: nothing written, the claim let go
                work.drop()
                raise
            return work

        opened = (_open(job, overwrite) for job in jobs)
        if not overlap:
            for work in opened:
                finish(restore(work))
            return report
        with (
            Prefetch(opened, depth=1, name="darkir-read", discard=_Work.drop) as reader,
            Drain(finish, depth=1, name="darkir-write", discard=_Work.drop) as writer,
        ):
            for work in reader:
                writer.put(restore(work))
            writer.finish()
    return report
