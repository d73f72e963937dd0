"""A training run's files on disk, path by path (:mod:`darkir.train.runpaths` applies the options to them): the lock
that gives a ``save.path`` to one run, whether a path can be written, backups of an earlier run, and log lines that
are written whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from darkir.errors import DarkIRError
from darkir.outputs import nearest_existing, release_lock, take_lock


class RunBusyError(DarkIRError):
    """Another training run holds this ``save.path``."""


def run_lock_path(last: Path) -> Path:
    """The lock file of the run whose last checkpoint is ``last``: named by its stem, as the files beside it that
    the run writes are (``<stem>.yml``, ``<stem>_logs``), so that ``run/m.pt`` and ``run/m.pth`` are one claim."""
    return last.with_name(f".{last.stem}.darkir-run")


def legacy_lock_path(last: Path) -> Path:
    """The lock file darkir before a2907f9 named the run of ``last`` by (its whole name): a run of such a version
    still going when darkir is upgraded holds this one, and one started beside a current run finds it held."""
    return last.with_name(f".{last.name}.darkir-run")


def log_lock_path(log_file: Path) -> Path:
    """The lock file of the run writing the JSONL log ``log_file`` in a ``train.log_dir``: named apart from every
    :func:`run_lock_path` (a ``save.path`` of stem ``train`` may lie in that folder)."""
    return log_file.with_name(f".{log_file.name}.darkir-log")


@contextlib.contextmanager
def hold_run(target: Path, key: str = "save.path", required: bool = True, lock: Path | None = None) -> Iterator[None]:
    """Hold the run lock of ``target`` (a run's ``key``: its last checkpoint, its best one, or the JSONL log in its
    ``train.log_dir``) while the block runs; raises :class:`RunBusyError` naming the process holding it. ``lock``:
    the lock file (default :func:`run_lock_path`). Where it cannot be made (a full disk), that is an error unless not
    ``required``: the block then runs unheld.

    The lock is an ``flock`` on :func:`run_lock_path`: it dies with its process, so a killed run's lock file is stale
    and simply taken over.
    """
    lock = lock or run_lock_path(target)
    failure: OSError | None = None
    made = _missing_folders(target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = take_lock(lock)
    except OSError as exc:
        failure = exc
    if failure is not None:
        _remove_if_empty(made)
        if required:
            raise DarkIRError(
                f"{target}: cannot take this {key} for the run ({lock}: {failure.strerror or failure}); nothing was "
                "written"
            )
        yield
        return
    if fd is None:
        holder = ""
        with contextlib.suppress(OSError):
            holder = lock.read_text(errors="replace").strip()
        raise RunBusyError(
            f"{target}: another training run ({holder or 'a process that just started'}) is using this {key}; wait for "
            f"it to end or set another {key}"
        )
    try:
        with contextlib.suppress(OSError):  # who holds it, for the message of a run refused (not on a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        release_lock(lock, fd)
        _remove_if_empty(made)  # a run refused after the lock (its data, say) leaves no folder it made


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and the folders above it that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def save_problem(path: Path, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or a folder with ``folder``) cannot be written, or None if it can: a file path that is a
    folder, a folder path that is not one, something not a folder in the way, or a place where nothing can be made
    (tried with an empty temporary file, removed at once). Makes no folder."""
    place = path if folder else path.parent
    try:
        if path.is_dir() != folder and (path.exists() or path.is_symlink()):
            return f"{path} is a folder, not a file" if path.is_dir() else f"{path} is a file, not a folder"
        existing = nearest_existing(place)
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        fd, name = tempfile.mkstemp(prefix=".darkir-check-", dir=existing)
    except OSError as exc:
        return f"cannot write in {place}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(name)
    return None


def back_up(paths: list[Path]) -> list[Path]:
    """Move ``paths`` into a new ``backup-<date>-<time>/`` folder beside each; returns the folders.

    Every move is a rename within one folder: nothing is copied, no two files share a name (each folder's files had
    distinct names already) and no move crosses file systems. It is all or nothing: if one move fails, those done
    are undone and :class:`DarkIRError` says which failed.
    """
    folders = _new_folders(sorted({path.parent for path in paths}))
    moved: list[tuple[Path, Path]] = []
    try:
        for path in paths:
            target = folders[path.parent] / path.name
            os.rename(path, target)
            moved.append((path, target))
    except OSError as exc:
        for path, target in reversed(moved):
            os.rename(target, path)
        for folder in folders.values():
            folder.rmdir()
        raise DarkIRError(
            f"cannot move {path} to {target}: {exc.strerror or exc}; the earlier run was left as it was"
        ) from None
    return list(folders.values())


def _new_folders(parents: list[Path]) -> dict[Path, Path]:
    """A new, empty ``backup-<stamp>`` folder in each of ``parents`` (one stamp, made unique in all of them)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name, count = f"backup-{stamp}", 1
    while any((parent / name).exists() for parent in parents):
        count += 1
        name = f"backup-{stamp}-{count}"
    made: dict[Path, Path] = {}
    try:
        for parent in parents:
            (parent / name).mkdir()
            made[parent] = parent / name
    except OSError as exc:
        for folder in made.values():
            folder.rmdir()
        raise DarkIRError(
            f"cannot make the backup folder {parent / name}: {exc.strerror or exc}; the earlier run was left as it was"
        ) from None
    return made


def append_line(path: Path, line: str) -> None:
    """Append ``line`` to ``path`` in one write; a failed or short write is cut off again, so that the file never ends
    in a partial line, and raises :class:`OSError`."""
    data = f"{line}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
