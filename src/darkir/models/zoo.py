"""Named DarkIR variants: one table of name -> config (+ packaged weights), and the default weights."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from darkir.errors import ConfigError
from darkir.models.config import DEFAULTS, ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """One row of the zoo: a name, the kwargs that differ from the defaults, and optional weights."""

    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = None

    @property
    def config(self) -> dict[str, Any]:
        """Full constructor kwargs of this variant (the form stored with checkpoints)."""
        return DEFAULTS.replace(**self.overrides).as_kwargs()


_SPECS = [
    ModelSpec("darkir-w16", "DarkIR, width 16 (small, for CPUs and tests)", {"width": 16}),
    ModelSpec("darkir-w32", "DarkIR-m, width 32 (3.32M params, 7.25 GMac at 256x256)"),
    ModelSpec("darkir-w64", "DarkIR-l, width 64 (the official LOLBlur/LOL checkpoints' size)", {"width": 64}),
    ModelSpec("darkir-csf-w32", "DarkIR + Cross-Scale Fusion skips, width 32 (3.38M, 7.67 GMac)", {"use_csf": True}),
    ModelSpec("darkir-csf-w64", "DarkIR + Cross-Scale Fusion skips, width 64", {"width": 64, "use_csf": True}),
    ModelSpec(
        "darkir-w32-synth",
        "DarkIR w32 trained by darkir on synthetic low-light+blur+noise pairs (MODEL_CARD.md in the sdist)",
        weights="darkir-w32-synth.safetensors",
    ),
    ModelSpec(
        "darkir-csf-w32-synth",
        "DarkIR + CSF w32 trained by darkir on synthetic low-light+blur+noise pairs (MODEL_CARD.md in the sdist)",
        {"use_csf": True},
        weights="darkir-csf-w32-synth.safetensors",
    ),
]
_ZOO: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}

#: The zoo entry used when no weights are given: by :func:`darkir.create_model`, and so by the command line, the demo
#: and :meth:`darkir.Restorer.from_pretrained` (chosen by the comparison in MODEL_CARD.md).
DEFAULT_WEIGHTS: str | None = "darkir-csf-w32-synth"


def list_models(pattern: str | None = "*", pretrained: bool = False) -> list[str]:
    """Names of the registered variants matching a glob ``pattern`` (None or "": all; only those with weights if
    ``pretrained``)."""
    if not isinstance(pattern, str | None):
        raise TypeError(f"list_models takes a glob pattern such as 'darkir-csf*', got {type(pattern).__name__}")
    pattern = (pattern or "*").lower()  # the names are lower case: 'DarkIR-CSF*' finds them as a user spells the model
    return [n for n, s in _ZOO.items() if fnmatch.fnmatchcase(n, pattern) and (s.weights or not pretrained)]


def has_model(name: str) -> bool:
    """Whether ``name`` is a registered variant."""
    return name in _ZOO


def get_spec(name: str) -> ModelSpec:
    """The zoo row called ``name``; an unknown name raises a ConfigError listing close matches."""
    try:
        return _ZOO[name]
    except KeyError:
        close = difflib.get_close_matches(name, _ZOO, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f"; known: {', '.join(_ZOO)}"
        raise ConfigError(f"unknown model name {name!r}{hint}") from None


def resolve_config(config: ModelConfig | Mapping[str, Any] | str | None = None, **overrides: Any) -> ModelConfig:
    """A whole config from a zoo name, a ModelConfig or a mapping of fields (missing ones take the defaults), with
    ``overrides`` applied."""
    if isinstance(config, str):
        config = get_spec(config).config
    base = config if isinstance(config, ModelConfig) else ModelConfig.from_kwargs(config or {})
    return base.replace(**overrides)
