"""darkir.infer.pipeline: a producer and a consumer thread around the caller, failures raised where they belong."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest

from darkir import imageio
from darkir.errors import DarkIRWarning
from darkir.infer.pipeline import Drain, Prefetch


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("test-stage")]


def test_prefetch_yields_every_item_in_order_from_another_thread():
    seen = []

    def items():
        for i in range(50):
            seen.append(threading.current_thread().name)
            yield i

    with Prefetch(items(), depth=3, name="test-stage-in") as reader:
        assert list(reader) == list(range(50))
    assert set(seen) == {"test-stage-in"} and not pipeline_threads()


def test_prefetch_stays_at_most_depth_ahead():
    made = []

    def items():
        for i in itertools.count():
            made.append(i)
            yield i

    with Prefetch(items(), depth=2, name="test-stage-in") as reader:
        first = next(iter(reader))
        deadline = time.monotonic() + 10
        while len(made) < 3 and time.monotonic() < deadline:  # it works ahead while the caller is busy
            time.sleep(0.01)
        time.sleep(0.2)
        assert first == 0 and 3 <= len(made) <= 4  # the one taken, two queued, one waiting for room
    assert not pipeline_threads()  # leaving early stopped the endless producer


def test_prefetch_raises_the_producers_error_where_its_item_would_come():
    def items():
        yield 1
        yield 2
        raise ValueError("frame 3 is broken")

    got = []
    with pytest.raises(ValueError, match="frame 3 is broken"), Prefetch(items(), depth=4, name="test-stage-in") as r:
        got.extend(r)
    assert got == [1, 2] and not pipeline_threads()


def test_prefetch_stops_when_the_caller_fails():
    with pytest.raises(KeyboardInterrupt), Prefetch(itertools.count(), depth=2, name="test-stage-in") as reader:
        for item in reader:
            if item == 5:
                raise KeyboardInterrupt
    assert not pipeline_threads()


def test_drain_consumes_every_item_in_order_in_another_thread():
    consumed = []
    with Drain(lambda item: consumed.append((item, threading.current_thread().name)), 2, "test-stage-out") as out:
        for i in range(30):
            out.put(i)
        out.finish()
    assert consumed == [(i, "test-stage-out") for i in range(30)] and not pipeline_threads()


def test_drain_raises_the_consumers_error_at_the_next_put_or_at_finish():
    def consume(item):
        if item == 3:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"), Drain(consume, 1, "test-stage-out") as out:
        for i in itertools.count():  # would never end if the failure were lost
            out.put(i)
    assert not pipeline_threads()

    with pytest.raises(OSError, match="No space left"), Drain(consume, 8, "test-stage-out") as out:
        for i in range(5):
            out.put(i)
        out.finish()
    assert not pipeline_threads()


def test_drain_stops_when_the_caller_fails():
    consumed = []
    with pytest.raises(RuntimeError, match="restore failed"), Drain(consumed.append, 4, "test-stage-out") as out:
        out.put(1)
        raise RuntimeError("restore failed")
    assert consumed in ([], [1]) and not pipeline_threads()


@pytest.mark.parametrize("stage", [Prefetch, Drain])
def test_depth_must_be_positive(stage):
    with pytest.raises(ValueError, match="depth must be at least 1"):
        stage([] if stage is Prefetch else print, 0)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt during the test, also where the test runner was started with SIGINT ignored (a
    background job inherits that, and Python then installs no handler of its own)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_main_thread(after: float, then: Callable[[], None], later: float) -> threading.Thread:
    """A Ctrl-C to the main thread ``after`` seconds from now, and ``then`` called ``later`` seconds after it."""
    main_thread = threading.main_thread().ident

    def run() -> None:
        time.sleep(after)
        signal.pthread_kill(main_thread, signal.SIGINT)
        time.sleep(later)
        then()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_an_interrupt_while_stopping_still_waits_for_the_producer(ctrl_c_raises):
    """A Ctrl-C that lands while the stage is being stopped must not return before the stage has ended: the caller
    then closes the files it reads (an interrupted Thread.join calls a running thread ended before Python 3.13)."""
    busy, ended = threading.Event(), []

    def slow():
        yield 0
        busy.wait(10)  # decoding, say, when the caller stops
        ended.append(time.monotonic())
        yield 1

    discarded = []
    with pytest.raises(KeyboardInterrupt), Prefetch(slow(), 1, "test-stage-in", discarded.append) as stage:
        assert next(iter(stage)) == 0
        helper = interrupt_main_thread(0.2, busy.set, 0.3)
    returned = time.monotonic()
    helper.join()
    assert ended and ended[0] <= returned and discarded == [1] and not pipeline_threads()


def test_an_interrupt_while_finishing_still_waits_for_the_consumer(ctrl_c_raises):
    busy, consumed = threading.Event(), []

    def slow(item):
        busy.wait(10)  # encoding, say
        consumed.append((item, time.monotonic()))

    with pytest.raises(KeyboardInterrupt), Drain(slow, 1, "test-stage-out") as out:
        out.put("a")
        helper = interrupt_main_thread(0.2, busy.set, 0.3)
        out.finish()
    returned = time.monotonic()
    helper.join()
    assert [item for item, _ in consumed] == ["a"] and consumed[0][1] <= returned and not pipeline_threads()


def test_an_interrupt_while_waiting_for_room_hands_the_item_to_discard(ctrl_c_raises):
    busy, consumed, discarded = threading.Event(), [], []

    def slow(item):
        busy.wait(10)
        consumed.append(item)

    with pytest.raises(KeyboardInterrupt), Drain(slow, 1, "test-stage-out", discarded.append) as out:
        out.put("a")  # being consumed
        deadline = time.monotonic() + 10
        while out._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        out.put("b")  # waiting in the queue
        helper = interrupt_main_thread(0.2, busy.set, 0.3)
        out.put("c")  # waits for room, and is interrupted
    helper.join()
    assert consumed == ["a"] and discarded == ["c", "b"] and not pipeline_threads()


def test_a_warning_in_a_reader_thread_is_shown_at_darkirs_line_not_at_threading(tmp_path):
    """A thread of darkir's has no caller of the user's: its warnings were shown at ``threading.py``, a line that
    says nothing; now at darkir's line that issued the warning."""
    cv2.imwrite(str(tmp_path / "hdr.tif"), np.full((8, 8, 3), 4.0, np.float32))
    images = map(imageio.read_image, [tmp_path / "hdr.tif"])
    with (
        pytest.warns(DarkIRWarning, match="float samples span") as record,
        Prefetch(images, depth=1, name="test-stage-in") as reader,
    ):
        assert len(list(reader)) == 1
    assert [warning.filename for warning in record] == [imageio.__file__]
