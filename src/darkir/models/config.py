"""DarkIR's settings, defined once: the zoo, options files, checkpoint configs and config inference use this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from darkir.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """The reference constructor's keys and defaults (cidautai/DarkIR, plus ``use_csf``/``csf_reduction`` of the
    CSF variant). Checkpoints store :meth:`as_kwargs`; options files map ``network.img_channels`` to
    ``img_channel``."""

    img_channel: int = 3
    width: int = 32
    middle_blk_num_enc: int = 2
    middle_blk_num_dec: int = 2
    enc_blk_nums: tuple[int, ...] = (1, 2, 3)
    dec_blk_nums: tuple[int, ...] = (3, 1, 1)
    dilations: tuple[int, ...] = (1, 4, 9)
    extra_depth_wise: bool = True
    use_csf: bool = False
    csf_reduction: int = 4

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> ModelConfig:
        """A config from constructor kwargs (missing keys take the defaults); unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise ConfigError(f"unknown model config key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        sequences = ("enc_blk_nums", "dec_blk_nums", "dilations")
        return cls(**{k: tuple(v) if k in sequences else v for k, v in kwargs.items()})

    def as_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs, sequences as lists (the JSON/YAML form stored with checkpoints)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: The defaults, for signatures and option fields.
DEFAULTS = ModelConfig()
