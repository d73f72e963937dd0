"""One checkpoint format, and reading of every layout people have (official, BasicSR, DDP, ours); models are
built from what it reads by :mod:`darkir.models.factory`.

Our checkpoints are ``.pt`` files holding ``{"state_dict", "config", ...training state}`` or
``.safetensors`` files with the model config in their metadata. Bare state dicts (the official
DarkIR releases) get their config inferred from key names and tensor shapes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import stat
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from darkir.errors import CheckpointError, ConfigError, first_line
from darkir.models.config import DEFAULTS, ModelConfig
from darkir.models.zoo import get_spec, has_model, resolve_config

#: Keys under which known training codes nest the model weights, in the order they are tried.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "params", "params_ema", "model")
#: Prefixes added by wrappers (DistributedDataParallel, torch.compile) and stripped on load.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SAFETENSORS_CONFIG_KEY = "darkir_config"

StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, Any] | None, dict[str, Any]]:
    """Read ``path`` and return (model state_dict, model config if stored, the whole payload)."""
    if not str(path).strip():
        raise CheckpointError("the checkpoint path is empty (an unset variable?); an empty path is not a file")
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    payload = _torch_load(path, lambda why: f"cannot read checkpoint {path}: {why}")
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a state_dict mapping")
    state_dict = _find_state_dict(payload, path)
    config = payload.get("config") if isinstance(payload.get("config"), Mapping) else None
    return state_dict, (dict(config) if config else None), dict(payload)


def load_weights_file(path: str | os.PathLike[str], expected: str) -> object:
    """What a weights file of another project holds (``torch.load``, weights only, on the CPU); a CheckpointError
    naming ``path`` and ``expected`` (what it should hold) when it cannot be read or unpickled."""
    return _torch_load(Path(path), lambda why: f"{path}: {why}; {expected}")


def _torch_load(path: Path, message: Callable[[str], str]) -> object:
    """``torch.load`` of ``path``, weights only, on the CPU; a CheckpointError with ``message(why it failed)``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt, cut-short or non-torch files
        refused = _unsafe_global(exc)
        if refused is not None and _file_kind(path) == "torch":  # a real pickle: not another kind of file
            why = (
                f"it holds pickled Python objects ({refused}), not only tensors and plain data, so darkir does not "
                "load it, for safety (unpickling such objects can run code)"
            )
            raise CheckpointError(message(why)) from None
        cause = None if refused is not None else exc  # torch's weights_only advice does not fit a non-pickle
        raise CheckpointError(message(_torch_file_problem(path, exc))) from cause


def _unsafe_global(exc: BaseException) -> str | None:
    """The Python object a weights-only ``torch.load`` refused (``'an object'`` when torch does not name it), or None
    when ``exc`` is another failure."""
    text = str(exc)
    if not (isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in text):
        return None
    match = re.search(r"GLOBAL ([\w.]+)", text)
    return match[1] if match else "an object"


#: How files start: a zip archive (torch.save's format) and a pickle (torch's legacy format).
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"
#: How files that people mistake for weights start -> what they are.
_OTHER_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}


def _file_kind(path: Path) -> str | None:
    """What ``path`` holds by its first bytes: ``"torch"`` (a zip archive or a pickle, torch's formats),
    ``"safetensors"`` (an 8-byte header length, then a JSON header), an image named as in :data:`_OTHER_MAGIC`,
    or None (something else, or unreadable)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return None
    if head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return "torch"
    if len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    return next((kind for magic, kind in _OTHER_MAGIC.items() if head.startswith(magic)), None)


def _torch_file_problem(path: Path, exc: BaseException) -> str:
    """Why torch could not read ``path``: empty, cut short, not a PyTorch file, or else torch's own words."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(len(_ZIP_MAGIC))
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    if size == 0 or (head.startswith(_ZIP_MAGIC) and not zipfile.is_zipfile(path)):
        return _cut_short(size)
    if head.startswith(_PICKLE_MAGIC):
        ends_early = isinstance(exc, EOFError) or any(word in str(exc) for word in ("EOF", "truncated"))
        return _cut_short(size) if ends_early else first_line(exc)
    if head.startswith(_ZIP_MAGIC):
        return first_line(exc)
    kind = _file_kind(path)
    if kind == "safetensors":
        return "not a PyTorch weights file (it is a safetensors file: give it the .safetensors suffix)"
    return f"not a PyTorch weights file (it is {kind})" if kind else "not a PyTorch weights file"


