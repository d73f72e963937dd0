"""Exceptions with messages meant for users: each names the file, key or path at fault."""

from __future__ import annotations

from collections.abc import Sequence


class DarkIRError(Exception):
    """Base class for errors the CLI reports as one clear line instead of a traceback."""


class ConfigError(DarkIRError, ValueError):
    """An options file or model config is invalid (unknown key, wrong type, missing path)."""


class CheckpointError(DarkIRError, RuntimeError):
    """A checkpoint cannot be read or does not fit the model it is loaded into."""


class ConfigMismatchError(CheckpointError):
    """The network config asked for contradicts the one stored with the weights; ``differences`` holds
    ``field: (asked, stored)`` for each field in which they differ."""

    def __init__(self, message: str, differences: dict[str, tuple[object, object]]) -> None:
        super().__init__(message)
        self.differences = differences


class DarkIRWarning(UserWarning):
    """A setting that is accepted but silently changes nothing; the CLI prints it as one line."""


def some_of(names: Sequence[str], limit: int, sep: str = ", ") -> str:
    """The first ``limit`` of ``names`` joined by ``sep``, then ``and N more`` if there are others: a list in a
    one-line message that stays one line."""
    more = len(names) - limit
    return sep.join(names[:limit]) + (f" and {more} more" if more > 0 else "")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): the gist for a one-line report."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
