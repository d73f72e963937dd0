"""The ``darkir`` command: thin subcommands over the public API, one module per area."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from darkir.cli import evaluate, models, restore, training
from darkir.errors import DarkIRError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``darkir`` with all subcommands."""
    from darkir import __version__

    parser = argparse.ArgumentParser(
        prog="darkir", description="Low-light image restoration with DarkIR and DarkIR+CSF."
    )
    parser.add_argument("--version", action="version", version=f"darkir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        return command

    for module in (restore, evaluate, training, models):
        module.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``darkir`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DarkIRError as exc:
        print(f"darkir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("darkir: interrupted", file=sys.stderr)
        return 130
