"""darkir.infer.pipeline: a producer and a consumer thread around the caller, failures raised where they belong."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

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


def test_a_second_interrupt_while_stopping_still_waits_for_the_stage(monkeypatch):
    """Ctrl-C twice: the second one lands in the wait for the stage to stop; the stage must still have ended (the
    caller closes the files it reads) before the interrupt goes on."""

    def slow():
        for i in itertools.count():
            time.sleep(0.05)
            yield i

    join, interrupts = threading.Thread.join, []

    def interrupted_join(self, timeout=None):
        if not interrupts:
            interrupts.append(self.name)
            raise KeyboardInterrupt
        return join(self, timeout)

    stage = Prefetch(slow(), depth=1, name="test-stage-in")
    with pytest.raises(KeyboardInterrupt), stage:
        next(iter(stage))
        monkeypatch.setattr(threading.Thread, "join", interrupted_join)
    monkeypatch.undo()
    assert interrupts == ["test-stage-in"] and not pipeline_threads()
