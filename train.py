"""Seed-compatible: ``python train.py -p options/train/LOLBlur.yml`` runs ``darkir train`` (its flags pass through;
``--config`` is ``-p``)."""

import sys

try:
    from darkir.cli.seed import run_with_options
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")

if __name__ == "__main__":
    sys.exit(run_with_options("train", None))
