"""Seed-compatible: ``python inference_video.py -p OPTIONS -i VIDEO`` writes ./videos/results.

The result is the restored video alone (the official script writes the input and the result side by side), an MP4
named after the input: ``clip.mp4`` for ``clip.mp4``, ``clip.avi.mp4`` for ``clip.avi`` (so that two inputs of one
name never replace each other's results). Unlike the official script, it never replaces a file already there (a
rerun stops, naming it); ``--overwrite`` replaces it. ``--weights`` replaces the default options file.
"""

import argparse
import os
import sys
from pathlib import Path

try:
    from darkir.cli.seed import run_seed
    from darkir.infer.jobs import VIDEO_SUFFIXES
    from darkir.infer.video_output import VIDEO_FORMATS
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir video`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(
        description="Restore a video (seed-compatible wrapper of `darkir video`).",
        epilog="Every other flag of `darkir video` passes through (--weights NAME_OR_PATH instead of -p, --overwrite, "
        "-q, ...): see darkir video --help.",
    )
    parser.add_argument("-p", "--config", help="options file (default ./options/inference_video/Baseline.yml)")
    parser.add_argument("-i", "--inp_path", required=True, help="input video file")
    files = ", ".join(VIDEO_FORMATS)
    parser.add_argument(
        "-o", "--out_path", default="./videos/results", help=f"output folder (or a {files} file; default %(default)s)"
    )
    args, extra = parser.parse_known_args(argv)
    source, target = Path(args.inp_path), Path(args.out_path)
    folder = args.out_path.endswith(("/", os.sep)) or target.is_dir() or target.suffix.lower() not in VIDEO_SUFFIXES
    if args.out_path and folder:  # a folder (named so, or as the official script takes any -o)
        target /= f"{source.stem}.mp4" if source.suffix.lower() == ".mp4" else f"{source.name}.mp4"
    command = [args.inp_path, "-o", str(target) if args.out_path else "", *extra]
    return run_seed("video", command, args.config, "./options/inference_video/Baseline.yml", instead="--weights")


if __name__ == "__main__":
    sys.exit(run())
