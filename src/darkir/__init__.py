"""darkir: low-light image restoration with DarkIR (CVPR 2025) and DarkIR + Cross-Scale Fusion.

The public API (imported lazily, so ``import darkir`` and ``darkir --help`` stay fast)::

    from darkir import Restorer
    restorer = Restorer.from_pretrained()     # the default weights; or a zoo name or checkpoint path
    restored = restorer("night.png")          # or a PIL image, a numpy array, an NCHW tensor

    import darkir
    model = darkir.create_model()                                  # the default weights
    model = darkir.create_model("DarkIR_lolblur.pt")               # any checkpoint layout
    model = darkir.create_model("darkir-csf-w32", width=16)        # random init of a zoo config, a field changed
    model = darkir.create_model(darkir.ModelConfig(use_csf=True))  # random init of a config
    darkir.list_models()
"""

from __future__ import annotations

from darkir.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "create_model": "darkir.models",
    "list_models": "darkir.models",
    "ModelConfig": "darkir.models",
    "DarkIR": "darkir.models",
    "CSFBlock": "darkir.models",
    "Restorer": "darkir.infer",
    "read_checkpoint": "darkir.checkpoint",
    "save_checkpoint": "darkir.checkpoint",
    "infer_config": "darkir.models.state_dict",
    "measure_complexity": "darkir.complexity",
    "Options": "darkir.options",
    "load_options": "darkir.options",
    "DarkIRError": "darkir.errors",
    "ConfigError": "darkir.errors",
    "CheckpointError": "darkir.errors",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, also=("__version__",))
