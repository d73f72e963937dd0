"""Seed-compatible: ``python testing.py -p options/test/LOLBlur.yml`` runs ``darkir test`` (its flags pass through).

As the official script: ``-p``/``--config``, by default ``./options/test/LOLBlur.yml`` (unless ``--data`` names the
data).
"""

import sys

try:
    from darkir.cli.seed import run_with_options
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")

if __name__ == "__main__":
    sys.exit(run_with_options("test", "./options/test/LOLBlur.yml"))
