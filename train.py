"""Seed-compatible: ``python train.py -p options/train/LOLBlur.yml`` (flags of ``darkir train`` pass through)."""

import sys

from darkir.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
