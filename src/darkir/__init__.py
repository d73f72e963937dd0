"""darkir: low-light image restoration with DarkIR (CVPR 2025) and DarkIR + Cross-Scale Fusion.

The public API (imported lazily, so ``import darkir`` and ``darkir --help`` stay fast)::

    from darkir import Restorer
    restorer = Restorer.from_pretrained("darkir-csf-w32-synth")   # the default weights
    restored = restorer("night.png")                              # or a PIL image, a numpy array, an NCHW tensor

    import darkir
    model = darkir.build_model("darkir-csf-w32")      # random init, from a zoo name or kwargs
    model = darkir.load_model("DarkIR_lolblur.pt")    # any checkpoint layout, eval mode
    darkir.list_models()
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "darkir.models",
    "list_models": "darkir.models",
    "DarkIR": "darkir.models",
    "CSFBlock": "darkir.models",
    "Restorer": "darkir.infer",
    "load_model": "darkir.checkpoint",
    "read_checkpoint": "darkir.checkpoint",
    "save_checkpoint": "darkir.checkpoint",
    "infer_config": "darkir.checkpoint",
    "measure_complexity": "darkir.complexity",
    "Options": "darkir.config",
    "load_options": "darkir.config",
    "DarkIRError": "darkir.errors",
    "ConfigError": "darkir.errors",
    "CheckpointError": "darkir.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'darkir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
