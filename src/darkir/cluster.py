"""Batch restoration on a Ray cluster: ``darkir restore --engine ray`` and :func:`restore_dataset`.

The driver plans the jobs exactly as the local engine does (:func:`darkir.infer.jobs.plan_jobs`), drops those
whose output exists (so a killed job resumes where it stopped), and hands Ray Data one small row per file
(source and target paths, never pixels). A fixed pool of actors each builds the model once and restores its
rows with :func:`darkir.infer.files.restore_job`, the local engine's own per-file step: files are read and
written by the workers themselves, through the same claims and atomic writes, images are tiled by the same
memory rule (``max_memory`` is per worker), and a failed file is reported and the others go on. A video is one
row: its frames are restored in order by one worker.

Outputs equal the local engine's bit for bit when each worker runs as many threads as the local run
(``threads``; floating-point sums depend on the thread count, about one value in 10^5 by one 8-bit level) at the
same precision (``precision="auto"`` is decided per node: name one on a cluster of mixed CPUs). Workers that
reserve no GPU run on the CPU. The workers need darkir installed on every node and the input and output folders on
a filesystem they share, with working file locks (NFS, or Lustre mounted with ``flock``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from torch import nn

from darkir import opencv
from darkir.errors import DarkIRError, first_line, warn
from darkir.imageio import check_jpeg_quality
from darkir.infer.defaults import DEFAULT_TILE, JPEG_QUALITY
from darkir.infer.exposure import check_exposure
from darkir.infer.files import (
    Outcome,
    Report,
    check_output,
    clean_stale_outputs,
    count_sizes,
    restore_job,
)
from darkir.infer.jobs import Job, output_suffix, plan_jobs
from darkir.infer.restorer import RestoreSettings, check_compile
from darkir.infer.tiling import check_tiling
from darkir.infer.video_output import check_video_encoding
from darkir.outputs import DiskFullError, ensure_writable_dir
from darkir.progress import progress_bar
from darkir.runtime import check_precision, check_threads


@dataclass(frozen=True)
class WorkerSettings(RestoreSettings):
    """How every worker restores: the Restorer's settings (:class:`RestoreSettings`), its thread count (None: the
    CPUs it reserves), whether outputs are replaced, the JPEG quality, the video encoder, and the images of each
    shape (batch, height, width) it can expect (its share of the run's, for ``compile="auto"``:
    :meth:`Restorer.expect`), and how many workers at most share the memory it plans in (its node's, or its GPU's):
    without ``max_memory``, each plans within its share of the default budget (:meth:`MemoryPlanner.share_memory`)."""

    threads: int | None = None
    overwrite: bool = False
    codec: str = "libx264"
    crf: int = 18
    jpeg_quality: int = JPEG_QUALITY
    expected: tuple[tuple[tuple[int, int, int], int], ...] = ()
    sharers: int = 1


class RestoreWorker:
    """A Ray Data actor: builds the Restorer once, then restores one batch of job rows per call."""

    def __init__(self, model: Any, settings: WorkerSettings) -> None:
        import ray
        import torch

        torch.set_num_threads(settings.threads)
        opencv.use_one_thread()
        model = ray.get(model)  # the driver's one copy in the object store
        self.settings = settings
        self.restorer = settings.restorer(model)
        if self.restorer.planner is not None:  # first: the shapes to compile are those this share restores whole
            where = "GPU" if self.restorer.device.type == "cuda" else "node"
            self.restorer.planner.share_memory(settings.sharers, where)
        self.restorer.expect(dict(settings.expected))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [
            restore_job(
                self.restorer,
                Job(Path(source), Path(target)),
                self.settings.overwrite,
                self.settings.codec,
                self.settings.crf,
                jpeg_quality=self.settings.jpeg_quality,
            )
            for source, target in zip(batch["source"], batch["target"], strict=True)
        ]
        return {
            "index": np.asarray(batch["index"]),
            "status": np.array([o.status for o in outcomes]),
            "message": np.array([o.message for o in outcomes]),
            "tiled": np.array([o.tiled for o in outcomes]),
            "disk_full": np.array([o.disk_full for o in outcomes]),
        }


def _ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise DarkIRError("the Ray engine needs Ray Data: pip install 'darkir[ray]'") from exc
    return ray


#: The port a Ray Client server listens on where a ``ray://`` address names none.
RAY_CLIENT_PORT = 10001


def _check_reachable(address: str) -> None:
    """Fail at once, naming the address, when a ``host:port`` cluster address (or a Ray Client's
    ``ray://host[:port]``, port 10001 by default) does not answer (Ray itself would retry for minutes, or half a
    minute for a client)."""
    target = address.removeprefix("ray://")
    if target != address and not target.rpartition(":")[2].isdigit():
        target = f"{target}:{RAY_CLIENT_PORT}"
    host, _, port = target.rpartition(":")
    if "://" in target or not host or not port.isdigit():
        return  # "auto", "local", another scheme: Ray resolves those
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()  # "[::1]:6379": IPv6 in brackets
    except OSError as exc:
        raise DarkIRError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; start one there with "
            "`ray start --head`, or leave out the address for a local cluster"
        ) from None


def _cluster_address(address: str | None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``; None for a new local one."""
    return address or os.environ.get("RAY_ADDRESS") or None


