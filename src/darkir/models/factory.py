"""The one way to make a model: :func:`create_model`, from a zoo name, a checkpoint or a :class:`ModelConfig`."""

from __future__ import annotations

import os
import reprlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from darkir.errors import CheckpointError, ConfigError, DarkIRError, OutOfMemoryError, first_line
from darkir.models import zoo
from darkir.models.config import ModelConfig, check_fields
from darkir.models.darkir import DarkIR
from darkir.models.state_dict import check_fits
from darkir.models.weights import read_weights


def create_model(
    source: str | os.PathLike[str] | ModelConfig | None = None, *, require_weights: bool = False, **overrides: Any
) -> DarkIR:
    """A DarkIR in eval mode, made from ``source``:

    - ``None``: the default weights (:data:`darkir.models.zoo.DEFAULT_WEIGHTS`);
    - a zoo name (``darkir.list_models()``): its packaged weights where it ships them, else a random init;
    - a checkpoint path, in any layout darkir reads (ours, official, BasicSR, DDP): its weights, with the config
      stored in it, else the one inferred from its tensors;
    - a :class:`ModelConfig`: that network, randomly initialized.

    ``overrides`` replace fields of the config (an unknown field is a :class:`~darkir.errors.ConfigError` naming it);
    with weights that store a config they must agree with it (else a :class:`CheckpointError` names the fields).
    ``require_weights``: refuse a source without trained weights (where a random init would restore nonsense).
    """
    check_fields(overrides)
    if source is not None and not isinstance(source, (str, os.PathLike, ModelConfig)):
        module = isinstance(source, nn.Module)  # (whose repr is hundreds of lines)
        about = "; a model made already goes to Restorer(model) as it is" if module else f" ({reprlib.repr(source)})"
        raise DarkIRError(
            f"source: a model name, a checkpoint path or a ModelConfig, not a {type(source).__name__}{about}"
        )
    source = _default_weights() if source is None else source
    if _carries_weights(source):
        return load_model(source, config=overrides or None)
    if require_weights:
        name = f"model {source!r}" if isinstance(source, str) else "a ModelConfig"
        raise CheckpointError(f"{name} ships no weights; pass a checkpoint path instead")
    return build_model(source, **overrides).eval()


def build_model(config: ModelConfig | Mapping[str, Any] | str | None = None, **overrides: Any) -> DarkIR:
    """A randomly initialized DarkIR (in training mode) from a zoo name or config: the random init of
    :func:`create_model`, and the one place a DarkIR is made. On the CPU, a config whose weights would not fit in
    the free memory is an OutOfMemoryError (a MemoryError) naming their size (torch's allocator named only bytes)."""
    return _made(zoo.resolve_config(config, **overrides))


def _made(config: ModelConfig, shapes: DarkIR | None = None) -> DarkIR:
    """A DarkIR of a whole ``config`` on the default device, in float32 whatever torch's default dtype (a host
    application's float64); on the CPU, its weights' memory checked first (from ``shapes``, its twin on the meta
    device, where the caller has one)."""
    if torch.get_default_device().type == "cpu":
        _check_weights_fit(config, shapes)
    return DarkIR(config=config).float()


def _check_weights_fit(config: ModelConfig, shapes: DarkIR | None) -> None:
    """Raise an OutOfMemoryError where the weights of a DarkIR of ``config`` (``shapes``, else one made on the meta
    device) need more memory than the CPU has free."""
    from darkir.hostmemory import cpu_available_memory
    from darkir.memory_sizes import format_memory

    if shapes is None:
        with torch.device("meta"):
            try:
                shapes = DarkIR(config=config)
            except RuntimeError as exc:  # sizes past what torch can index (a width of 10**9, say)
                raise ConfigError(f"no model can be made of this config ({first_line(exc)})") from None
    need = sum(p.numel() * p.element_size() for p in shapes.parameters())
    free = cpu_available_memory()
    if need > free:
        raise OutOfMemoryError(
            f"a DarkIR of width {config.width} holds {format_memory(need)} of weights, more than the "
            f"{format_memory(free)} free"
        )


def load_model(
    weights: str | os.PathLike[str],
    config: ModelConfig | Mapping[str, Any] | str | None = None,
    device: str | torch.device = "cpu",
) -> DarkIR:
    """A DarkIR in eval mode with the weights of a checkpoint (any layout) or zoo name: the loader of
    :func:`create_model`. ``config`` replaces fields of the checkpoint's own (see
    :func:`~darkir.models.weights.read_weights`); any key or shape mismatch raises :class:`CheckpointError`."""
    settings, state_dict, path = read_weights(weights, config)
    with torch.device("meta"):  # shapes only: a config that does not fit is refused before any memory is taken
        try:
            shapes = build_model(settings)
        except RuntimeError as exc:  # sizes past what torch can index (a width of 10**9, say)
            reason = first_line(exc)
            raise CheckpointError(f"checkpoint {path}: no model can be made of its config ({reason})") from None
        check_fits(shapes, state_dict, source=f"checkpoint {path}")
    with torch.random.fork_rng(devices=[]):  # the random init the weights replace leaves the caller's RNG as it was
        model = _made(settings, shapes)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device).eval()


def _carries_weights(source: str | os.PathLike[str] | ModelConfig) -> bool:
    """Whether ``source`` names weights: a checkpoint path or a zoo name that ships them (not a bare config)."""
    if isinstance(source, ModelConfig):
        return False
    return not (isinstance(source, str) and zoo.has_model(source) and zoo.get_spec(source).weights is None)


def _default_weights() -> str:
    """The name of the default weights; a :class:`CheckpointError` when this version ships none."""
    if zoo.DEFAULT_WEIGHTS is None:
        raise CheckpointError("no weights given, and this version ships no default weights: name a checkpoint")
    return zoo.DEFAULT_WEIGHTS
