"""Seed-compatible: ``python inference.py -p options/inference/LOLBlur.yml -i DIR`` writes ./images/results
(``--weights`` replaces the default options file)."""

import argparse
import sys

from darkir.cli import main
from darkir.cli.seed import options_or_default


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir restore`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(
        description="Restore a folder of images (seed-compatible wrapper of `darkir restore`)."
    )
    parser.add_argument("-p", "--config", help="options file (default ./options/inference/LOLBlur.yml)")
    parser.add_argument("-i", "--inp_path", default="./images/inputs", help="folder of input images")
    parser.add_argument("-o", "--out_path", default="./images/results", help="output folder")
    args, extra = parser.parse_known_args(argv)
    options = options_or_default(args.config, extra, "./options/inference/LOLBlur.yml", instead="--weights")
    flags = ["-p", options] if options is not None else []
    return main(["restore", args.inp_path, "-o", args.out_path, *flags, "--overwrite", *extra])


if __name__ == "__main__":
    sys.exit(run())
