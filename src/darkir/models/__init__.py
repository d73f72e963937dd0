"""DarkIR networks, their building blocks, their settings, the table of named variants and :func:`create_model`.

Exports load lazily, so that reading settings (:class:`ModelConfig`, options files) does not import torch.
"""

from __future__ import annotations

from darkir.lazy import lazy_exports

_EXPORTS = {
    "DarkIR": "darkir.models.darkir",
    "AddMerge": "darkir.models.fusion",
    "CSFBlock": "darkir.models.fusion",
    "ModelConfig": "darkir.models.config",
    "create_model": "darkir.models.factory",
    "ModelSpec": "darkir.models.zoo",
    "get_spec": "darkir.models.zoo",
    "has_model": "darkir.models.zoo",
    "list_models": "darkir.models.zoo",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
