"""Writing result files without ever losing data: claims, temporary files, verification, atomic renames.

Every result darkir writes (restored images and videos, scores, reports) goes through :func:`claim` and
:func:`write_atomic` (a checkpoint or options file, which its run replaces in place, through :mod:`darkir.replacing`):

- the output is **claimed** first with an exclusive lock on ``.<name>.darkir-lock`` beside it. A second
  run (another process, another terminal) that wants the same file finds it claimed and skips it;
  a claim dies with its process, so a killed run never blocks later ones;
- the bytes go to a temporary file in the target folder, are flushed and fsynced, checked (size, and
  optionally that they decode), and only then renamed onto the target in one atomic step. Without
  ``overwrite`` the rename refuses to replace a file that appeared meanwhile;
- on any error the temporary file is removed and an existing output is left untouched;
- a run killed outright (SIGKILL, power loss) can leave its temporary files and lock files behind:
  :func:`clean_stale` removes those whose owner is gone when a later run writes into the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from darkir.errors import DarkIRError


class OutputError(DarkIRError):
    """An output could not be written; nothing was replaced."""


class DiskFullError(OutputError):
    """The output's file system has no room left (no space, or the quota reached)."""


#: The errors of a file system with no room left.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says that a file system has no room left (a :class:`DiskFullError`, or an error of
    :data:`FULL_ERRNOS`: an OSError, or FFmpeg's)."""
    return isinstance(exc, DiskFullError) or getattr(exc, "errno", None) in FULL_ERRNOS


def output_error(target: Path, exc: OSError, what: str = "nothing replaced") -> OutputError:
    """The :class:`OutputError` (a :class:`DiskFullError` where there is no room) of writing ``target`` failing with
    ``exc``."""
    kind = DiskFullError if is_disk_full(exc) else OutputError
    return kind(f"{target}: {exc.strerror or exc}; {what}")


class OutputBusyError(OutputError):
    """Another running darkir process is writing this output."""


class OutputExistsError(OutputError):
    """The output exists and replacing it was not asked for."""


#: The longest file name, in bytes, that the common file systems take (ext4, XFS, Btrfs, APFS, NTFS in UTF-16).
NAME_MAX = 255
#: The longest path, in bytes, that Linux's system calls take, its terminating NUL included.
PATH_MAX = 4096


def lock_path(target: Path) -> Path:
    """The lock file that claims ``target``: ``.<name>.darkir-lock``, the name shortened where that would be too
    long (:func:`fitting_name`)."""
    return target.with_name(fitting_name(".", target.name, ".darkir-lock", target.parent))


