"""The low-light example photos that ship with darkir (two LOL-v2 inputs and two held-out synthetic ones; sources
and licences in ``assets/examples/README.md``): what the quick start, ``darkir restore --examples`` and the demo
restore."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_images() -> list[Path]:
    """The example photos, by name."""
    folder = Path(str(resources.files("darkir") / "assets" / "examples"))
    return sorted(folder.glob("*.png"))
