"""What a DarkIR's state_dict says about its network: the config read off key names and tensor shapes
(:func:`infer_config`, for bare official checkpoints) and a strict load that names every mismatch."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from darkir.errors import CheckpointError, some_of
from darkir.models.config import DEFAULTS


def infer_config(state_dict: Mapping[str, torch.Tensor], dilations: Sequence[int] | None = None) -> dict[str, Any]:
    """Infer DarkIR constructor kwargs from a bare state_dict's key names and shapes.

    Width, channel count, block counts per stage, the extra depth-wise conv and CSF with its
    reduction are read off the tensors; dilation values cannot be (all kernels are 3x3), so a
    three-branch checkpoint gets the reference's ``[1, 4, 9]`` and other counts need ``dilations``.
    """
    if "intro.weight" not in state_dict:
        nested = sorted(key[: -len("intro.weight")] for key in state_dict if key.endswith(".intro.weight"))
        why = (
            f"its keys start with {nested[0]!r} beside others (a DarkIR inside a larger module: keep the entries "
            f"under {nested[0]!r}, without it)"
            if nested
            else "not a DarkIR checkpoint?"
        )
        raise CheckpointError(f"cannot infer a DarkIR config: the state_dict has no 'intro.weight' ({why})")
    width, img_channel = state_dict["intro.weight"].shape[:2]
    config = DEFAULTS.replace(
        img_channel=int(img_channel),
        width=int(width),
        enc_blk_nums=_blocks_per_stage(state_dict, "encoders", "downs"),
        dec_blk_nums=_blocks_per_stage(state_dict, "decoders", "ups"),
        middle_blk_num_enc=_blocks_in(state_dict, "middle_blks_enc"),
        middle_blk_num_dec=_blocks_in(state_dict, "middle_blks_dec"),
        dilations=_dilations(state_dict) if dilations is None else dilations,
        extra_depth_wise=any(".extra_conv." in k for k in state_dict),
        use_csf=any(k.startswith("csf_blocks.") for k in state_dict),
    )
    gate = state_dict.get("csf_blocks.0.gate.1.weight")
    if config.use_csf and gate is not None:  # (without it, the strict load names the key missing)
        hidden, channels = gate.shape[:2]
        config = config.replace(csf_reduction=max(int(channels) // int(hidden), 1))
    return config.as_kwargs()


def settings_not_in_weights(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The entries of ``config`` that a bare ``state_dict`` does not tell (:func:`infer_config` would read them
    otherwise: in practice ``dilations`` other than the reference's): what an options file must state to rebuild it."""
    try:
        read = infer_config(state_dict)
    except CheckpointError:  # a branch count other than the reference's: the dilations cannot be guessed
        read = {**infer_config(state_dict, dilations=config["dilations"]), "dilations": None}
    return {key: value for key, value in config.items() if _plain(read.get(key)) != _plain(value)}


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (configs hold either)."""
    return list(value) if isinstance(value, tuple) else value


def _blocks_per_stage(state_dict: Mapping[str, torch.Tensor], prefix: str, scaling: str) -> list[int]:
    """Blocks in each stage of ``prefix`` (``encoders``/``decoders``), from the highest block index per stage; the
    stages counted by their resampling layers ``scaling`` (``downs``/``ups``) too, which a stage of no blocks has."""
    pattern = re.compile(rf"^{prefix}\.(\d+)\.modules_list\.(\d+)\.")
    counts: dict[int, int] = {}
    for key in state_dict:
        if match := pattern.match(key):
            stage, block = int(match[1]), int(match[2])
            counts[stage] = max(counts.get(stage, 0), block + 1)
    resampled = {int(m[1]) for key in state_dict if (m := re.match(rf"^{scaling}\.(\d+)\.", key))}
    return [counts.get(i, 0) for i in range(max(counts.keys() | resampled, default=-1) + 1)]


def _blocks_in(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Blocks in the single stack ``prefix`` (``middle_blks_enc``/``middle_blks_dec``)."""
    found = {int(m[1]) for k in state_dict if (m := re.match(rf"^{prefix}\.modules_list\.(\d+)\.", k))}
    return max(found, default=-1) + 1


def _dilations(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """The decoder blocks' dilations, as far as their branch count tells them."""
    branches = {
        int(m[1])
        for k in state_dict
        if (m := re.match(r"^(?:decoders\.\d+|middle_blks_dec)\.modules_list\.\d+\.branches\.(\d+)\.", k))
    }
    n_branches = max(branches, default=-1) + 1
    if n_branches == len(DEFAULTS.dilations):
        return DEFAULTS.dilations
    if n_branches == 1:
        return (1,)
    raise CheckpointError(
        f"cannot infer the dilations of a checkpoint with {n_branches} decoder branches; give them ('dilations')"
    )


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load ``state_dict`` into ``model`` only if keys and shapes match exactly; else raise naming them."""
    check_fits(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a CheckpointError naming the missing, unexpected and mis-shaped keys unless ``state_dict`` has exactly
    ``model``'s keys and shapes (``model`` may live on the meta device: only its shapes are read)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [f"{source} does not fit the model"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
                parts.append(f"{len(items)} {label} key(s): {shown}")
        raise CheckpointError("; ".join(parts))
    _check_values(expected, state_dict, source)


def _check_values(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming the tensors that are not real numbers where the model's are (integers,
    booleans, complex: loading would cast them without a word) or that hold NaN or infinite values (a damaged file,
    a diverged run): such weights would fail on every image, each time blamed on the image or the precision."""
    empty = [key for key, tensor in state_dict.items() if tensor.is_meta]
    if empty:
        raise CheckpointError(
            f"{source} holds tensors without values (on the meta device): {some_of(empty, 4)}; save the weights "
            "themselves"
        )
    sparse = [key for key, tensor in state_dict.items() if tensor.layout != torch.strided]
    if sparse:
        raise CheckpointError(f"{source} holds sparse tensors: {some_of(sparse, 4)}; save them dense (.to_dense())")
    kinds = [
        f"{key} ({state_dict[key].dtype})"
        for key, tensor in expected.items()
        if tensor.is_floating_point() and not state_dict[key].is_floating_point()
    ]
    if kinds:
        raise CheckpointError(f"{source} holds weights that are not real numbers: {some_of(kinds, 4)}")
    floats = {  # (isfinite has no kernel for some 8-bit floats: those are checked as float32)
        key: tensor if tensor.element_size() > 1 else tensor.float()
        for key, tensor in state_dict.items()
        if tensor.is_floating_point()
    }
    broken = [key for key, tensor in floats.items() if not bool(torch.isfinite(tensor).all())]
    if broken:
        raise CheckpointError(
            f"{source} holds NaN or infinite weights ({some_of(broken, 4)}): the file is damaged, or was saved by a "
            "training run that diverged"
        )
