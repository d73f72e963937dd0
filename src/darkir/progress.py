"""Progress bars: tqdm on stderr, redrawn as often as a terminal wants it; where stderr is a log, seldom and as
plain lines."""

from __future__ import annotations

import re
import sys
from typing import Any

from tqdm import tqdm

#: Seconds between redraws of a bar whose stderr is not a terminal (a log file, a pipe), where every redraw stays:
#: a batch of a million files logged some 130 MB of bars in one line.
LOG_INTERVAL_S = 10.0
#: What a terminal needs and a log does not: carriage returns, line breaks and the cursor moves of nested bars.
_REDRAW_CONTROLS = re.compile(r"\x1b\[A|[\r\n]")


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm takes them). Where stderr is not a terminal it is redrawn at most every
    :data:`LOG_INTERVAL_S` seconds, each time on a line of its own in ASCII (:class:`_LogLines`)."""
    if not stderr_is_terminal():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, kwargs["mininterval"]))
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("file", _LogLines())
    return tqdm(iterable, **kwargs)


def stderr_is_terminal() -> bool:
    """Whether stderr, where bars go, is a terminal (not a log file or a pipe)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


class _LogLines:
    """The stream of a bar in a log: each state tqdm draws becomes a line of its own on stderr, without the carriage
    returns, blank padding and cursor moves with which it redraws a bar in place on a terminal (a log read back
    showed one long line of overwritten bars, and a video's bar under restore's climbed over it with ``ESC[A``)."""

    def __init__(self) -> None:
        self._drawn = ""

    def write(self, text: str) -> int:
        self._drawn += text
        return len(text)

    def flush(self) -> None:
        drawn, self._drawn = self._drawn, ""
        lines = [line.rstrip() for line in _REDRAW_CONTROLS.split(drawn)]
        text = "".join(line + "\n" for line in lines if line)
        if text:
            sys.stderr.write(text)
            sys.stderr.flush()


def note(text: str) -> None:
    """Write ``text`` on a line of its own on stderr, below any progress bar. On a terminal the bars are cleared and
    drawn again below it (``tqdm.write``); in a log, where each bar's state is a line of its own, it is written as it
    is: drawing the bar again after each line wrote it once per failed file (20,000 unreadable files: 20,000 bars,
    5 MB of log)."""
    if stderr_is_terminal():
        tqdm.write(text, file=sys.stderr)
        return
    with tqdm.get_lock():
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
