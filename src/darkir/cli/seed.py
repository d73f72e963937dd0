"""The seed's and official scripts' command lines (``train.py``, ``testing.py``, ``testing_unpaired.py``,
``inference.py``, ``inference_video.py``) as darkir commands: their ``-p``/``--config`` flag and default options
file, every other flag passed through."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from darkir.cli import main


def run_with_options(command: str, default: str | None, argv: Sequence[str] | None = None) -> int:
    """Run ``darkir <command>`` with the options file of ``-p``/``--config``; without one, ``default`` (where given)
    unless ``--data`` names the data."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # -h: the darkir command's own help
    parser.add_argument("-p", "--config", "--options", dest="options")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    options = options_or_default(args.options, rest, default, instead="--data")
    return main([command, *(["-p", options] if options is not None else []), *rest])


def options_or_default(given: str | None, rest: Sequence[str], default: str | None, instead: str) -> str | None:
    """The options file to use: the one given, else ``default`` unless the flag ``instead`` (which makes the
    options file unneeded, e.g. ``--data`` or ``--weights``) is among the other arguments ``rest``."""
    if given is not None:
        return given
    named = any(arg == instead or arg.startswith(f"{instead}=") for arg in rest)
    return None if named else default
