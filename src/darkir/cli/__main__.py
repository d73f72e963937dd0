"""``python -m darkir.cli`` (what ``torchrun -m darkir.cli train ...`` runs)."""

import sys

from darkir.cli import main

sys.exit(main())
