"""One checkpoint format, and reading of every layout people have (official, BasicSR, DDP, ours) safely; ours are
written in place atomically (:mod:`darkir.replacing`).

Our checkpoints are ``.pt`` files holding ``{"state_dict", "config", ...training state}`` or
``.safetensors`` files with the model config in their metadata. Bare state dicts (the official
DarkIR releases) get their config inferred from key names and tensor shapes (:mod:`darkir.models.state_dict`);
:mod:`darkir.models.weights` chooses the weights and config to build, :mod:`darkir.models.factory` builds the model;
:mod:`darkir.weightfiles` says why a file cannot be read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from darkir.errors import CheckpointError, first_line, short_repr, some_of, warn
from darkir.models.config import ModelConfig
from darkir.replacing import replace_file
from darkir.weightfiles import safetensors_problem, torch_load

#: Keys under which known training codes nest the model weights, in the order they are tried.
#: (A BasicSR-style file with both ``params_ema`` and ``params`` gives its averaged weights, the ones it is evaluated
#: with, as spandrel and Real-ESRGAN's inference load them.)
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "params_ema", "params", "model", "net_g", "net")
#: Prefixes added by wrappers (DistributedDataParallel, torch.compile, a Lightning module's ``model`` or ``net``)
#: and stripped on load, in any order, where every key has one.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
SAFETENSORS_CONFIG_KEY = "darkir_config"

StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, Any] | None, dict[str, Any]]:
    """Read ``path`` and return (model state_dict, model config if stored, the whole payload)."""
    if not str(path).strip():
        raise CheckpointError("the checkpoint path is empty (an unset variable?); an empty path is not a file")
    path = Path(path).expanduser()  # as create_model takes it
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file (a pipe or a device?); give the file itself")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    payload = torch_load(path, lambda why: f"cannot read checkpoint {path}: {why}")
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a state_dict mapping")
    state_dict = _find_state_dict(payload, path)
    return state_dict, _network_config(payload.get("config"), path), dict(payload)


def _network_config(config: object, path: Path) -> dict[str, Any] | None:
    """The model config a ``.pt`` file stores under ``config``: None where there is none, or where that entry names
    no network setting (another code's training settings, ``lr`` and ``epochs`` say), which is then warned of."""
    if not isinstance(config, Mapping) or not config:
        return None
    config = _by_field_names(config)
    if not set(config) & {field.name for field in fields(ModelConfig)}:
        warn(
            f"{path}: its 'config' entry holds no network settings ({some_of([str(key) for key in config], 4)}): "
            "left out, the network is read off the weights"
        )
        return None
    return config


def _by_field_names(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model config with the options files' ``img_channels`` (copied from a ``network:`` section) under
    :class:`ModelConfig`'s name, ``img_channel``."""
    config = dict(config)
    if "img_channels" in config and "img_channel" not in config:
        config["img_channel"] = config.pop("img_channels")
    return config


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, Any] | None, dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:
        why = safetensors_problem(path) or first_line(exc)
        raise CheckpointError(f"cannot read safetensors file {path}: {why}") from exc
    config = None
    if SAFETENSORS_CONFIG_KEY in metadata:
        try:
            config = json.loads(metadata[SAFETENSORS_CONFIG_KEY])
        except (json.JSONDecodeError, RecursionError) as exc:
            why = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply to read"
            key = SAFETENSORS_CONFIG_KEY
            raise CheckpointError(f"{path}: its '{key}' metadata is not valid JSON ({why})") from None
        if not isinstance(config, dict):
            raise CheckpointError(
                f"{path}: its '{SAFETENSORS_CONFIG_KEY}' metadata is a JSON {type(config).__name__}, not an object"
            )
    config = None if config is None else _by_field_names(config)
    return _strip_prefixes(state_dict), config, {"state_dict": state_dict, "metadata": metadata}


def _find_state_dict(payload: Mapping[str, Any], path: Path) -> StateDict:
    """The model's weights in ``payload``: under one of :data:`STATE_DICT_KEYS`, else the payload itself; entries
    that hold no tensor at all beside the weights (a ``version: 2``) are left out, with a warning naming them."""
    for candidate in [payload.get(key) for key in STATE_DICT_KEYS] + [payload]:
        weights = _weights_in(candidate, path)
        if weights is not None:
            return _strip_prefixes(weights)
    raise CheckpointError(
        f"checkpoint {path} has no model weights: expected a state_dict or one under "
        f"{', '.join(map(repr, STATE_DICT_KEYS))}; "
        + (f"top-level keys are {', '.join(map(repr, list(payload)[:10]))}" if payload else "it holds nothing")
    )


def _weights_in(candidate: object, path: Path) -> StateDict | None:
    """``candidate``'s tensors where it is a state_dict: a mapping of tensors, beside which it may hold plain values
    (numbers, text, None; left out with a warning); None where it is not."""
    if not isinstance(candidate, Mapping):
        return None
    weights = {key: value for key, value in candidate.items() if torch.is_tensor(value)}
    others = [key for key in candidate if key not in weights]
    if not weights or any(not isinstance(candidate[key], (int, float, str, bool, type(None))) for key in others):
        return None
    if others:
        listed = some_of([f"{key!r} ({short_repr(candidate[key])})" for key in others], 5)
        warn(f"checkpoint {path}: beside the weights, left out what holds no tensor: {listed}")
    return dict(weights)


def _strip_prefixes(state_dict: StateDict) -> StateDict:
    """``state_dict`` with the :data:`WRAPPER_PREFIXES` every key has removed, however nested (``module._orig_mod.``
    and ``_orig_mod.module.`` alike)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                stripped = True
    return state_dict


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *, overwrite: bool = True, **state: Any) -> Path:
    """Atomically write a DarkIR's weights and config (and any training ``state``) to ``path``; without
    ``overwrite``, a file there (one made meanwhile too) is kept and an OutputExistsError raised.

    ``.safetensors`` stores the weights only (config in the metadata); other suffixes store a
    ``torch.save`` dict ``{"state_dict", "config", **state}``.
    """
    path = Path(path).expanduser()
    if state and path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path}: .safetensors holds weights and config only; {', '.join(sorted(state))} would be lost "
            "(save training state to a .pt file)"
        )
    bare = _unwrap(model)
    if not isinstance(getattr(bare, "config", None), Mapping):
        raise CheckpointError(
            f"{path}: save_checkpoint writes a DarkIR model with its config (darkir.create_model), got "
            f"{type(model).__name__}; nothing written"
        )
    config = dict(bare.config)
    state_dict = _weights(bare)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        metadata = {SAFETENSORS_CONFIG_KEY: json.dumps(config)}
        return replace_file(path, lambda tmp: save_file(state_dict, tmp, metadata=metadata), overwrite)
    content = {"state_dict": state_dict, "config": config, **state}
    return replace_file(path, lambda tmp: torch.save(content, tmp), overwrite)


def save_official_checkpoint(path: str | os.PathLike[str], model: nn.Module, *, overwrite: bool = True) -> Path:
    """Atomically write a DarkIR's weights in the official repository's layout, ``{"params": state_dict}`` (what its
    testing.py and inference.py read); no config is stored: their options' ``network:`` section must describe it.
    Without ``overwrite``, as :func:`save_checkpoint`."""
    state_dict = _weights(_unwrap(model))
    return replace_file(Path(path), lambda tmp: torch.save({"params": state_dict}, tmp), overwrite)


def _weights(model: nn.Module) -> StateDict:
    """``model``'s state_dict on the CPU, each tensor contiguous (as files store them)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
