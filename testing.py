"""Seed-compatible: ``python testing.py -p options/test/LOLBlur.yml`` (flags of ``darkir test`` pass through)."""

import sys

from darkir.cli import main

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]]))
