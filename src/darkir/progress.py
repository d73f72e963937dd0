"""Progress bars: tqdm on stderr, redrawn as often as a terminal wants it, and seldom where stderr is a log."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

#: Seconds between redraws of a bar whose stderr is not a terminal (a log file, a pipe), where every redraw stays:
#: a batch of a million files logged some 130 MB of bars in one line.
LOG_INTERVAL_S = 10.0


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm takes them), redrawn at most every :data:`LOG_INTERVAL_S` seconds where stderr
    is not a terminal."""
    if not stderr_is_terminal():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", max(LOG_INTERVAL_S, kwargs["mininterval"]))
    return tqdm(iterable, **kwargs)


def stderr_is_terminal() -> bool:
    """Whether stderr, where bars go, is a terminal (not a log file or a pipe)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


#: When :func:`note` last ended a line on a stderr that is not a terminal (in this process).
_last_note = [0.0]


def note(text: str) -> None:
    """Write ``text`` on a line of its own on stderr, below any progress bar. On a terminal the bars are cleared and
    drawn again below it (``tqdm.write``); in a log, where a bar is drawn every :data:`LOG_INTERVAL_S`, the line is
    written as it is, after a line break where a bar has drawn since the last note: drawing the bar again after each
    line wrote it once per failed file (20,000 unreadable files: 20,000 bars, 5 MB of log)."""
    if stderr_is_terminal():
        tqdm.write(text, file=sys.stderr)
        return
    with tqdm.get_lock():
        bars = [bar for bar in getattr(tqdm, "_instances", ()) if not bar.disable]
        open_line = any(getattr(bar, "last_print_t", 0.0) >= _last_note[0] for bar in bars)
        sys.stderr.write(("\n" if open_line else "") + text + "\n")
        sys.stderr.flush()
        _last_note[0] = time.time()
