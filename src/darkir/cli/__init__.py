"""The ``darkir`` command: thin subcommands over the public API, one module per area."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from tqdm import tqdm

from darkir import opencv
from darkir.cli import compare, evaluate, restore, training, variants
from darkir.cli.common import expand_home
from darkir.cli.streams import STDOUT_NAME, command_streams, discard_stdout
from darkir.errors import DarkIRError, DarkIRWarning, printable
from darkir.signals import stopping_signals


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``darkir`` with all subcommands."""
    from darkir import __version__

    parser = argparse.ArgumentParser(
        prog="darkir", description="Low-light image restoration with DarkIR and DarkIR+CSF."
    )
    parser.add_argument("--version", action="version", version=f"darkir {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        return command

    for module in (restore, evaluate, compare, training, variants):
        module.register(add)
    return parser


#: How library messages name the settings that flags set -> the flags (the command line speaks in flags).
FLAGS = {
    "max_memory": "--max-memory",
    "overwrite=True": "--overwrite",
    "resume=True": "--resume",
    "restart=True": "--restart",
    "init_from": "--init-from",
}


def in_flags(message: str) -> str:
    """A library message as the command line says it: :data:`FLAGS`' settings named by their flags (not inside
    paths or longer names)."""
    for setting, flag in FLAGS.items():
        message = re.sub(rf"(?<![\w/.-]){re.escape(setting)}(?![\w/.-])", flag, message)
    return message


def _warning_printer() -> Callable[..., None]:
    """A ``warnings.showwarning`` for one run: darkir's own warnings as one line (``darkir: warning: ...``), each
    text once (a batch's images warn alike; Python's own once-per-place record is reset whenever a library changes
    the warning filters); others as Python shows them."""
    shown: set[str] = set()

    def show(  # (the signature of warnings.showwarning)
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: object = None,
        line: str | None = None,
    ) -> None:
        if not issubclass(category, DarkIRWarning):
            text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
            tqdm.write(printable(text), file=sys.stderr)  # on a line of its own, below a progress bar
        elif str(message) not in shown:
            shown.add(str(message))
            tqdm.write(f"darkir: warning: {printable(in_flags(str(message)))}", file=sys.stderr)

    return show


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line; ``KEY=VALUE`` overrides may come anywhere among the flags (argparse takes only the
    first run of them)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if "--debug" in extras:  # after the subcommand, where "run with --debug" is usually added
        extras.remove("--debug")
        args.debug = True
    if extras and isinstance(getattr(args, "overrides", None), list) and not any(x.startswith("-") for x in extras):
        args.overrides.extend(extras)
    elif extras:
        _refuse_unknown(parser, args.command, extras)
    expand_home(args)
    return args


def _refuse_unknown(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> NoReturn:
    """Exit with the subcommand's usage (argparse gives darkir's) and the arguments it does not know, with the flag
    a mistyped one was closest to."""
    action = next(action for action in parser._actions if action.dest == "command")
    subparser = action.choices[command]
    known = [flag for known in subparser._actions for flag in known.option_strings if flag.startswith("--")]
    close = [difflib.get_close_matches(x.split("=", 1)[0], known, n=1, cutoff=0.7) for x in extras if x[:2] == "--"]
    hint = ", ".join(match[0] for match in close if match)
    subparser.error(f"unrecognized arguments: {' '.join(extras)}" + (f" (did you mean {hint}?)" if hint else ""))


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP: the terminal closed), raised where Ctrl-C would be, so that a killed command cleans up as
    an interrupted one does; ``signum``: the signal."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP (:func:`darkir.signals.stopping_signals`) raise :class:`Terminated` in the
    main thread (part files and locks are removed on the way out); the previous handlers come back after. ``darkir
    train`` installs its own: it stops after a step and saves."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, terminate) for signum in stopping_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``darkir`` console script."""
    with command_streams():
        return _main(argv)


@contextlib.contextmanager
def _threads_kept(args: argparse.Namespace) -> Iterator[None]:
    """Where ``--threads`` is given (the command sets torch's thread count), the count before it is set back after
    (``main`` called from Python: the caller's later work keeps its own count)."""
    if not getattr(args, "threads", None):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _main(argv: Sequence[str] | None) -> int:
    """:func:`main`, with stdout printing any file name."""
    args = _parse(argv)
    try:
        _check_working_folder()
        with warnings.catch_warnings(), _terminate_as_interrupt(), _threads_kept(args), opencv.one_thread():
            warnings.showwarning = _warning_printer()
            code = args.func(args)
            sys.stdout.flush()  # (a file's buffer: a full disk fails here, not at exit where nothing could say so)
            return code
    except DarkIRError as exc:
        if args.debug:  # its traceback, and the exit status of the error it is
            traceback.print_exc()
        print(f"darkir: error: {printable(in_flags(str(exc)))}", file=sys.stderr)
        return 2
    except Terminated as stopped:  # (a closed terminal's stderr drops the line: command_streams)
        print(stopped_line(stopped.signum), file=sys.stderr)
        return 128 + stopped.signum
    except KeyboardInterrupt:
        print(stopped_line(signal.SIGINT), file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read the output stopped (``darkir models | head -1``): end quietly, as cat does
        discard_stdout()
        return 141
    except OSError as exc:  # the system refused a file (a name too long, a full disk): the file and the reason
        named = [os.fsdecode(name) for name in (exc.filename, exc.filename2) if isinstance(name, (str, bytes))]
        if named == [STDOUT_NAME]:
            discard_stdout()  # what it holds cannot be written: not again at exit either
        if args.debug or not named or not exc.strerror:
            return _unexpected(args, exc)
        print(printable(f"darkir: error: {' -> '.join(named)}: {exc.strerror}"), file=sys.stderr)
        return 1
    except Exception as exc:
        return _unexpected(args, exc)


def stopped_line(signum: int) -> str:
    """What a command stopped by the signal ``signum`` says last: ``darkir: interrupted`` (Ctrl-C), ``darkir:
    terminated`` (SIGTERM), ``darkir: terminated (SIGHUP)``."""
    if signum == signal.SIGINT:
        return "darkir: interrupted"
    return "darkir: terminated" + ("" if signum == signal.SIGTERM else f" ({signal.Signals(signum).name})")


def _check_working_folder() -> None:
    """Refuse to start in a working folder that was removed (torch's math library, loaded by most commands, ends the
    process when it cannot read it, with a message about the library)."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise DarkIRError("the current folder no longer exists (it was removed); cd to a folder that exists") from None


def _unexpected(args: argparse.Namespace, exc: Exception) -> int:
    """An unexpected error: one line for users, the traceback with --debug."""
    if args.debug:
        raise exc
    lines = str(exc).strip().splitlines()
    first = printable(lines[0]) if lines else "unexpected error"
    print(f"darkir: error: {type(exc).__name__}: {first} (run with --debug for the traceback)", file=sys.stderr)
    return 1
