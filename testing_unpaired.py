"""Seed-compatible: ``python testing_unpaired.py -p OPTIONS`` (runs ``darkir test-unpaired``)."""

import sys

from darkir.cli import main

if __name__ == "__main__":
    sys.exit(main(["test-unpaired", *sys.argv[1:]]))
