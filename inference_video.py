"""Seed-compatible: ``python inference_video.py -p OPTIONS -i VIDEO`` writes ./videos/results."""

import argparse
import sys

from darkir.cli import main


def run(argv: list[str] | None = None) -> int:
    """Parse the seed's flags and run ``darkir video`` with them (extra flags pass through)."""
    parser = argparse.ArgumentParser(description="Restore a video (seed-compatible wrapper of `darkir video`).")
    parser.add_argument("-p", "--config", default="./options/inference_video/Baseline.yml", help="options file")
    parser.add_argument("-i", "--inp_path", required=True, help="input video file")
    parser.add_argument("-o", "--out_path", default="./videos/results", help="output folder")
    args, extra = parser.parse_known_args(argv)
    return main(["video", args.inp_path, "-o", args.out_path, "-p", args.config, "--overwrite", *extra])


if __name__ == "__main__":
    sys.exit(run())