def preflight(address: str | None) -> None:
    """Fail before any work when Ray Data is missing or the cluster to join (:func:`_cluster_address`) does not
    answer."""
    if address is not None and not address.strip():
        raise DarkIRError("the Ray cluster's address is empty (an unset variable?); leave it out for a local cluster")
    _ray()
    joined = _cluster_address(address)
    if joined:
        _check_reachable(joined)


def _connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address`` (None: ``RAY_ADDRESS`` or a new local one); True if this call started it."""
    if ray.is_initialized():
        _note_other_address(ray, address)
        return False
    joined = _cluster_address(address)
    if joined:
        _check_reachable(joined)
    local = address is None and not os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": True}
    if local:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DarkIRError(f"cannot reach the Ray cluster at {joined}: {exc}") from exc
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return True


def _note_other_address(ray: ModuleType, address: str | None) -> None:
    """Warn where ``address`` names another cluster than the one Ray is already connected to in this process (whose
    connection is used: Ray joins one cluster per process)."""
    try:
        current = ray.get_runtime_context().gcs_address
    except (AttributeError, RuntimeError):  # a client connection, say: the address is unknown
        current = None
    if address and address != "auto" and not (current and _same_endpoint(address, current)):
        where = f" at {current}" if current else ""
        warn(
            f"Ray is already connected in this process{where}: restoring on that cluster, not at {address} "
            "(call ray.shutdown() first to join another)"
        )


def _endpoint_hosts(host: str) -> set[str]:
    """The IP addresses ``host`` stands for; a loopback one (IPv4 or IPv6) stands for this machine's own too."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host.strip("[]"), None)}
    except (OSError, UnicodeError):
        return {host}
    if any(ipaddress.ip_address(ip.partition("%")[0]).is_loopback for ip in found):
        with contextlib.suppress(OSError, UnicodeError):
            found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        found.add("this machine")
    return found


def _same_endpoint(address: str, other: str) -> bool:
    """Whether two ``host:port`` addresses name the same server (``localhost:6379`` is ``127.0.0.1:6379``, and this
    machine's own address)."""
    if address == other:
        return True
    (host, _, port), (other_host, _, other_port) = address.rpartition(":"), other.rpartition(":")
    return port == other_port and bool(host) and bool(_endpoint_hosts(host) & _endpoint_hosts(other_host))


@contextmanager
def _session(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Connected to the cluster for the block (a local one started here is shut down after). A SIGTERM handler of
    the caller's (``darkir restore``'s stops as on Ctrl-C, status 143) stays in place: ``ray.init`` puts in one that
    exits with status 15 amid stack dumps."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM)
    try:
        started = _connect(ray, address)
    except BaseException:  # Ctrl-C or SIGTERM amid ray.init: the processes it had started go too
        _shut_down(ray, main)
        raise
    finally:
        if main and callable(handler):
            signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if started:
            _shut_down(ray, main)


def _shut_down(ray: ModuleType, main: bool) -> None:
    """``ray.shutdown()``, which a second SIGTERM cannot cut short (that would leave Ray's processes running)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN) if main else None
    try:
        ray.shutdown()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _pool_size(ray: ModuleType, workers: int | None, cpus: float, gpus: float, jobs: int) -> int:
    """``workers``, or as many as the cluster's CPUs (and GPUs, with ``gpus``) hold, never more than the jobs; an
    error where the cluster has no room for one worker (Ray would wait for it for ever), also with ``workers``."""
    resources = ray.cluster_resources()
    room = int(resources.get("CPU", 1) // cpus)
    if gpus:
        room = min(room, int(resources.get("GPU", 0) // gpus))
    if room < 1:
        need = f"{cpus} CPU and {gpus} GPU" if gpus else f"{cpus} CPU"
        raise DarkIRError(f"the Ray cluster has no room for one worker of {need}: {resources}")
    return max(1, min(room if workers is None else workers, jobs))


def _sharers(ray: ModuleType, size: int, cpus: float, gpus: float) -> int:
    """How many of a pool of ``size`` workers can share the memory one of them plans in: a GPU's, where they reserve
    GPUs (1 / ``gpus`` of them fit one), else a node's (as many as the most CPUs of a node hold)."""
    if gpus:
        return max(1, min(size, _fits(1.0, gpus)))
    nodes = [node.get("Resources", {}).get("CPU", 0) for node in ray.nodes() if node.get("Alive", True)]
    return max(1, min(size, _fits(max(nodes, default=cpus), cpus)))


