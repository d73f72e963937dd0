"""Seed-compatible: ``python inference_video.py -p OPTIONS -i VIDEO`` writes ./videos/results.

The result is the restored video alone (the official script writes the input and the result side by side), an MP4
named after the input: ``clip.mp4`` for ``clip.mp4``, ``clip.avi.mp4`` for ``clip.avi`` (so that two inputs of one
name never replace each other's results); a rerun replaces its own earlier result. ``--weights`` replaces the
default options file.
"""

import argparse
import sys
from pathlib import Path

from darkir.cli import main
from darkir.cli.seed import options_or_default


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir video`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(description="Restore a video (seed-compatible wrapper of `darkir video`).")
    parser.add_argument("-p", "--config", help="options file (default ./options/inference_video/Baseline.yml)")
    parser.add_argument("-i", "--inp_path", required=True, help="input video file")
    parser.add_argument("-o", "--out_path", default="./videos/results", help="output folder")
    args, extra = parser.parse_known_args(argv)
    options = options_or_default(args.config, extra, "./options/inference_video/Baseline.yml", instead="--weights")
    source = Path(args.inp_path)
    name = f"{source.stem}.mp4" if source.suffix.lower() == ".mp4" else f"{source.name}.mp4"
    target = str(Path(args.out_path) / name) if args.out_path else args.out_path
    flags = ["-p", options] if options is not None else []
    return main(["video", args.inp_path, "-o", target, *flags, "--overwrite", *extra])


if __name__ == "__main__":
    sys.exit(run())
