"""``python -m darkir``: the same as the ``darkir`` command."""

import sys

from darkir.cli import main

sys.exit(main())
