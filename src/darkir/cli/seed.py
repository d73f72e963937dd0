"""The seed's and official scripts' command lines (``train.py``, ``testing.py``, ``testing_unpaired.py``,
``inference.py``, ``inference_video.py``) as darkir commands: their ``-p``/``--config`` flag and default options
file, every other flag passed through."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from darkir.cli import main


def run_with_options(command: str, default: str | None, argv: Sequence[str] | None = None) -> int:
    """Run ``darkir <command>`` with the options file of ``-p``/``--config``; without one, ``default`` (where given)
    unless ``--data`` names the data."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # -h: the darkir command's own help
    parser.add_argument("-p", "--config", "--options", dest="options")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if any(arg in ("-h", "--help") for arg in rest):
        default_note = (
            f" (default {default}; where --data names the data, none: then the packaged default weights unless "
            "--weights)"
            if default
            else ""
        )
        print(
            f"{Path(sys.argv[0]).name} runs `darkir {command}` with -p/--config OPTIONS{default_note}; every other "
            f"flag is darkir {command}'s:\n"
        )
    return run_seed(command, rest, args.options, default, instead="--data")


def run_seed(command: str, argv: Sequence[str], options: str | None, default: str | None, instead: str) -> int:
    """Run ``darkir <command> <argv>`` with the options file ``options``; where none is given, with ``default``
    unless the flag ``instead`` (which makes an options file unneeded: ``--data``, ``--weights``) or a help flag is in
    ``argv``. A default that is not there is one error line naming it and the two ways on (exit 2)."""
    named = any(arg in (instead, "-h", "--help") or arg.startswith(f"{instead}=") for arg in argv)
    if options is None and default is not None and not named:
        if not Path(default).is_file():
            print(
                f"darkir: error: no -p OPTIONS given, and the default options file {default} is not here (run from "
                f"the folder that holds it, or pass -p OPTIONS or {instead})",
                file=sys.stderr,
            )
            return 2
        options = default
    return main([command, *(["-p", options] if options is not None else []), *argv])
