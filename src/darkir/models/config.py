"""DarkIR's settings, defined once: the network, the zoo, options files, checkpoints and config inference use them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from darkir.errors import ConfigError

#: The fields that hold one number per stage (or per branch); stored as tuples, written as lists.
SEQUENCE_FIELDS = ("enc_blk_nums", "dec_blk_nums", "dilations")


@dataclass(frozen=True)
class ModelConfig:
    """The reference constructor's keys and defaults (cidautai/DarkIR, plus ``use_csf``/``csf_reduction`` of the
    CSF variant). Checkpoints store :meth:`as_kwargs`; options files write ``img_channel`` as
    ``network.img_channels``. Each field's metadata holds its bound (``ge``: the least value), checked here and by
    options files, and the description that options files show."""

    img_channel: int = field(default=3, metadata={"ge": 1})
    width: int = field(default=32, metadata={"ge": 1})
    middle_blk_num_enc: int = field(default=2, metadata={"ge": 0})
    middle_blk_num_dec: int = field(default=2, metadata={"ge": 0})
    enc_blk_nums: tuple[int, ...] = (1, 2, 3)
    dec_blk_nums: tuple[int, ...] = (3, 1, 1)
    dilations: tuple[int, ...] = (1, 4, 9)
    extra_depth_wise: bool = True
    use_csf: bool = field(
        default=False, metadata={"description": "Cross-Scale Fusion gates on the skips (the seed's variant)"}
    )
    csf_reduction: int = field(default=4, metadata={"ge": 1, "description": "CSF gate bottleneck ratio C -> C/r"})

    def __post_init__(self) -> None:
        for name in SEQUENCE_FIELDS:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for item in fields(self):
            if "ge" in item.metadata and getattr(self, item.name) < item.metadata["ge"]:
                raise ValueError(f"{item.name} {getattr(self, item.name)} must be at least {item.metadata['ge']}")
        if len(self.enc_blk_nums) != len(self.dec_blk_nums):
            raise ValueError(
                f"enc_blk_nums {list(self.enc_blk_nums)} and dec_blk_nums {list(self.dec_blk_nums)} must have the "
                "same length"
            )

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> ModelConfig:
        """A config from constructor kwargs (missing keys take the defaults); unknown keys are a ConfigError."""
        return cls().replace(**kwargs)

    def replace(self, **changes: Any) -> ModelConfig:
        """This config with some fields changed; an unknown field is a ConfigError naming it."""
        check_fields(changes)
        return dataclasses.replace(self, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """Constructor kwargs, sequences as lists (the JSON/YAML form stored with checkpoints)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def differences(self, other: ModelConfig) -> list[str]:
        """``field mine vs other`` for each field in which ``other`` differs from this config."""
        mine, theirs = self.as_kwargs(), other.as_kwargs()
        return [f"{key} {mine[key]} vs {theirs[key]}" for key in mine if mine[key] != theirs[key]]


def check_fields(changes: Mapping[str, Any]) -> None:
    """Refuse names that are not :class:`ModelConfig` fields, naming them (a :class:`ConfigError`)."""
    known = [f.name for f in fields(ModelConfig)]
    unknown = [name for name in changes if name not in known]
    if unknown:
        raise ConfigError(f"unknown model config key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


#: The defaults, for signatures and option fields.
DEFAULTS = ModelConfig()
