"""OpenCV's process-wide settings as darkir leaves them, and the gist of its errors (OpenCV is imported on first use).

OpenCV keeps a thread pool of one thread per core, which would take the cores torch's threads and darkir's own
decoding and encoding threads use. While darkir decodes or encodes inside another program, OpenCV runs on one thread
and silent, and the program's settings come back after (:func:`quiet_single_thread`); a process darkir runs itself
keeps OpenCV on one thread throughout: a command (:func:`one_thread`), Ray workers and data-loader workers
(:func:`use_one_thread`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import ModuleType

from darkir.errors import first_line

#: Guards :func:`quiet_single_thread`'s count of the threads inside it and the settings it found.
_LOCK = threading.Lock()
_users = 0
_settings: tuple[int, int | None] = (1, None)


def load() -> ModuleType:
    """OpenCV (``cv2``), imported on first use."""
    import cv2

    return cv2


@contextlib.contextmanager
def quiet_single_thread() -> Iterator[None]:
    """OpenCV single-threaded and silent while inside (decoding errors are reported by darkir, once, with the file
    name); the caller's thread count and log level come back when the last darkir thread inside leaves."""
    global _users, _settings
    cv2 = load()
    logging = getattr(getattr(cv2, "utils", None), "logging", None)  # None: an OpenCV 4 that shadows the required one
    with _LOCK:
        if _users == 0:  # (each setting changed only where it differs: setNumThreads rebuilds the pool)
            _settings = (cv2.getNumThreads(), logging.getLogLevel() if logging is not None else None)
            if _settings[0] != 1:
                cv2.setNumThreads(1)
            if logging is not None:
                logging.setLogLevel(logging.LOG_LEVEL_SILENT)
            elif hasattr(cv2, "setLogLevel"):
                cv2.setLogLevel(0)
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                threads, level = _settings
                if threads != 1:
                    cv2.setNumThreads(threads)
                if level is not None:
                    logging.setLogLevel(level)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """OpenCV on one thread for a darkir command (its resizes, colour conversions and NIQE's filters too); the
    caller's count back after (``darkir.cli.main`` called from Python)."""
    cv2 = load()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def use_one_thread() -> None:
    """OpenCV on one thread for the rest of a process darkir runs beside others (a Ray worker, a data-loader worker),
    as torch is there: each with a pool of a thread per core would oversubscribe the CPU."""
    load().setNumThreads(1)


def error_gist(exc: BaseException) -> str:
    """The gist of an OpenCV error: its message without the source location OpenCV prefixes."""
    gist = next((line for line in str(exc).splitlines() if "error:" in line), first_line(exc))
    return gist.split("error:", 1)[-1].strip(" ()") or type(exc).__name__
