"""Replacing a file in place, never leaving it cut short: checkpoints and the options files beside them.

The new content is written to ``.<name>.<pid>.tmp`` beside the file (:func:`replacing_path`), synced to disk, given
the permissions of the file it replaces and renamed onto it in one step; a failure leaves the file as it was and
says why (a full disk by name). A killed run's temporary files are removed by the next run on the same checkpoint
(:func:`clean_up_after_killed_runs`).

Results (restored images, videos, reports) go through :mod:`darkir.outputs` instead: claimed first, never replacing
a file without being asked, their temporary files named for processes on several machines. A synthetic set is made
whole in a hidden folder and renamed into place (:mod:`darkir.data.synth`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError

from darkir.errors import CheckpointError, first_line
from darkir.outputs import commit, fitting_name, is_disk_full, parent_made, pid_alive


def replace_file(path: Path, write: Callable[[str], object], overwrite: bool = True) -> Path:
    """``write(temporary file)``, then the file synced to disk and renamed onto ``path`` (its folder is made); a
    failure leaves ``path`` as it was (and no folder made for it) and raises a CheckpointError saying why (a full
    disk by name). Without ``overwrite``, a file at ``path``, one made while this was written too, is kept: an
    OutputExistsError."""
    tmp_name = str(replacing_path(path))
    with parent_made(path):
        _replace(path, tmp_name, write, overwrite)
    return path


def _replace(path: Path, tmp_name: str, write: Callable[[str], object], overwrite: bool) -> None:
    """:func:`replace_file`'s work, its folder made: ``write(tmp_name)``, synced, then renamed onto ``path``."""
    try:
        mode = _new_file_mode(path, Path(tmp_name))
        write(tmp_name)
        _set_mode(tmp_name, mode)  # safetensors writes its files readable by their owner only
        with open(tmp_name, "rb+") as handle:  # on the disk before it replaces the previous checkpoint
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp_name, path)
        else:
            commit(Path(tmp_name), path, overwrite=False)
    except (OSError, RuntimeError, SafetensorError) as exc:  # torch.save reports a full disk as a RuntimeError
        raise CheckpointError(_write_failure(path, exc)) from None
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def save_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` to ``path`` (e.g. the options beside a checkpoint): a failed write never leaves it
    empty or cut short, and the previous file stays as it was."""
    return replace_file(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _new_file_mode(path: Path, tmp: Path) -> int:
    """The permissions ``path`` is written with: those of the file it replaces, else those of a new file under the
    current umask (read off ``tmp``, created here afresh, where ``path`` is written first)."""
    tmp.unlink(missing_ok=True)
    tmp.touch(mode=0o666, exist_ok=False)  # the umask applies, as to any file open() creates
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return stat.S_IMODE(tmp.stat().st_mode)


def _set_mode(tmp: str | os.PathLike[str], mode: int) -> None:
    """Give ``tmp`` the permissions ``mode`` (kept as they are where the file system has no permissions)."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


#: The largest process id Linux gives (its ``pid_max`` limit): the widest a temporary file's name can be.
WIDEST_PID = 4194304


def replacing_path(path: Path, pid: int | None = None, shorten: bool = True) -> Path:
    """The file ``path`` is written to before it replaces ``path``: ``.<name>.<pid>.tmp`` beside it (``pid``: this
    process's), its name shortened where that or its path would be too long (:func:`~darkir.outputs.fitting_name`)
    unless not ``shorten``."""
    head, tail = ".", f".{os.getpid() if pid is None else pid}.tmp"
    return path.with_name(fitting_name(head, path.name, tail, path.parent) if shorten else f"{head}{path.name}{tail}")


#: A name :func:`replacing_path` gives (unshortened): the name of the file it replaces, and the writer's process id.
_REPLACING_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.tmp")


def replacing_owner(name: str) -> tuple[str, int] | None:
    """The name of the file that the temporary file named ``name`` was to replace, and the id of the process that
    wrote it; None for a name :func:`replacing_path` does not give."""
    match = _REPLACING_NAME.fullmatch(name)
    return (match["name"], int(match["pid"])) if match else None


def _remove_stale_temporaries(targets: list[Path], run_files: bool) -> list[Path]:
    """Remove the temporary files of ``targets`` (with ``run_files``, of their step snapshots ``<stem>_step<N>`` and
    options files ``.yml`` too) whose writer, a process of this machine, is gone (left by a killed run); returns
    them."""
    removed = []
    for target in targets:
        stem, suffix = re.escape(target.stem), re.escape(target.suffix)
        names = re.compile(rf"{stem}(_step\d+)?({suffix}|\.yml)" if run_files else f"{stem}{suffix}")
        for path in target.parent.glob(".*.tmp"):  # the temporary files of darkir.replacing
            owner = replacing_owner(path.name)
            if owner and names.fullmatch(owner[0]) and not pid_alive(owner[1]):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def clean_up_after_killed_runs(targets: list[Path], run_files: bool = True) -> None:
    """Remove the temporary checkpoint files that killed runs left beside ``targets`` (those of a training run's
    step snapshots and options files too, unless not ``run_files``: ``darkir convert`` writes one file, and may run
    beside a training run of the same stem), and say so."""
    removed = _remove_stale_temporaries(targets, run_files)
    if removed:
        names = ", ".join(str(path) for path in removed)
        print(f"darkir: removed {len(removed)} temporary file(s) that a killed run left: {names}", file=sys.stderr)


#: Free bytes below which a failed write is taken for a full disk (torch.save does not report the errno).
_FULL_DISK_BYTES = 1 << 20


def _write_failure(path: Path, exc: BaseException) -> str:
    """One line on why writing ``path`` failed (called while its temporary file still holds the space it took)."""
    kept = "; the previous one is kept" if path.exists() else ""
    if isinstance(exc, OSError):
        full = is_disk_full(exc)
    else:  # safetensors names the OS error in its message, torch.save does not
        full = "No space left on device" in str(exc) or shutil.disk_usage(path.parent).free < _FULL_DISK_BYTES
    if full:
        return f"no space left on device writing {path}{kept}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
    return f"cannot write {path}: {reason}{kept}"
