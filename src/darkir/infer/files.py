"""Restoring many files: skip/overwrite, per-file outcomes and error reports.

The local engine (:func:`restore_files`) and the Ray engine (:mod:`darkir.cluster`) plan the same jobs
(:func:`darkir.infer.jobs.plan_jobs`), restore each with :func:`restore_job` and collect the same :class:`Report`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from darkir.errors import DarkIRError, first_line, printable
from darkir.image_header import read_header
from darkir.imageio import Image, check_jpeg_quality, read_image, write_image
from darkir.infer.compiling import compiling_note
from darkir.infer.defaults import JPEG_QUALITY
from darkir.infer.inputs import check_image_fits
from darkir.infer.jobs import Job
from darkir.infer.pipeline import Drain, Prefetch
from darkir.infer.restorer import Restorer
from darkir.outputs import (
    Claim,
    DiskFullError,
    OutputBusyError,
    OutputExistsError,
    clean_stale,
    is_disk_full,
    is_inside,
)
from darkir.progress import note, progress_bar, stderr_is_terminal


@dataclass(frozen=True)
class Outcome:
    """What happened to one job: ``done``, ``skipped`` (output kept), ``busy`` (another run writes it) or
    ``failed``; ``message`` is the failure or busy reason, or for ``done`` how the image was planned."""

    status: str
    message: str = ""
    tiled: bool = False
    disk_full: bool = False


#: How many outputs in a row that find no room on their disk stop a batch (one large file may not fit where
#: smaller ones still do).
FULL_STREAK = 5


@dataclass
class Report:
    """What a batch did: restored, skipped (output existed), busy (another run was writing the output) and failed
    files with reasons; which were tiled. ``wording`` words what is said of each file as it ends (the command line
    names settings by their flags). ``full``: the last outputs in a row whose disk had no room
    (:meth:`check_room`)."""

    done: list[Path] = field(default_factory=list)
    tiled: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    wording: Callable[[str], str] = str
    full: list[tuple[Job, str]] = field(default_factory=list)

    def check_room(self, before_stop: Callable[[], object] = lambda: None) -> None:
        """Stop the batch (a :class:`~darkir.outputs.DiskFullError`, after ``before_stop``) where the last
        :data:`FULL_STREAK` outputs recorded found no room on their disk, on either engine: each later one would be
        restored only to fail as well."""
        full = self.full  # (the writer thread may replace it meanwhile)
        if len(full) < FULL_STREAK:
            return
        before_stop()
        job, reason = full[-1]
        raise DiskFullError(
            f"{job.target.parent}: no room left ({FULL_STREAK} outputs in a row could not be written; the last: "
            f"{reason}); stopped: make room and run again (what was restored is kept and skipped)"
        )

    def count(self) -> int:
        """How many files have been recorded."""
        return len(self.done) + len(self.skipped) + len(self.busy) + len(self.failed)

    def record(self, job: Job, outcome: Outcome, verbose: bool = False) -> None:
        """Add one job's outcome; failures and busy outputs are said on stderr as they happen."""
        self.full = [*self.full, (job, outcome.message)] if outcome.disk_full else []
        if outcome.status == "failed":
            self.failed.append((job.source, outcome.message))
            note(printable(f"darkir: failed: {self.wording(outcome.message)}", one_line=True))
        elif outcome.status == "busy":
            self.busy.append(job.target)
            note(printable(f"darkir: {self.wording(outcome.message)}", one_line=True))
        elif outcome.status == "skipped":
            self.skipped.append(job.target)
        else:
            self.done.append(job.target)
            if outcome.tiled:
                self.tiled.append(job.source)
            if verbose and outcome.message:
                note(printable(f"darkir: {job.source}: {self.wording(outcome.message)}", one_line=True))


def _reason(job: Job, exc: BaseException) -> str:
    """One line saying why a job failed, naming its file."""
    if isinstance(exc, DarkIRError):  # (most name the file: one that names none, PyAV missing say, is given its input)
        text = str(exc)
        return text if str(job.source) in text or str(job.target) in text else f"{job.source}: {text}"
    if isinstance(exc, OSError):  # reading the input (named as such by the error) or writing the output
        named = exc.filename if isinstance(exc.filename, (str, bytes, os.PathLike)) else None  # not a descriptor
        path = Path(os.fsdecode(named)) if named is not None else None
        if path == Path(job.source):
            return f"{job.source}: {exc.strerror or exc}"
        if path is not None and is_inside(job.target, path) and path != job.target:  # a folder on the way to it
            if isinstance(exc, (FileExistsError, NotADirectoryError)):
                return f"{job.target}: {path} is a file, not a folder; move it or choose another output folder"
            return f"{job.target}: {path}: {exc.strerror or exc}"
        return f"{job.target}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return f"{job.source}: out of memory; try a smaller tile or max_memory"
    return f"{job.source}: {type(exc).__name__}: {first_line(exc)}"


