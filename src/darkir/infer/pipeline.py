"""Overlapping the stages of a stream: a producer and a consumer, each in its own thread, joined by bounded queues.

A video is decoded in one thread, restored in the caller's and encoded in a third, so that a GPU restoring frames is
not kept waiting by the CPU work around it. A failure in any stage stops all of them and is raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
S = TypeVar("S", bound="_Stage")  # typing.Self needs Python 3.11; the package takes 3.10

_POLL_S = 0.1


class _Done:
    """The end of a stream."""


class _Failed:
    """A stage's exception, passed to the caller to raise."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _ignore(item: object) -> None:
    """Drop an item that holds nothing."""


def _drop_waiting(channel: queue.Queue, discard: Callable[[Any], None]) -> None:
    """Hand every item still waiting in ``channel`` to ``discard``."""
    while True:
        try:
            item = channel.get_nowait()
        except queue.Empty:
            return
        if not isinstance(item, (_Done, _Failed)):
            discard(item)


def _put(channel: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` once there is room, unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


class _Stage(Generic[T]):
    """A background thread and the bounded queue between it and the caller; a context manager that starts the
    thread, and on leaving stops it, waits for it and hands the items left in the queue to ``discard``."""

    def __init__(self, run: Callable[[], None], depth: int, name: str, discard: Callable[[T], None]) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._discard = discard
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop, self._ended = threading.Event(), threading.Event()

        def body() -> None:
            try:
                run()
            finally:
                self._ended.set()

        self._thread = threading.Thread(target=body, name=name, daemon=True)

    def __enter__(self: S) -> S:
        self._thread.start()
        return self

    def _join(self) -> None:
        """Wait for the thread to end, also through further Ctrl-Cs (the last re-raised once it has ended): a stage
        must not run on after its caller has closed the files it reads or writes. (An interrupted ``Thread.join``
        marks the thread ended while it runs on, in Python before 3.13, so the wait is on an event the thread sets.)"""
        interrupted = None
        while not self._ended.is_set():
            try:
                self._ended.wait()
            except KeyboardInterrupt as exc:
                interrupted = exc
        self._thread.join()
        if interrupted is not None:
            raise interrupted

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        try:
            self._join()
        finally:
            _drop_waiting(self._queue, self._discard)


class Prefetch(_Stage[T]):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the caller.

    Use it as a context manager: leaving the block (at the end, on an error or early) stops the thread and waits
    for it; items made but never taken are handed to ``discard`` (to release what they hold). An exception raised
    by ``items`` is raised by the iteration here, where the item would have come.
    """

    def __init__(
        self, items: Iterable[T], depth: int, name: str = "darkir-prefetch", discard: Callable[[T], None] = _ignore
    ) -> None:
        super().__init__(self._produce, depth, name, discard)
        self._items = items

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not _put(self._queue, item, self._stop):
                    self._discard(item)
                    return
            _put(self._queue, _Done(), self._stop)
        except BaseException as error:
            _put(self._queue, _Failed(error), self._stop)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item


class Drain(_Stage[T]):
    """Hand items to ``consume``, called in a background thread in the order given, at most ``depth`` waiting.

    Use it as a context manager. :meth:`put` raises the consumer's exception as soon as it is known (and stops
    taking items); :meth:`finish` waits until every item is consumed and raises it too. Leaving the block without
    :meth:`finish` (on an error in the caller) waits for the item being consumed and hands those still waiting, as
    any item not taken, to ``discard``.
    """

    def __init__(
        self,
        consume: Callable[[T], None],
        depth: int,
        name: str = "darkir-drain",
        discard: Callable[[T], None] = _ignore,
    ) -> None:
        super().__init__(self._run, depth, name, discard)
        self._consume = consume
        self._error: BaseException | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _Done):
                return
            try:
                self._consume(item)
            except BaseException as error:
                self._error = error
                self._stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` for the consumer (waiting while ``depth`` items wait); raise the consumer's failure."""
        try:
            queued = self._error is None and _put(self._queue, item, self._stop)
        except BaseException:  # an interrupt while waiting for room: the item is the caller's no more
            self._discard(item)
            raise
        if not queued:
            self._discard(item)
        self._raise()

    def finish(self) -> None:
        """Wait until every queued item is consumed; raise the consumer's failure."""
        _put(self._queue, _Done(), self._stop)
        self._join()
        self._raise()
