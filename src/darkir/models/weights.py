"""Which weights to load and with which config: zoo names to packaged files, checkpoint paths to their own config
(stored, the zoo's, or inferred), and the fields a caller changes checked against a stored config."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from darkir.checkpoint import StateDict, read_checkpoint
from darkir.errors import CheckpointError, ConfigError, ConfigMismatchError, first_line
from darkir.models.config import ModelConfig
from darkir.models.state_dict import infer_config
from darkir.models.zoo import get_spec, has_model, list_models, resolve_config

#: A weights argument that is a URL (``https://...``, ``hf://...``): named as such, since nothing is downloaded.
_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def packaged_weights_path(filename: str) -> Path:
    """Path of a weights file shipped inside the package (``darkir/weights/``)."""
    return Path(str(resources.files("darkir") / "weights" / filename))


def resolve_weights(name_or_path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any] | None]:
    """Map a zoo name with packaged weights, or a file path, to (path, zoo config or None)."""
    text = str(name_or_path)
    if not text.strip():
        raise CheckpointError("the weights name is empty (an unset variable?): give a model name or a checkpoint path")
    if has_model(text):
        spec = get_spec(text)
        if not spec.weights:
            raise CheckpointError(f"model {text!r} ships no weights; pass a checkpoint path instead")
        return packaged_weights_path(spec.weights), spec.config
    path = Path(text).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(text.strip().lower(), list_models(pretrained=True), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        if _URL.match(text):
            hint = " (a URL: darkir downloads nothing; download the file and give its path)"
        raise CheckpointError(f"weights not found: {text!r} is neither a file nor a model name with weights{hint}")
    return path, None


def _check_agrees(asked: ModelConfig, stored: ModelConfig, path: Path) -> None:
    """Refuse a config asked for that contradicts the one saved with the weights (a silently wrong model)."""
    differences = asked.differences(stored)
    if differences:
        listed = "; ".join(f"{key} {mine} vs {theirs}" for key, (mine, theirs) in differences.items())
        raise ConfigMismatchError(
            f"{path}: the network config asked for contradicts the one stored with these weights "
            f"({listed}: asked vs stored); change those settings or choose other weights",
            differences,
        )


def read_weights(
    weights: str | os.PathLike[str], config: ModelConfig | Mapping[str, Any] | str | None = None
) -> tuple[ModelConfig, StateDict, Path]:
    """The config to build for the weights of a checkpoint (any layout) or zoo name, those weights, and their file.

    The config is the checkpoint's own (stored in it, else its zoo entry's, else inferred from its tensors) with
    the fields ``config`` gives replaced (a ModelConfig or zoo name gives them all, a mapping those it names); it
    must agree with a stored one.
    """
    path, zoo_config = resolve_weights(weights)
    state_dict, stored_config, _ = read_checkpoint(path)
    try:
        chosen = _config_to_build(state_dict, stored_config or zoo_config, config)
        stored = resolve_config(stored_config) if config is not None and stored_config else None
    except CheckpointError as exc:  # weights that tell no config (another model's)
        raise CheckpointError(f"{path}: {first_line(exc)}") from None
    except (ConfigError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: unusable model config: {first_line(exc)}") from None
    if stored is not None:
        _check_agrees(chosen, stored, path)
    return chosen, state_dict, path


def _config_to_build(
    state_dict: Mapping[str, torch.Tensor],
    own: Mapping[str, Any] | None,
    config: ModelConfig | Mapping[str, Any] | str | None,
) -> ModelConfig:
    """``own`` (else one inferred from ``state_dict``) with the fields of ``config`` replaced; a whole config (a
    ModelConfig, a zoo name or a mapping of every field) is used as it is, and nothing is inferred for it."""
    if isinstance(config, (ModelConfig, str)):
        return resolve_config(config)
    changes = dict(config or {})
    whole = {f.name for f in fields(ModelConfig)} <= changes.keys()
    if own is None and not whole:
        own = infer_config(state_dict, changes.get("dilations"))
    return resolve_config(own, **changes)