def _failure(job: Job, exc: Exception) -> Outcome:
    """The outcome of a job that failed with ``exc``, marked where its output's disk has no room left."""
    return Outcome("failed", _reason(job, exc), disk_full=is_disk_full(exc))


def check_output(job: Job, overwrite: bool) -> Outcome | None:
    """The job's outcome if its output rules it out before any work (a folder, a broken link, a kept file, a name
    the file system refuses)."""
    try:
        return _output_ruled_out(job, overwrite)
    except OSError as exc:  # a name too long for the file system, a folder that cannot be searched
        return Outcome("failed", _reason(job, exc))


def _output_ruled_out(job: Job, overwrite: bool) -> Outcome | None:
    """:func:`check_output` where the file system answers."""
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


def _open(job: Job, overwrite: bool, restorer: Restorer) -> _Work:
    """Check and claim the job's output and decode its image (a video is left to :func:`restore_job`), once its
    header says that it fits ``restorer``'s memory budget (decoding one that does not could take more memory than
    there is, and the process with it)."""
    work = _Work(job, outcome=None if job.is_video else check_output(job, overwrite))
    if job.is_video or work.outcome is not None:
        return work
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        work.held = Claim(job.target)
        if job.target.exists() and not overwrite:  # written since the check, by a run that has finished
            work.outcome = Outcome("skipped")
        else:
            work.image = read_image(job.source, functools.partial(check_image_fits, restorer, job.source))
    except OutputBusyError as exc:
        work.outcome = Outcome("busy", str(exc))
    except Exception as exc:  # whatever a decoder or size limit raised: this file's failure, not the batch's
        work.outcome = _failure(job, exc)
    except BaseException:  # an interrupt: the claim let go
        work.drop()
        raise
    if work.outcome is not None:
        work.drop()
    return work


def _restore(restorer: Restorer, work: _Work, overwrite: bool, codec: str, crf: int, progress: bool) -> None:
    """Restore an opened job's image (a video: the whole of it, with ``codec``/``crf``, its frames counted by a
    progress bar of their own where ``progress``)."""
    if work.outcome is not None:
        return
    if work.job.is_video:
        work.outcome = restore_job(restorer, work.job, overwrite, codec, crf, progress)
        return
    assert work.image is not None
    try:
        work.image.rgb = restorer.restore_array(work.image.rgb)
    except Exception as exc:  # out of memory, a size the model cannot take: this file's failure
        reason = f"{work.job.source}: {exc}" if isinstance(exc, DarkIRError) else _reason(work.job, exc)
        work.outcome, work.image = Outcome("failed", reason), None
        work.drop()
        return
    work.outcome = _done(restorer)


def _done(restorer: Restorer) -> Outcome:
    """A job restored, with how its (last) image was planned."""
    plan = restorer.last_plan
    return Outcome("done", plan.reason if plan is not None else "", bool(plan is not None and plan.tile))


def _finish(work: _Work, overwrite: bool, jpeg_quality: int) -> Outcome:
    """Write a restored image (a JPEG at ``jpeg_quality``) and let go of its claim; the job's outcome."""
    assert work.outcome is not None
    try:
        if work.image is not None:
            write_image(work.job.target, work.image, jpeg_quality=jpeg_quality, overwrite=overwrite)
        return work.outcome
    except OutputExistsError:
        return Outcome("skipped")
    except Exception as exc:  # a full disk, a write error: this file's failure
        return _failure(work.job, exc)
    finally:
        work.drop()


def restore_job(
    restorer: Restorer,
    job: Job,
    overwrite: bool = False,
    codec: str = "libx264",
    crf: int = 18,
    progress: bool = False,
    jpeg_quality: int = JPEG_QUALITY,
) -> Outcome:
    """Restore one job (an image, written as a JPEG at ``jpeg_quality`` where its output is one, or a video as
    ``darkir video`` does with ``codec``/``crf``, with its progress bar where ``progress``); never raises for a bad
    input or a failed write: the :class:`Outcome` says what happened (a ``jpeg_quality`` out of range is refused
    first, a DarkIRError)."""
    check_jpeg_quality(jpeg_quality)
    if not job.is_video:
        work = _open(job, overwrite, restorer)
        try:
            _restore(restorer, work, overwrite, codec, crf, progress)
        except BaseException:  # an interrupt: nothing written, the claim let go
            work.drop()
            raise
        return _finish(work, overwrite, jpeg_quality)
    early = check_output(job, overwrite)
    if early is not None:
        return early
    try:
        from darkir.infer.video import restore_video

        job.target.parent.mkdir(parents=True, exist_ok=True)
        restore_video(restorer, job.source, job.target, codec=codec, crf=crf, progress=progress, overwrite=overwrite)
    except OutputBusyError as exc:
        return Outcome("busy", str(exc))
    except OutputExistsError:
        return Outcome("skipped")
    except Exception as exc:  # whatever a decoder, codec or size limit raised: this file's failure, not the batch's
        return _failure(job, exc)
    return _done(restorer)


