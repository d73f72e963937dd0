"""Seed-compatible: ``python train.py -p options/train/LOLBlur.yml`` runs ``darkir train`` (its flags pass through;
``--config`` is ``-p``)."""

import sys

from darkir.cli.seed import run_with_options

if __name__ == "__main__":
    sys.exit(run_with_options("train", None))
