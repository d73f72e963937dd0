"""Inference: the Restorer engine, image files and folders, and videos.

Image files are read and written by :mod:`darkir.imageio`; devices, precision and memory by :mod:`darkir.runtime`.
The names below are imported when first used, so that importing a submodule (or ``darkir --help``) does not load
torch before it is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_OVERLAP": "darkir.infer.defaults",
    "DEFAULT_TILE": "darkir.infer.defaults",
    "RestoreSettings": "darkir.infer.restorer",
    "Restorer": "darkir.infer.restorer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'darkir.infer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
