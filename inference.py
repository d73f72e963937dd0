"""Seed-compatible: ``python inference.py -p options/inference/LOLBlur.yml -i DIR`` writes ./images/results."""

import argparse
import sys

from darkir.cli import main


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir restore`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(
        description="Restore a folder of images (seed-compatible wrapper of `darkir restore`)."
    )
    parser.add_argument("-p", "--config", default="./options/inference/LOLBlur.yml", help="options file")
    parser.add_argument("-i", "--inp_path", default="./images/inputs", help="folder of input images")
    parser.add_argument("-o", "--out_path", default="./images/results", help="output folder")
    args, extra = parser.parse_known_args(argv)
    return main(["restore", args.inp_path, "-o", args.out_path, "-p", args.config, "--overwrite", *extra])


if __name__ == "__main__":
    sys.exit(run())
