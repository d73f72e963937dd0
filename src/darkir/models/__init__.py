"""DarkIR networks, their building blocks and the table of named variants."""

from darkir.models.darkir import DarkIR
from darkir.models.fusion import AddMerge, CSFBlock
from darkir.models.zoo import MODEL_KWARGS, ModelSpec, build_model, get_spec, has_model, list_models

__all__ = [
    "MODEL_KWARGS",
    "AddMerge",
    "CSFBlock",
    "DarkIR",
    "ModelSpec",
    "build_model",
    "get_spec",
    "has_model",
    "list_models",
]
