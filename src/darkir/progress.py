"""Progress bars: tqdm on stderr, redrawn as often as a terminal wants it, and seldom where stderr is a log."""

from __future__ import annotations

import sys
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
