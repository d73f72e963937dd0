"""Seed-compatible: ``python testing_unpaired.py -p OPTIONS`` runs ``darkir test-unpaired`` (its flags pass through).

As the official script: ``-p``/``--config``, by default ``./options/test/RealBlur_Night.yml`` (unless ``--data``
names the data).
"""

import sys

try:
    from darkir.cli.seed import run_with_options
except ModuleNotFoundError as missing:  # run with a Python that darkir is not set up in
    sys.exit(f"{missing}: set darkir up first (pip install -e ., or scripts/quickstart.sh and .venv/bin/python)")

if __name__ == "__main__":
    sys.exit(run_with_options("test-unpaired", "./options/test/RealBlur_Night.yml"))
