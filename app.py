"""Seed-compatible: ``python app.py`` serves the demo (flags of ``darkir demo`` pass through)."""

import sys

from darkir.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