def _pid_namespace() -> str | None:
    """The number of this process's pid namespace (a container has its own, where pids repeat), or None."""
    try:
        return os.readlink("/proc/self/ns/pid").rpartition("[")[2].rstrip("]") or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` of this machine started, in clock ticks since boot (``/proc/<pid>/stat``); None where it
    is gone or this cannot be read. With the pid it names one process, however its pid is reused (a container's
    entry point is pid 1 at every start)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])  # field 22; the command name before it may hold spaces
    except (OSError, ValueError, IndexError):
        return None


def temporary_path(target: Path) -> Path:
    """The temporary file a result is written to before it is renamed onto ``target`` (same suffix; named by
    :func:`owner_tag`, so that processes on several machines writing one shared folder never share one, and
    :func:`clean_stale` tells a killed run's from a live one's; the stem shortened where the name would be too long,
    :func:`fitting_name`)."""
    return target.with_name(fitting_name(".", target.stem, f".{owner_tag()}.darkir-part{target.suffix}", target.parent))


def owner_tag() -> str:
    """This process as the files and folders it writes in place of a result name it, among the machines that may
    write one shared folder: ``<host>-<pid>``, then ``@<start>`` and ``n<pid namespace>`` where they can be read
    (``@`` and ``n`` cannot follow the digits of a host name's ``-<n>``, so that the tags of hosts such as
    ``worker`` and ``worker-1`` are never read one for the other). :func:`local_owner` reads it back."""
    start, namespace = process_start(os.getpid()), _pid_namespace()
    identity = "" if start is None else f"@{start}" + ("" if namespace is None else f"n{namespace}")
    return f"{socket.gethostname()}-{os.getpid()}{identity}"


def local_owner() -> re.Pattern[str]:
    """What matches an :func:`owner_tag` of this machine (its host name), or an older darkir's ``<host>-<pid>``;
    :func:`owner_is_gone` judges a match."""
    return re.compile(rf"{re.escape(socket.gethostname())}-(\d+)(?:@(\d+)(?:n(\d+))?)?")


def owner_is_gone(owner: re.Match[str]) -> bool | None:
    """Whether the process a match of :func:`local_owner` names has ended (its pid free, or another process's now);
    None where it is of another pid namespace (another container of this host name), which this one cannot tell."""
    pid, start, namespace = int(owner.group(1)), owner.group(2), owner.group(3)
    if namespace not in (None, _pid_namespace()):
        return None
    if not pid_alive(pid):
        return True
    return start is not None and process_start(pid) not in (None, int(start))


def fitting_name(head: str, name: str, tail: str, folder: Path) -> str:
    """``head + name + tail``, or, where that is over :data:`NAME_MAX` bytes (an output's name of 230 bytes is
    legal; its lock file's would not be) or would make its path in ``folder`` over :data:`PATH_MAX` (an output's
    path of 4,070 bytes is legal; its temporary file's would not be), with ``name`` cut short and a digest of it
    added, so that the name stays one per output."""
    limit = min(NAME_MAX, PATH_MAX - 2 - len(os.fsencode(str(folder))))  # (the "/" before the name, the NUL after)
    whole = f"{head}{name}{tail}"
    if len(os.fsencode(whole)) <= limit:
        return whole
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    room = limit - len(os.fsencode(f"{head}~{digest}{tail}"))
    short = os.fsdecode(os.fsencode(name)[: max(0, room)])  # the file system's bytes, cut where they are
    return f"{head}{short}~{digest}{tail}"


#: The descriptors of the locks this process holds (:func:`take_lock`), which a forked child closes, by the process
#: that took each.
_HELD_LOCKS: dict[int, int] = {}


def take_lock(lock: Path) -> int | None:
    """An open descriptor holding the exclusive ``flock`` of the file ``lock`` (made if missing), or None if another
    process holds it. The lock dies with its process, not with its forked children (data loader workers, which
    outlived a killed run by seconds, holding its claims: :func:`_close_held_locks`); release it with
    :func:`release_lock`."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                _close_held_locks_in_children()
                _HELD_LOCKS[fd] = os.getpid()
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder finished and removed the lock between our open and flock: take a fresh one


@functools.cache
def _close_held_locks_in_children() -> None:
    """Have every child this process forks close the descriptors of the locks it holds (once per process)."""
    os.register_at_fork(after_in_child=_close_held_locks)


def _close_held_locks() -> None:
    """Close, in a forked child, its copies of its parent's lock descriptors: the parent alone holds the locks (an
    ``flock`` lasts while any copy of its descriptor is open; closing a copy does not release it)."""
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


def release_lock(lock: Path, fd: int) -> None:
    """Remove the lock file and let go of the lock that :func:`take_lock` gave (a lock file that cannot be removed, in
    a folder that keeps what is made in it, is left: no one holds it). Nothing in a forked child that runs on into
    its parent's release: the lock and its file are the parent's, the descriptor closed at the fork."""
    if _HELD_LOCKS.pop(fd, None) != os.getpid():
        return
    try:
        with contextlib.suppress(OSError):
            os.unlink(lock)
    finally:
        os.close(fd)


class Claim:
    """An exclusive claim on one output file for this process, held until :meth:`release` (which may be called
    from any thread, and more than once)."""

    def __init__(self, target: Path) -> None:
        """Claim ``target``; raises :class:`OutputBusyError` if another process holds it, :class:`OutputError` if
        its folder cannot be written."""
        self.lock = lock_path(target)
        try:
            fd = take_lock(self.lock)
        except OSError as exc:  # a folder that is missing, read-only or full
            kind = DiskFullError if is_disk_full(exc) else OutputError
            raise kind(f"{target}: cannot write in {target.parent} ({exc.strerror or exc})") from None
        if fd is None:
            raise OutputBusyError(f"{target}: another darkir run is writing this file; skipped")
        self._fd: int | None = fd
        self._releasing = threading.Lock()

    def release(self) -> None:
        """Let go of the claim (nothing if it is already released)."""
        with self._releasing:
            fd, self._fd = self._fd, None
        if fd is not None:
            release_lock(self.lock, fd)


@contextlib.contextmanager
def claim(target: Path) -> Iterator[None]:
    """Hold an exclusive :class:`Claim` on ``target`` within the block."""
    held = Claim(target)
    try:
        yield
    finally:
        held.release()


@contextlib.contextmanager
def holding_folder(marker: Path, what: str) -> Iterator[None]:
    """Hold the claim on ``marker``, the file that marks a results folder as a run's (test-unpaired's ``stats.csv``,
    test's triplet note), within the block, so that a second run into the same folder is refused at once (an
    :class:`OutputError` naming the folder and ``what`` the other run writes there) instead of removing the first
    run's results as an earlier run's."""
    try:
        held = Claim(marker)
    except OutputBusyError:
        raise OutputError(_busy_folder(marker, what)) from None
    try:
        yield
    finally:
        held.release()


def refuse_held_folder(marker: Path, what: str) -> None:
    """Refuse, before a run looks into a results folder, one that another run holds (:func:`holding_folder`): what
    it finds there is that run's work in progress, not an earlier run's results. Creates no file."""
    lock = lock_path(marker)
    if not lock.exists():
        return
    fd = take_lock(lock)
    if fd is None:
        raise OutputError(_busy_folder(marker, what))
    release_lock(lock, fd)  # nobody held it: a killed run's


def _busy_folder(marker: Path, what: str) -> str:
    return f"{marker.parent}: another darkir run is writing {what} there; wait for it to end or choose another folder"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_unheld_lock(lock: Path) -> bool:
    """Remove ``lock`` if nobody holds it, while holding it ourselves (so that no claim is taken in between)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(lock)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


#: A temporary file of another machine's untouched for this long is a killed run's (a live run writes its output as
#: it goes; a container restarted under a new host name can tell its old files by nothing else).
FOREIGN_PART_AGE_S = 24 * 3600


def left_by_killed_run(path: Path, owner: re.Match[str] | None) -> bool:
    """Whether the temporary file or folder ``path`` that the process ``owner`` names (a match of
    :func:`local_owner`; None: another machine's) is a killed run's: one of this machine's (and pid namespace's)
    whose process is gone (:func:`owner_is_gone`), or another machine's or container's untouched (written, or
    linked; a folder: nor anything made in it or in its folders) for :data:`FOREIGN_PART_AGE_S`."""
    gone = None if owner is None else owner_is_gone(owner)
    if gone is not None:
        return gone
    try:
        folders = [path, *(Path(top) / name for top, names, _ in os.walk(path) for name in names)]
        touched = max(max(status.st_mtime, status.st_ctime) for status in map(os.lstat, folders))
    except OSError:
        return False
    return time.time() - touched > FOREIGN_PART_AGE_S


def clean_stale(folder: Path) -> list[Path]:
    """Remove the leftovers of killed runs from ``folder``: temporary files of a process that is gone
    (:func:`left_by_killed_run`), and lock files nobody holds. Files of live runs are kept. Returns what went.

    A run that opens a lock file just as it is removed notices and takes a fresh one (:func:`claim`).
    """
    mine = re.compile(rf"\.{local_owner().pattern}\.darkir-part")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name, path = entry.name, Path(entry.path)
        if not name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        if ".darkir-part" in name and left_by_killed_run(path, mine.search(name)):
            with contextlib.suppress(OSError):  # gone meanwhile, or kept by its folder (chattr +a)
                path.unlink()
                removed.append(path)
        elif name.endswith(".darkir-lock") and _remove_unheld_lock(path):
            removed.append(path)
    return removed


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies in it (links resolved; either may be missing). Where the names differ,
    the folders above ``path`` that exist are compared with ``folder`` by identity, so that a folder reached through
    a bind mount, or in another letter case on a case-insensitive file system, counts as the same."""
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    if real.is_relative_to(top):
        return True
    try:
        wanted = os.stat(top)
    except OSError:
        return False
    for above in (real, *real.parents):
        with contextlib.suppress(OSError):
            found = os.stat(above)
            if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
                return True
    return False


def is_same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (symlinks and hard links resolved); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else its nearest folder above that does (a link counts, even a link to nothing)."""
    return next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), path)


def check_writable_dir(path: Path) -> None:
    """Check, creating nothing, that ``path`` is a folder files can be written in, or that it can be created.

    Commands call it before loading a model, and :func:`ensure_writable_dir` once the work can start, so that a
    failed start neither costs the load nor leaves an empty folder behind.
    """
    if path.is_symlink() and not path.exists():
        raise DarkIRError(f"output folder {path} is a link to {os.readlink(path)}, which does not exist")
    if path.exists():
        if not path.is_dir():
            raise DarkIRError(f"output folder {path} is a file; choose a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise DarkIRError(f"output folder {path} is not writable")
        return
    parent = nearest_existing(path.absolute())
    if not parent.is_dir():
        raise DarkIRError(f"cannot create output folder {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DarkIRError(f"cannot create output folder {path}: {parent} is not writable")


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and check that files can be written in it (see :func:`check_writable_dir`)."""
    check_writable_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DarkIRError(f"cannot create output folder {path}: {exc.strerror or exc}") from exc
    try:  # a file made there (nameless where the system can): permission bits tell neither root, /proc nor an ACL
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise DarkIRError(f"output folder {path} is not writable ({exc.strerror or exc})") from None


@contextlib.contextmanager
def output_folder(folder: Path) -> Iterator[None]:
    """Make the output ``folder`` for the block (see :func:`ensure_writable_dir`); where the block made it and leaves
    it empty (it failed before any output, or every input failed), remove it again, with the parents made for it and
    the empty subfolders made in it."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]
    ensure_writable_dir(folder)
    try:
        yield
    finally:
        if made:  # its folders, deepest first (itself last), each removed where it holds no file
            for inside, _, files in os.walk(folder, topdown=False):
                if not files:
                    with contextlib.suppress(OSError):
                        os.rmdir(inside)  # fails where a subfolder is left: only an empty folder goes
        _remove_made(made[1:])


@contextlib.contextmanager
def parent_made(target: Path) -> Iterator[None]:
    """Make ``target``'s folder, with the folders above it, for the block that writes ``target``; where the block
    fails, remove the folders it made again (each only while empty), so that a failed write leaves nothing behind."""
    made = [folder for folder in target.parents if not folder.exists()]  # the deepest first
    try:
        target.parent.mkdir(parents=True, exist_ok=True)  # (which may fail part of the way)
        yield
    except BaseException:
        _remove_made(made)
        raise


def _remove_made(folders: list[Path]) -> None:
    """Remove ``folders``, made for an output (the deepest first), while they are empty: the first one that is not (or
    cannot be removed) stops the rest; one that is not there (a mkdir that failed before it) is passed over."""
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        try:
            folder.rmdir()
        except OSError:
            return


def write_atomic(
    target: Path,
    data: bytes,
    overwrite: bool = False,
    verify: Callable[[Path], bool] | None = None,
) -> Path:
    """Write ``data`` to ``target`` through a verified, fsynced temporary file and one atomic rename.

    Raises :class:`OutputExistsError` if ``target`` exists and not ``overwrite``, and :class:`OutputError` if
    writing, syncing or ``verify`` fails; either way ``target`` is left as it was.
    """
    tmp = stage(target, data, verify)
    try:
        commit(tmp, target, overwrite)
    except OSError as exc:
        raise output_error(target, exc) from None
    finally:
        with contextlib.suppress(OSError):  # gone (renamed), or a folder that keeps what is made in it (chattr +a)
            os.unlink(tmp)
    return target


def stage(target: Path, data: bytes, verify: Callable[[Path], bool] | None = None) -> Path:
    """Write ``data`` to a fsynced temporary file beside ``target`` (checked with ``verify``) and return its path, for
    :func:`commit` to move onto ``target``; where that fails, an :class:`OutputError` and no temporary file."""
    tmp = temporary_path(target)
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.getsize(tmp) != len(data):
            raise OutputError(f"{target}: short write ({os.path.getsize(tmp)} of {len(data)} bytes); nothing replaced")
        if verify is not None and not verify(tmp):
            raise OutputError(f"{target}: the written file does not read back; nothing replaced")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(target, exc) from None
    except BaseException:  # a failed check, Ctrl-C
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move a finished temporary file onto ``target`` atomically (never replacing it unless ``overwrite``)."""
    if overwrite:
        os.replace(tmp, target)
    else:
        try:
            os.link(tmp, target)  # fails if target exists: no window in which another file is replaced
        except FileExistsError:
            raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if target.exists():
                raise OutputExistsError(f"{target} exists; pass overwrite=True to replace it") from None
            os.replace(tmp, target)
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
