"""Seed-compatible: ``python app.py`` serves the demo (flags of ``darkir demo`` pass through)."""

import sys

try:
    from darkir.cli import main
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
