"""Seed-compatible: ``python testing_unpaired.py -p OPTIONS`` runs ``darkir test-unpaired`` (its flags pass through).

As the official script: ``-p``/``--config``, by default ``./options/test/RealBlur_Night.yml`` (unless ``--data``
names the data).
"""

import sys

from darkir.cli.seed import run_with_options

if __name__ == "__main__":
    sys.exit(run_with_options("test-unpaired", "./options/test/RealBlur_Night.yml"))