def _fits(room: float, share: float) -> int:
    """How many shares of ``share`` fit ``room``, as Ray counts them (``1 // 0.2`` is 4.0 in floating point: Ray fits
    5)."""
    return int(room / share + 1e-6)


def restore_jobs(
    model: nn.Module,
    jobs: Sequence[Job],
    settings: WorkerSettings = WorkerSettings(),
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
    verbose: bool = False,
    report: Report | None = None,
) -> Report:
    """Restore planned ``jobs`` on Ray with a pool of ``workers`` actors; the same :class:`Report` as the local
    engine (``report``: one to record each file in as it ends). Outputs that exist (and are not to be overwritten)
    are skipped, and outputs ruled out (a folder, a name too long) failed, before Ray is even started."""
    report = Report() if report is None else report
    clean_stale_outputs(jobs)
    pending = _to_restore(jobs, report, settings.overwrite)
    if cpus_per_worker <= 0 or gpus_per_worker < 0 or (workers is not None and workers < 1):
        raise DarkIRError("workers must be at least 1, cpus_per_worker above 0 and gpus_per_worker at least 0")
    settings = _for_pool(settings, cpus_per_worker, gpus_per_worker)
    if not pending:
        return report
    before = {job.target: _stamp(job.target) for job in pending} if settings.overwrite else {}  # (else none exist)
    ray, read = _ray(), set()
    try:
        with _session(ray, address):
            pending.sort(key=lambda job: not job.is_video)  # long videos first, images fill in around them
            size = _pool_size(ray, workers, cpus_per_worker, gpus_per_worker, len(pending))
            settings = dataclasses.replace(settings, sharers=_sharers(ray, size, cpus_per_worker, gpus_per_worker))
            if settings.compile == "auto" and gpus_per_worker:  # each worker's share of the images of each size
                shares = ((shape, -(-count // size)) for shape, count in count_sizes(pending).items())
                settings = dataclasses.replace(settings, expected=tuple(shares))
            # absolute: workers of a cluster started elsewhere run in its working folder, not the caller's
            rows = [
                {"index": i, "source": str(job.source.absolute()), "target": str(job.target.absolute())}
                for i, job in enumerate(pending)
            ]
            # small blocks balance the load and bound what a dying worker's block redoes; 32 per worker bounds overhead
            blocks = min(len(rows), 32 * size)
            dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
                RestoreWorker,
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None,
                fn_constructor_kwargs={"model": ray.put(copy.deepcopy(model).cpu().eval()), "settings": settings},
            )
            _collect(_results(dataset, len(rows), progress, size), pending, report, read, verbose)
    except (KeyboardInterrupt, DiskFullError):
        _record_unread(report, pending, read, before)
        raise
    finally:  # a stopped run's workers are gone now: their part and lock files go too
        clean_stale_outputs(pending)
    return report


def _collect(
    results: Iterator[dict[str, Any]], pending: Sequence[Job], report: Report, read: set[int], verbose: bool
) -> None:
    """Record in ``report`` the outcome of each of the workers' ``results`` as it arrives (``read``: the indexes in
    ``pending`` of those read); :data:`~darkir.infer.files.FULL_STREAK` outputs in a row that find no room on their
    disk stop the run, the job closed with them (a cluster started here is shut down)."""
    with contextlib.closing(results):
        for row in results:
            read.add(int(row["index"]))
            job = pending[int(row["index"])]
            message = _as_given(str(row["message"]), job)
            outcome = Outcome(str(row["status"]), message, bool(row["tiled"]), bool(row["disk_full"]))
            report.record(job, outcome, verbose)
            report.check_room()


def _as_given(message: str, job: Job) -> str:
    """A worker's ``message`` with the absolute paths it was given (:func:`restore_jobs`' rows) written as the job
    names them, as the local engine reports them."""
    for path in (job.source, job.target):
        message = message.replace(str(path.absolute()), str(path))
    return message


def _to_restore(jobs: Sequence[Job], report: Report, overwrite: bool) -> list[Job]:
    """The jobs for the workers; those their output rules out (it exists, or cannot be written) recorded in
    ``report``."""
    pending = []
    for job in jobs:
        ruled_out = check_output(job, overwrite)
        if ruled_out is None:
            pending.append(job)
        else:
            report.record(job, ruled_out)
    return pending


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """The file at ``path`` as :func:`_record_unread` tells a new one from an old one (inode, change time in ns,
    size: an output is written to a new file that replaces the old); None where there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_ctime_ns, status.st_size


def _record_unread(
    report: Report, pending: Sequence[Job], read: set[int], before: dict[Path, tuple[int, int, int] | None]
) -> None:
    """Record as restored the outputs that the workers of an interrupted run (gone now) wrote but whose rows were
    never read: those of ``pending`` not in ``read`` whose file is there and is not the one ``before`` (their
    :func:`_stamp` as the run began) found, which ``--overwrite`` would have replaced."""
    for index, job in enumerate(pending):
        now = _stamp(job.target)
        if index not in read and now is not None and now != before.get(job.target):
            report.record(job, Outcome("done", "", False))


def _for_pool(settings: WorkerSettings, cpus: float, gpus: float) -> WorkerSettings:
    """Settings as each worker applies them: a worker without a GPU runs on the CPU (Ray no longer hides a node's
    GPUs from such workers), and runs as many threads as the CPUs it reserves unless told otherwise."""
    device = settings.device
    if not gpus:
        if device.startswith("cuda"):
            raise DarkIRError(f"--device {device} with --engine ray needs --gpus-per-worker (e.g. 1)")
        device = "cpu"
    return dataclasses.replace(settings, device=device, threads=settings.threads or max(1, round(cpus)))


def _results(dataset: Any, total: int, progress: bool, size: int) -> Iterator[dict[str, Any]]:
    workers = "1 Ray worker" if size == 1 else f"{size} Ray workers"
    with progress_bar(total=total, desc=f"restoring on {workers}", unit="file", disable=not progress) as bar:
        try:
            for row in dataset.iter_rows():
                bar.update()
                yield row
        except Exception as exc:  # the job could not go on: say why; finished outputs are kept
            message = f"the Ray job stopped: {first_line(exc)}. Finished outputs are kept and a rerun skips them"
            raise DarkIRError(message) from exc


def _check_paths(sources: list[str], output: str | os.PathLike[str]) -> None:
    """Refuse, before Ray starts, no inputs and an empty output path (which would mean the current folder, as an
    unset variable gives it)."""
    if not sources:
        raise DarkIRError("no inputs to restore; give files, folders or globs")
    if not os.fspath(output):
        raise DarkIRError("the output folder is an empty path (an unset variable?); name a folder ('.' for this one)")


def restore_dataset(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    weights: str | os.PathLike[str] | nn.Module | None = None,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    suffix: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str = DEFAULT_TILE,
    overlap: int | None = None,
    max_memory: int | str | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    codec: str = "libx264",
    crf: int = 18,
    exposure: float = 0.0,
    compile: bool | str = "auto",
    progress: bool = True,
    jpeg_quality: int = JPEG_QUALITY,
) -> Report:
    """Restore image and video files, folders (recursive; relative paths kept) and globs into ``output`` on Ray.

    ``weights``: a packaged name, a checkpoint path or a loaded model (default: the default weights).
    ``address``: the cluster to join (default: ``RAY_ADDRESS``, else a new local cluster). ``workers`` actors
    (default: as many as the cluster's CPUs, or GPUs with ``gpus_per_worker``) each reserve ``cpus_per_worker``
    CPUs and run ``threads`` (default ``cpus_per_worker``) torch threads. The other settings are
    :class:`~darkir.infer.Restorer`'s and ``darkir restore``'s. Inputs that yield nothing are reported in
    ``Report.failed`` beside the files that failed.
    """
    from darkir.models import create_model

    sources = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(i) for i in inputs]
    _check_paths(sources, output)
    suffix = output_suffix(suffix, f"suffix {suffix!r}")
    check_video_encoding(codec, crf)
    jpeg_quality = check_jpeg_quality(jpeg_quality)
    output = Path(output)
    check_tiling(tile, overlap, max_memory)
    check_precision(precision)
    exposure = check_exposure(exposure)
    check_compile(compile)
    threads = check_threads(threads)
    preflight(address)
    jobs, problems = plan_jobs(sources, output, suffix, videos=True)
    model = weights if isinstance(weights, nn.Module) else create_model(weights, require_weights=True)
    if jobs:
        ensure_writable_dir(output)
    restore = RestoreSettings(device, precision, tile, overlap, max_memory, compile=compile, exposure=exposure)
    settings = WorkerSettings(
        **vars(restore), threads=threads, overwrite=overwrite, codec=codec, crf=crf, jpeg_quality=jpeg_quality
    )
    report = restore_jobs(model, jobs, settings, address, workers, cpus_per_worker, gpus_per_worker, progress)
    report.failed.extend((path, f"{path}: {reason}") for path, reason in problems)
    return report
