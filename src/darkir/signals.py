"""The signals that stop a darkir command cleanly besides Ctrl-C (the CLI's commands, and a training run after its
step, saved), and how a data loader worker takes a SIGTERM sent to its whole process group."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def stopping_signals() -> list[signal.Signals]:
    """SIGTERM, and SIGHUP (the terminal closed, an ssh session lost) unless it is ignored (``nohup``)."""
    hang_up = getattr(signal, "SIGHUP", None)
    ignored = hang_up is None or signal.getsignal(hang_up) == signal.SIG_IGN
    return [signal.SIGTERM, *([] if ignored else [hang_up])]


#: Seconds a data loader worker outlives a SIGTERM (:func:`outlive_sigterm`).
WORKER_GRACE_S = 120


def outlive_sigterm() -> None:
    """In a data loader worker: a SIGTERM no longer ends it at once (torch's own handler did), but only after
    :data:`WORKER_GRACE_S` (SIGALRM). Sent to the whole process group (a batch system's time limit, torchrun,
    ``kill -- -PGID``), it made the worker die at once and the run fail in torch's check of its workers, its steps
    since the last checkpoint unsaved: the run stops its workers itself once its step is done. A worker that torch
    ends because it hangs still ends."""
    signal.signal(signal.SIGTERM, _end_later)


def _end_later(signum: int, frame: object) -> None:
    signal.alarm(WORKER_GRACE_S)


@contextlib.contextmanager
def handled(signums: Sequence[int], handler: Callable[[int, Any], Any] | int) -> Iterator[None]:
    """Within the block, ``handler`` takes each of ``signums`` that is not ignored (an ignored one stays so: ``nohup``,
    a background job); the handlers before come back after. Nothing changes outside the main thread, where Python
    sets no handler."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
