"""How the ``darkir`` command writes to stdout and stderr: any file name printable, and a broken stderr never stopping
the work.

- stdout prints file names that are not UTF-8 (a camera's Latin-1 name, held as surrogates) as their bytes, as ``ls``
  does, characters its encoding cannot write (``日本`` on an ASCII stdout) as escapes, and control characters as
  escapes (:func:`~darkir.errors.printable`), as stderr does;
- stderr, where progress bars, warnings and notes go, is written to while it can be: where it cannot (a full log
  disk, a closed descriptor), what follows is dropped and the work goes on;
- a closed stdout (``>&-``) takes what is printed and drops it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from darkir.errors import printable


@contextlib.contextmanager
def command_streams() -> Iterator[None]:
    """Within it, stdout and stderr are written to as the module says; both are set back after (``main`` called
    from Python)."""
    with _stderr_never_fails(), _print_any_name():
        yield


@contextlib.contextmanager
def _stderr_never_fails() -> Iterator[None]:
    """Within it, ``sys.stderr`` is a :class:`_DroppingStream` over the stderr there was (none: closed)."""
    stderr = sys.stderr
    sys.stderr = _DroppingStream(stderr)
    try:
        yield
    finally:
        sys.stderr = stderr


class _LineWriter:
    """A text stream's ``writelines``, through its own ``write``."""

    def write(self, text: str) -> int:
        raise NotImplementedError

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)


class _DroppingStream(_LineWriter):
    """A text stream that writes to the stream it wraps until a write or flush fails (a full disk, a closed
    descriptor: diagnostics nobody can read), and drops what follows for good (a stream that failed once is not
    tried again); none at all (``2>&-``) drops everything. Characters its encoding cannot write are escapes."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        stream = self._stream  # (once: another thread may drop it meanwhile)
        if stream is not None:
            try:
                _write_encodable(stream, text)
            except (OSError, ValueError):  # (ValueError: a closed file)
                self._stream = None
        return len(text)

    def flush(self) -> None:
        stream = self._stream
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                self._stream = None

    def isatty(self) -> bool:
        stream = self._stream
        try:
            return stream is not None and stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        stream = self._stream
        if stream is None:  # (what asks, such as tqdm for the encoding, copes with an attribute missing)
            raise AttributeError(name)
        return getattr(stream, name)


@contextlib.contextmanager
def _print_any_name() -> Iterator[None]:
    """Within it, stdout prints any file name (see the module) through an :class:`_EscapingStream`; a closed one
    through a :class:`_DroppingStream`."""
    stream = sys.stdout
    errors = getattr(stream, "errors", None)
    changed = False
    if errors is not None and hasattr(stream, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            stream.reconfigure(errors="surrogateescape")
            changed = True
    try:
        with contextlib.redirect_stdout(_EscapingStream(stream) if stream is not None else _DroppingStream(None)):
            yield
    finally:
        if changed:
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
                stream.reconfigure(errors=errors)


class _EscapingStream(_LineWriter):
    """A text stream that writes control characters as escapes (:func:`~darkir.errors.printable`), and characters
    its encoding cannot write as escapes too (``\\u65e5``); otherwise the stream it wraps."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with _named_stdout():
            _write_encodable(self._stream, printable(text))
        return len(text)

    def flush(self) -> None:
        with _named_stdout():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: How an error of writing to stdout names it (as the file an OSError names).
STDOUT_NAME = "standard output"


@contextlib.contextmanager
def _named_stdout() -> Iterator[None]:
    """An error of writing to stdout (a full disk: ``> /dev/full``) names it, as an error of any file names the file
    (``darkir: error: standard output: No space left on device``); a closed pipe stays as it is (exit 141)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        if exc.filename is None:
            exc.filename = STDOUT_NAME
        raise


def _write_encodable(stream: TextIO, text: str) -> None:
    """Write ``text`` to ``stream``, the characters its encoding cannot write (a strict one's, an ASCII stdout's) as
    escapes."""
    try:
        stream.write(text)
    except UnicodeEncodeError:  # (written in one piece or not at all: the encoder fails before any byte)
        stream.write(_encodable(text, getattr(stream, "encoding", None) or "utf-8"))


def _encodable(text: str, encoding: str) -> str:
    """``text`` with each character that ``encoding`` cannot write (not one a name's undecodable byte is held as)
    written as an escape."""

    def fits(char: str) -> bool:
        try:
            char.encode(encoding, "surrogateescape")
        except UnicodeEncodeError:
            return False
        return True

    return "".join(char if fits(char) else char.encode("ascii", "backslashreplace").decode() for char in text)


def discard_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail on the closed pipe again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        finally:
            os.close(null)