def clean_stale_outputs(jobs: Iterable[Job]) -> None:
    """Remove what killed runs left in the jobs' output folders (:func:`darkir.outputs.clean_stale`)."""
    for folder in sorted({job.target.parent for job in jobs}):
        clean_stale(folder)


#: Image headers read at most to count a batch's image sizes (evenly spread; the counts scaled to the whole batch).
SIZE_SAMPLE = 1000


def count_sizes(jobs: Sequence[Job]) -> Counter[tuple[int, int, int]]:
    """How many images of each shape (1, height, width), as restored (EXIF orientation applied), the image jobs
    hold, from their headers: of up to :data:`SIZE_SAMPLE` of them, evenly spread, scaled to all. Files that
    :func:`read_image` refuses (unreadable, animated, over its pixel limit) are not counted."""
    images = [job for job in jobs if not job.is_video]
    sample = images[:: max(1, -(-len(images) // SIZE_SAMPLE))]  # every k-th: at most SIZE_SAMPLE
    sizes: Counter[tuple[int, int, int]] = Counter()
    for job in sample:
        header = read_header(job.source)
        if header is None or header.refusal():
            continue
        width, height = header.displayed_size
        sizes[(1, height, width)] += 1
    scale = len(images) / max(1, len(sample))
    return Counter({shape: round(count * scale) for shape, count in sizes.items()})


def _expect_sizes(restorer: Restorer, jobs: list[Job], overwrite: bool, progress: bool) -> None:
    """Tell the Restorer how many images of each size the batch will restore (:func:`count_sizes`), so that under
    ``compile="auto"`` on a GPU it compiles for a size with images enough; say so when it does."""
    if not restorer.compiles_on_demand:
        return
    chosen = restorer.expect(count_sizes([job for job in jobs if check_output(job, overwrite) is None]))
    if chosen and progress:
        tqdm.write(compiling_note(chosen), file=sys.stderr)


def restore_files(
    restorer: Restorer,
    jobs: Iterable[Job],
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = False,
    codec: str = "libx264",
    crf: int = 18,
    overlap: bool | None = None,
    report: Report | None = None,
    jpeg_quality: int = JPEG_QUALITY,
) -> Report:
    """Restore every job in this process; one file's failure is reported and the batch goes on.

    Existing outputs are kept unless ``overwrite``; outputs another darkir run is writing are skipped; JPEG outputs
    are written at ``jpeg_quality`` (1-100). ``verbose``: say for each image whether it was restored whole or tiled.
    ``overlap``: read the next image and write the last one in their own threads while one is restored (default:
    on CUDA, where reading and writing would otherwise take longer than restoring; on the CPU the restore takes
    nearly all the time, and an image read ahead would add to the memory that ``max_memory`` plans).
    ``report``: the report to record each file in as it ends (a new one by default), which tells what was done
    before an interrupt. :data:`FULL_STREAK` outputs in a row that find no room on their disk stop the batch with a
    :class:`~darkir.outputs.DiskFullError` (each later one would be restored only to fail as well).
    """
    check_jpeg_quality(jpeg_quality)
    report = Report() if report is None else report
    jobs = list(jobs)
    clean_stale_outputs(jobs)
    overlap = restorer.device.type == "cuda" if overlap is None else overlap
    _expect_sizes(restorer, jobs, overwrite, progress)
    with progress_bar(total=len(jobs), desc="restoring", unit="file", disable=not progress) as bar:

        def finish(work: _Work) -> None:
            outcome = _finish(work, overwrite, jpeg_quality)
            report.record(work.job, outcome, verbose)
            bar.update()

        def restore(work: _Work) -> _Work:
            report.check_room(before_stop=work.drop)  # (its claim let go)
            # the file being restored, shown at once on a terminal (in a log, with the next redraw)
            bar.set_postfix_str(printable(work.job.source.name, one_line=True), refresh=stderr_is_terminal())
            try:
                _restore(restorer, work, overwrite, codec, crf, progress)
            except BaseException:  # an interrupt: nothing written, the claim let go
                work.drop()
                raise
            return work

        opened = (_open(job, overwrite, restorer) for job in jobs)
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