def _cut_short(size: int) -> str:
    """Why a file of ``size`` bytes that ends before its format says it does cannot be read."""
    if size == 0:
        return "the file is empty"
    return f"it is truncated ({size} bytes; a cut-off download or copy?) or damaged"


def state_mismatch(state: object, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """What keeps ``state`` from holding a tensor of each of ``shapes`` (the first such thing); None if nothing."""
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        return f"it holds a {type(state).__name__}, not a state_dict"
    for key, shape in shapes.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor):
            return f"{key} is missing"
        if tuple(value.shape) != tuple(shape):
            return f"{key} has shape {tuple(value.shape)}, not {tuple(shape)}"
    return None


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, Any] | None, dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:
        why = _safetensors_problem(path) or first_line(exc)
        raise CheckpointError(f"cannot read safetensors file {path}: {why}") from exc
    config = None
    if SAFETENSORS_CONFIG_KEY in metadata:
        try:
            config = json.loads(metadata[SAFETENSORS_CONFIG_KEY])
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"{path}: its '{SAFETENSORS_CONFIG_KEY}' metadata is not valid JSON ({exc})"
            ) from None
        if not isinstance(config, dict):
            raise CheckpointError(
                f"{path}: its '{SAFETENSORS_CONFIG_KEY}' metadata is a JSON {type(config).__name__}, not an object"
            )
    return _strip_prefixes(state_dict), config, {"state_dict": state_dict, "metadata": metadata}


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with the layout of the .safetensors file ``path`` (8-byte header length, JSON header, tensor
    data): cut short, or not a safetensors file; None when it looks whole."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = handle.read(min(length, size))
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    if size < 8 or length > size - 8:
        if size < 8 or header[:1] == b"{":
            return _cut_short(size)
        return "not a safetensors file (its first 8 bytes are not the length of a header)"
    try:
        entries = json.loads(header).values()
        end = max((int(entry["data_offsets"][1]) for entry in entries if "data_offsets" in entry), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if 8 + length + end > size:
        return f"it is truncated: {size} bytes, but its header describes {8 + length + end} (a cut-off download?)"
    return None


def _find_state_dict(payload: Mapping[str, Any], path: Path) -> StateDict:
    for key in STATE_DICT_KEYS:
        nested = payload.get(key)
        if isinstance(nested, Mapping) and nested and all(torch.is_tensor(v) for v in nested.values()):
            return _strip_prefixes(dict(nested))
    if payload and all(torch.is_tensor(v) for v in payload.values()):
        return _strip_prefixes(dict(payload))
    raise CheckpointError(
        f"checkpoint {path} has no model weights: expected a state_dict or one under "
        f"{', '.join(map(repr, STATE_DICT_KEYS))}; top-level keys are {', '.join(map(repr, list(payload)[:10]))}"
    )


def _strip_prefixes(state_dict: StateDict) -> StateDict:
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict


def infer_config(state_dict: Mapping[str, torch.Tensor], dilations: Sequence[int] | None = None) -> dict[str, Any]:
    """Infer DarkIR constructor kwargs from a bare state_dict's key names and shapes.

    Width, channel count, block counts per stage, the extra depth-wise conv and CSF with its
    reduction are read off the tensors; dilation values cannot be (all kernels are 3x3), so a
    three-branch checkpoint gets the reference's ``[1, 4, 9]`` and other counts need ``dilations``.
    """
    if "intro.weight" not in state_dict:
        raise CheckpointError(
            "cannot infer a DarkIR config: the state_dict has no 'intro.weight' (not a DarkIR checkpoint?)"
        )
    width, img_channel = state_dict["intro.weight"].shape[:2]
    config = DEFAULTS.replace(
        img_channel=int(img_channel),
        width=int(width),
        enc_blk_nums=_blocks_per_stage(state_dict, "encoders"),
        dec_blk_nums=_blocks_per_stage(state_dict, "decoders"),
        middle_blk_num_enc=_blocks_in(state_dict, "middle_blks_enc"),
        middle_blk_num_dec=_blocks_in(state_dict, "middle_blks_dec"),
        dilations=_dilations(state_dict) if dilations is None else dilations,
        extra_depth_wise=any(".extra_conv." in k for k in state_dict),
        use_csf=any(k.startswith("csf_blocks.") for k in state_dict),
    )
    if config.use_csf:
        hidden, channels = state_dict["csf_blocks.0.gate.1.weight"].shape[:2]
        config = config.replace(csf_reduction=max(int(channels) // int(hidden), 1))
    return config.as_kwargs()


def _blocks_per_stage(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Blocks in each stage of ``prefix`` (``encoders``/``decoders``), from the highest block index per stage."""
    pattern = re.compile(rf"^{prefix}\.(\d+)\.modules_list\.(\d+)\.")
    counts: dict[int, int] = {}
    for key in state_dict:
        if match := pattern.match(key):
            stage, block = int(match[1]), int(match[2])
            counts[stage] = max(counts.get(stage, 0), block + 1)
    return [counts.get(i, 0) for i in range(max(counts, default=-1) + 1)]


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
    model.load_state_dict(state_dict, strict=True)


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
        raise CheckpointError(f"weights not found: {text!r} is neither a file nor a model name with weights")
    return path, None


def _check_agrees(asked: ModelConfig, stored: ModelConfig, path: Path) -> None:
    """Refuse a config asked for that contradicts the one saved with the weights (a silently wrong model)."""
    differences = asked.differences(stored)
    if differences:
        raise CheckpointError(
            f"{path}: the network config asked for contradicts the one stored with these weights "
            f"({'; '.join(differences)}: asked vs stored); change those settings or choose other weights"
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


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, **state: Any) -> Path:
    """Atomically write a DarkIR's weights and config (and any training ``state``) to ``path``.

    ``.safetensors`` stores the weights only (config in the metadata); other suffixes store a
    ``torch.save`` dict ``{"state_dict", "config", **state}``.
    """
    path = Path(path)
    if state and path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path}: .safetensors holds weights and config only; {', '.join(sorted(state))} would be lost "
            "(save training state to a .pt file)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    bare = _unwrap(model)
    config = dict(bare.config)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in bare.state_dict().items()}
    tmp_name = str(temporary_path(path))
    try:
        mode = _new_file_mode(path, Path(tmp_name))
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state_dict, tmp_name, metadata={SAFETENSORS_CONFIG_KEY: json.dumps(config)})
        else:
            torch.save({"state_dict": state_dict, "config": config, **state}, tmp_name)
        _set_mode(tmp_name, mode)  # safetensors writes its files readable by their owner only
        with open(tmp_name, "rb+") as handle:  # on the disk before it replaces the previous checkpoint
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        raise CheckpointError(_write_failure(path, exc)) from None
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def save_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` to ``path`` (e.g. the options beside a checkpoint): a failed write never leaves it
    empty or cut short, and the previous file stays as it was."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        mode = _new_file_mode(path, tmp)
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _set_mode(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(_write_failure(path, exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _new_file_mode(path: Path, tmp: Path) -> int:
    """The permissions ``path`` is written with: those of the file it replaces, else those of a new file under the
    current umask (read off ``tmp``, created here afresh, where ``path`` is written first)."""
    tmp.unlink(missing_ok=True)
    tmp.touch(mode=0o666, exist_ok=False)  # the umask applies, as to any file open() creates
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return stat.S_IMODE(tmp.stat().st_mode)


def _set_mode(tmp: str | os.PathLike[str], mode: int) -> None:
    """Give ``tmp`` the permissions ``mode`` (kept as they are where the file system has no permissions)."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


def temporary_path(path: Path) -> Path:
    """The file ``path`` is written to before it replaces ``path``: ``.<name>.<pid>.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


#: Free bytes below which a failed write is taken for a full disk (torch.save does not report the errno).
_FULL_DISK_BYTES = 1 << 20


def _write_failure(path: Path, exc: BaseException) -> str:
    """One line on why writing ``path`` failed (called while its temporary file still holds the space it took)."""
    kept = "; the previous one is kept" if path.exists() else ""
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    else:
        full = shutil.disk_usage(path.parent).free < _FULL_DISK_BYTES
    if full:
        return f"no space left on device writing {path}{kept}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
    return f"cannot write {path}: {reason}{kept}"


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
