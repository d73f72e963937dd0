"""DarkIR's settings, defined once: the network, the zoo, options files, checkpoints and config inference use them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from darkir.errors import ConfigError, short_repr

#: The fields that hold one number per stage (or per branch); stored as tuples, written as lists.
SEQUENCE_FIELDS = ("enc_blk_nums", "dec_blk_nums", "dilations")
#: Bounds far past any DarkIR (the official ones: width 32 or 64, 3 stages of up to 3 blocks, dilations up to 9), so
#: that a mistyped size is an error naming it instead of a model that takes for ever to build or overflows torch's
#: sizes (a width up to this one is checked against memory as the model is made).
MAX_WIDTH = 2**30
MAX_BLOCKS = 1000
MAX_STAGES = 8
MAX_DILATION = 1024


def _blocks_per_stage(description: str) -> dict[str, Any]:
    """The bounds of a field of blocks per stage (``enc_blk_nums``, ``dec_blk_nums``), with its description."""
    return {"item_ge": 0, "item_le": MAX_BLOCKS, "max_length": MAX_STAGES, "description": description}


@dataclass(frozen=True)
class ModelConfig:
    """The reference constructor's keys and defaults (cidautai/DarkIR, plus ``use_csf``/``csf_reduction`` of the
    CSF variant). Checkpoints store :meth:`as_kwargs`; options files write ``img_channel`` as
    ``network.img_channels``. Each field's metadata holds its bounds (``ge``: the least value of a number;
    ``le``, ``item_le`` and ``max_length`` the most; ``item_ge`` and ``min_length``: the least entry and length of a
    sequence), checked here (:func:`config_problems`)
    and by options files, and the description that options files show."""

    img_channel: int = field(default=3, metadata={"ge": 1, "le": 64})
    width: int = field(default=32, metadata={"ge": 1, "le": MAX_WIDTH})
    middle_blk_num_enc: int = field(default=2, metadata={"ge": 0, "le": MAX_BLOCKS})
    middle_blk_num_dec: int = field(default=2, metadata={"ge": 0, "le": MAX_BLOCKS})
    enc_blk_nums: tuple[int, ...] = field(
        default=(1, 2, 3), metadata=_blocks_per_stage("blocks per encoder stage (one stage per entry)")
    )
    dec_blk_nums: tuple[int, ...] = field(
        default=(3, 1, 1), metadata=_blocks_per_stage("blocks per decoder stage (as many entries as enc_blk_nums)")
    )
    dilations: tuple[int, ...] = field(
        default=(1, 4, 9),
        metadata={
            "item_ge": 1,
            "item_le": MAX_DILATION,
            "min_length": 1,
            "max_length": MAX_STAGES,
            "description": "dilation of each branch of the decoder blocks",
        },
    )
    extra_depth_wise: bool = True
    use_csf: bool = field(
        default=False, metadata={"description": "Cross-Scale Fusion gates on the skips (the seed's variant)"}
    )
    csf_reduction: int = field(default=4, metadata={"ge": 1, "description": "CSF gate bottleneck ratio C -> C/r"})

    def __post_init__(self) -> None:
        for name in SEQUENCE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        found = config_problems({item.name: getattr(self, item.name) for item in fields(self)})
        if found:
            raise ConfigError("invalid model config: " + "; ".join(f"{name}: {why}" for name, why in found))

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

    def differences(self, other: ModelConfig) -> dict[str, tuple[Any, Any]]:
        """``field: (mine, other's)`` for each field in which ``other`` differs from this config (as :meth:`as_kwargs`
        writes them)."""
        mine, theirs = self.as_kwargs(), other.as_kwargs()
        return {key: (mine[key], theirs[key]) for key in mine if mine[key] != theirs[key]}


def config_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, what is wrong) for each value of ``values`` (every :class:`ModelConfig` field) outside its bounds: the
    ``ge`` of a number, the ``item_ge`` and ``min_length`` of a sequence, true or false for a switch, and one decoder
    stage per encoder stage."""
    found = []
    for item in fields(ModelConfig):
        value, bounds = values[item.name], item.metadata
        if "ge" in bounds and not _is_int(value):
            found.append((item.name, f"must be a whole number, got {short_repr(value)}"))
        elif "ge" in bounds and value < bounds["ge"]:
            found.append((item.name, f"must be at least {bounds['ge']}, got {short_repr(value)}"))
        elif "le" in bounds and value > bounds["le"]:
            found.append((item.name, f"must be at most {bounds['le']}, got {short_repr(value)}"))
        elif item.name in SEQUENCE_FIELDS:
            found.extend((item.name, why) for why in _sequence_problems(value, bounds))
        elif item.type in (bool, "bool") and not isinstance(value, bool):
            found.append((item.name, f"must be true or false, got {short_repr(value)}"))
    enc, dec = values["enc_blk_nums"], values["dec_blk_nums"]
    if isinstance(enc, tuple) and isinstance(dec, tuple) and len(enc) != len(dec):
        why = (
            f"{short_repr(list(enc))} and dec_blk_nums {short_repr(list(dec))} must have the same length"
            " (one decoder stage per encoder one)"
        )
        found.append(("enc_blk_nums", why))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sequence_problems(value: Any, bounds: Mapping[str, Any]) -> list[str]:
    """What is wrong with a sequence field's ``value`` under its ``item_ge``/``min_length`` bounds."""
    if not isinstance(value, tuple) or not all(_is_int(entry) for entry in value):
        return [f"must be a list of whole numbers, got {short_repr(value)}"]
    least, shortest = bounds.get("item_ge", 0), bounds.get("min_length", 0)
    most, longest = bounds.get("item_le"), bounds.get("max_length")
    problems = []
    if len(value) < shortest:
        problems.append(f"must hold at least {shortest} value(s), got {short_repr(list(value))}")
    if longest is not None and len(value) > longest:
        problems.append(f"must hold at most {longest} values, got {len(value)}")
    if any(entry < least for entry in value):
        problems.append(f"each entry must be at least {least}, got {short_repr(list(value))}")
    if most is not None and any(entry > most for entry in value):
        problems.append(f"each entry must be at most {most}, got {short_repr(list(value))}")
    return problems


def check_fields(changes: Mapping[str, Any]) -> None:
    """Refuse names that are not :class:`ModelConfig` fields, naming them (a :class:`ConfigError`)."""
    known = [f.name for f in fields(ModelConfig)]
    unknown = [name for name in changes if name not in known]
    if unknown:
        raise ConfigError(f"unknown model config key(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")


#: The defaults, for signatures and option fields.
DEFAULTS = ModelConfig()
