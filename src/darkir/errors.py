"""Exceptions with messages meant for users: each names the file, key or path at fault; and how darkir quiets the
warnings of the libraries it calls."""

from __future__ import annotations

import contextlib
import numbers
import os
import re
import reprlib
import sys
import warnings
from collections.abc import Iterator, Sequence


class DarkIRError(Exception):
    """Base class for errors the CLI reports as one clear line instead of a traceback."""


class ConfigError(DarkIRError, ValueError):
    """An options file or model config is invalid (unknown key, wrong type, missing path)."""


class CheckpointError(DarkIRError, RuntimeError):
    """A checkpoint cannot be read or does not fit the model it is loaded into."""


class ConfigMismatchError(CheckpointError):
    """The network config asked for contradicts the one stored with the weights (or, where none is stored, the one
    their tensors show); ``differences`` holds ``field: (asked, theirs)`` for each field in which they differ, and
    ``theirs`` says where the weights' config comes from."""

    def __init__(
        self, message: str, differences: dict[str, tuple[object, object]], theirs: str = "stored with these weights"
    ) -> None:
        super().__init__(message)
        self.differences, self.theirs = differences, theirs


class OutOfMemoryError(DarkIRError, MemoryError):
    """Work that would need more memory than is free, refused before it starts (the CLI reports it as one line)."""


class DarkIRWarning(UserWarning):
    """A setting that is accepted but silently changes nothing; the CLI prints it as one line."""


def is_whole(value: object) -> bool:
    """Whether ``value`` is a whole number as settings take one: an int or a NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_counts(**counts: object) -> None:
    """Refuse a size or count (by its keyword name) that is not a whole number of at least 1."""
    for name, value in counts.items():
        if not (is_whole(value) and value >= 1):
            raise DarkIRError(f"{name} must be a whole number of at least 1, got {value!r}")


#: How a message shows a value it refuses: cut short (a YAML alias can make a value of billions of items, and
#: ``10**5000`` is past the digits Python writes out).
class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        """A whole number cut short, or by its size where Python refuses to write it out (over 4300 digits)."""
        try:
            return super().repr_int(x, level)
        except ValueError:
            return f"<a {x.bit_length()}-bit whole number>"


_SHORT = _ShortRepr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 8, 8, 200, 200
_SHORT.maxlong = 60


def short_repr(value: object) -> str:
    """``repr(value)`` cut short for a one-line message (``[1, 2, 3, 4, 5, 6, 7, 8, ...]``, ``1000...0000``)."""
    return _SHORT.repr(value)


def some_of(names: Sequence[str], limit: int, sep: str = ", ") -> str:
    """The first ``limit`` of ``names`` joined by ``sep``, then ``and N more`` if there are others: a list in a
    one-line message that stays one line."""
    more = len(names) - limit
    return sep.join(names[:limit]) + (f" and {more} more" if more > 0 else "")


#: The control characters a message can carry in from a file name (ESC starts terminal commands, CR writes over the
#: line, BEL rings) -> the escapes :func:`printable` writes; newlines and tabs stay (lists of problems use them).
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(code) not in "\n\t"}
#: The same, newlines and tabs too: for a name on one line (a progress bar's).
_ALL_CONTROLS = {**_CONTROLS, ord("\n"): "\\n", ord("\t"): "\\t"}


def printable(text: str, one_line: bool = False) -> str:
    """``text`` as darkir prints it to a terminal: control characters (``\\x1b``...) written as escapes, so that a
    file named ``a\\x1b[2Jb.png`` cannot clear the screen or forge a line; with ``one_line``, newlines and tabs too."""
    return text.translate(_ALL_CONTROLS if one_line else _CONTROLS)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): the gist for a one-line report."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def warn(message: str) -> None:
    """Issue a :class:`DarkIRWarning` shown at the first caller outside darkir (and torch's wrappers around darkir's
    functions, and Python's own library where it calls darkir back, as ``os.walk`` does): the user's line, however
    deep in darkir the warning arose. In a thread of darkir's (a reader, a writer) no caller is the user's: the
    warning is shown at darkir's line that issued it, not at ``threading.py``."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and _is_internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    if _is_internal(frame.f_code.co_filename):  # no caller of the user's: a thread of darkir's
        level = 2
    warnings.warn(message, DarkIRWarning, stacklevel=level)


def _is_internal(filename: str) -> bool:
    """Whether code in ``filename`` is darkir's, a wrapper darkir's functions are called through (torch's
    decorators), or Python's own library (``os.walk`` calling darkir back, a thread's start)."""
    if filename.startswith("<frozen "):
        return True
    folders = [os.path.dirname(__file__)]
    torch = sys.modules.get("torch")
    if getattr(torch, "__file__", None):
        folders.append(os.path.dirname(torch.__file__))
    if any(filename.startswith(folder + os.sep) for folder in folders):
        return True
    installed = any(f"{os.sep}{folder}{os.sep}" in filename for folder in ("site-packages", "dist-packages"))
    return filename.startswith(_STDLIB) and not installed  # (packages may be installed below it)


#: Where Python's own library lies.
_STDLIB = os.path.dirname(os.__file__) + os.sep


@contextlib.contextmanager
def warnings_ignored(message: str = "", module: str = "", category: type[Warning] = Warning) -> Iterator[None]:
    """Warnings of ``category`` whose text starts with ``message`` and whose module matches the regex ``module`` (all,
    by default) ignored while inside: a filter of darkir's own is put first, and that very filter taken out after,
    whatever other threads added or removed meanwhile. (``warnings.catch_warnings`` instead puts back the whole list
    it found, so that an overlapping thread's filter, an ignore-all say, could stay for the rest of the process; one
    in another library still can, with this filter.)"""
    entry = (
        "ignore",
        re.compile(message, re.IGNORECASE) if message else None,
        category,
        re.compile(module) if module else None,
        0,
    )
    warnings.filters.insert(0, entry)
    try:
        yield
    finally:
        index = next((i for i, item in enumerate(warnings.filters) if item is entry), None)
        if index is not None:
            del warnings.filters[index]


@contextlib.contextmanager
def warnings_held() -> Iterator[None]:
    """Warnings issued inside held back, and issued when the block ends without an error: a command's notes on its
    inputs shown once the checks after them have passed, not above the refusal of a later check. For a command's
    main thread before it starts others (it sets the process's warning state, as ``warnings.catch_warnings`` does)."""
    with warnings.catch_warnings(record=True) as held:
        yield
    for item in held:
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
