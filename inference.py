"""Seed-compatible: ``python inference.py -p options/inference/LOLBlur.yml -i DIR`` writes ./images/results
(``--weights`` replaces the default options file). Unlike the official script, it never replaces a file already
there (a rerun skips the images restored before, and says so); ``--overwrite`` replaces them."""

import argparse
import sys

try:
    from darkir.cli.seed import run_seed
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir restore`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(
        description="Restore a folder of images (seed-compatible wrapper of `darkir restore`).",
        epilog="Every other flag of `darkir restore` passes through (--weights NAME_OR_PATH instead of -p, "
        "--overwrite, -q, ...): see darkir restore --help.",
    )
    parser.add_argument("-p", "--config", help="options file (default ./options/inference/LOLBlur.yml)")
    parser.add_argument(
        "-i",
        "--inp_path",
        default="./images/inputs",
        help="folder of input images, read recursively (sub-folders kept in the output), or one image "
        "(default %(default)s)",
    )
    parser.add_argument("-o", "--out_path", default="./images/results", help="output folder (default %(default)s)")
    args, extra = parser.parse_known_args(argv)
    command = [args.inp_path, "-o", args.out_path, *extra]
    return run_seed("restore", command, args.config, "./options/inference/LOLBlur.yml", instead="--weights")


if __name__ == "__main__":
    sys.exit(run())
