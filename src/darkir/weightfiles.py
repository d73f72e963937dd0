"""Opening weight files safely (``torch.load`` weights only) and saying why one cannot be read: empty, cut short,
a pickle of arbitrary objects, or another kind of file (an image, a safetensors file under a .pt name).

:mod:`darkir.checkpoint` reads DarkIR checkpoints through it; :func:`load_weights_file` and :func:`state_mismatch`
serve the weights of other projects (LPIPS, Zero-DCE).
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from darkir.errors import CheckpointError, first_line, some_of, warnings_ignored


def load_weights_file(path: str | os.PathLike[str], expected: str) -> object:
    """What a weights file of another project holds (``torch.load``, weights only, on the CPU); a CheckpointError
    naming ``path`` and ``expected`` (what it should hold) when it cannot be read or unpickled."""
    return torch_load(Path(path), lambda why: f"{path}: {why}; {expected}")


def torch_load(path: Path, message: Callable[[str], str]) -> object:
    """``torch.load`` of ``path``, weights only (and numpy numbers, :func:`numpy_globals`), on the CPU; a
    CheckpointError with ``message(why it failed)``, also for an archive whose checksums fail (torch does not check
    them, so a damaged copy would load altered weights)."""
    if _file_kind(path) == _OTHER_PICKLE:
        raise CheckpointError(message(f"not a PyTorch weights file (it is {_OTHER_PICKLE})"))
    damaged = _failed_checksum(path)
    if damaged is not None:
        raise CheckpointError(message(f"it is damaged: its {damaged} fails its checksum (a bad download or copy?)"))
    try:
        # torch asks for an issue to be filed about legacy files of another pickle protocol than 2, and reads them
        with torch.serialization.safe_globals(numpy_globals()), warnings_ignored(message="Detected pickle protocol"):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt, cut-short or non-torch files
        refused = _unsafe_global(exc)
        if refused is not None and _file_kind(path) == "torch":  # a real pickle: not another kind of file
            raise CheckpointError(message(_refusal(path, refused, exc))) from None
        cause = None if refused is not None else exc  # torch's weights_only advice does not fit a non-pickle
        raise CheckpointError(message(_torch_file_problem(path, exc))) from cause


def _refusal(path: Path, refused: str, exc: BaseException) -> str:
    """Why torch's weights-only unpickler refused the torch file ``path`` (``refused``: what it named): an object it
    may not rebuild, or a legacy file of pickle protocol 4 or 5, whose opcodes that unpickler does not read."""
    legacy = _legacy_protocol(path)
    protocol = legacy or _archive_protocol(path)
    if protocol >= 4 and "Unsupported operand" in str(exc):
        layout = "in PyTorch's legacy format " if legacy else ""
        return (
            f"it is {layout}pickled with protocol {protocol}, "
            "which torch's weights-only loader cannot read; if it comes from a trusted source, save it again with "
            "torch.save(torch.load(path, weights_only=False), new_path)"
        )
    return (
        f"it holds pickled Python objects ({refused}), not only tensors and plain data, so darkir does not load it, "
        "for safety (unpickling such objects can run code)"
    )


#: Numeric dtype codes whose numpy scalars and arrays a weights file may hold: bool, signed and unsigned integers,
#: floats and complex numbers (no objects, strings or records).
_NUMERIC_DTYPES = "?bBhHiIlLqQefdgFDG"
#: numpy's core package, as numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``) name it in pickles.
_CORES = ("_core", "core")


def numpy_globals() -> list[Callable[..., object] | tuple[Callable[..., object], str]]:
    """What a weights-only load may rebuild besides tensors: numpy scalars and arrays of numeric dtypes (the official
    training code stores the epoch's loss as a numpy float), under numpy 2's module names and numpy 1's (files saved
    with either). Rebuilding them runs no code of the file's choosing."""
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    builders = [multiarray.scalar, multiarray._reconstruct]
    spelled = [(builder, f"numpy.{core}.multiarray.{builder.__name__}") for builder in builders for core in _CORES]
    kinds = [type(np.dtype(code)) for code in _NUMERIC_DTYPES]
    return [(_numeric_dtype, "numpy.dtype"), np.ndarray, *kinds, *builders, *spelled]


def _numeric_dtype(*args: object) -> np.dtype:
    """``numpy.dtype(*args)`` as a pickle rebuilds it, refused unless numeric (no objects, strings or records)."""
    dtype = np.dtype(*args)  # type: ignore[call-overload]
    if dtype.char not in _NUMERIC_DTYPES or dtype.fields is not None:
        raise pickle.UnpicklingError(f"Weights only load failed: numpy data of dtype {dtype.str!r} are not numbers")
    return dtype


def _unsafe_global(exc: BaseException) -> str | None:
    """The Python object a weights-only ``torch.load`` refused (``'an object'`` when torch does not name it), or None
    when ``exc`` is another failure."""
    text = str(exc)
    if not (isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in text):
        return None
    patterns = (r"GLOBAL ([\w.]+)", r"but got <class '([\w.]+)'>", r"(numpy data of dtype \S+)")
    match = next((found for pattern in patterns if (found := re.search(pattern, text))), None)
    return match[1] if match else "an object"


#: How files start: a zip archive (torch.save's format) and a pickle (torch's legacy format).
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"
#: How torch's legacy format goes on after a pickle's protocol opcode (and, from protocol 4, its frame): its magic
#: number, pickled as a 10-byte integer, before anything else.
_LEGACY_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
#: The most bytes :func:`_legacy_torch` reads: the protocol opcode (2), a frame (9) and the magic number (12).
_LEGACY_HEAD = 2 + 9 + len(_LEGACY_MAGIC)
#: What :func:`_file_kind` calls a pickle of anything else (torch would fail on its magic number, or warn first).
_OTHER_PICKLE = "a Python pickle of other data"
#: How files that people mistake for weights start -> what they are.
_OTHER_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}


def _failed_checksum(path: Path) -> str | None:
    """The first member of the zip archive ``path`` (torch.save's format) whose data does not match its recorded
    CRC; None where all match, or where ``path`` is not a readable zip archive (torch says what it is). Members with
    data and a CRC of 0 are skipped: torch writes that when saving without checksums
    (``torch.serialization.set_crc32_options(False)``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0 and info.file_size > 0:
                    continue
                try:
                    with archive.open(info) as member:  # checks the CRC when the member is read to its end
                        while member.read(1 << 24):
                            pass
                except zipfile.BadZipFile:  # (named within the archive: torch roots it in a folder named after
                    return info.filename.partition("/")[2] or info.filename  # the file it was saved to, a temporary)
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None
    return None


def kind_in_words(head: bytes, size: int) -> str | None:
    """What a file of ``size`` bytes that starts with ``head`` holds (:func:`_kind_of`), in words ("a PyTorch weights
    file", "a PNG image"...); None for something else."""
    kind = _kind_of(head, size)
    return {"torch": "a PyTorch weights file", "safetensors": "a safetensors weights file"}.get(kind, kind)


def _file_kind(path: Path) -> str | None:
    """What ``path`` holds by its first bytes (see :func:`_kind_of`); None for something else, or an unreadable file."""
    read = _head_and_size(path)
    return None if read is None else _kind_of(*read)


def _kind_of(head: bytes, size: int) -> str | None:
    """What a file of ``size`` bytes that starts with ``head`` holds: ``"torch"`` (torch's formats, a zip archive or a
    pickle of torch's magic number, or the start of one), :data:`_OTHER_PICKLE`, ``"safetensors"`` (an 8-byte header
    length, then a JSON header), an image named as in :data:`_OTHER_MAGIC`, or None (something else)."""
    if head.startswith(_ZIP_MAGIC) or _legacy_torch(head):
        return "torch"
    if head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:  # before pickles: a header of 128 + 256k
        return "safetensors"  # bytes starts with the byte a pickle starts with (a pickle's length bytes never fit)
    if head.startswith(_PICKLE_MAGIC):
        return _OTHER_PICKLE
    return next((kind for magic, kind in _OTHER_MAGIC.items() if head.startswith(magic)), None)


def not_weights(path: Path) -> str | None:
    """What the file ``path`` is, by its first bytes, where that is no weights file of torch's or safetensors' (an
    image, another pickle, something else: "not a PyTorch weights file"); None where it may be one, or cannot be read
    (reading it says why)."""
    read = _head_and_size(path)
    if read is None:
        return None
    kind = _kind_of(*read)
    if kind in ("torch", "safetensors"):
        return None
    return f"it is {kind}" if kind else "not a PyTorch weights file"


def _legacy_torch(head: bytes) -> bool:
    """Whether the bytes ``head`` begin torch's legacy format (a pickle of protocol 2 to 5 of its magic number), or
    all of them could (a file cut short within its first bytes)."""
    if not head or head[0] != _PICKLE_MAGIC[0]:
        return False
    if len(head) == 1:
        return True
    if head[1] not in range(2, 6):
        return False
    rest = head[2:]
    if rest[:1] == b"\x95":  # protocol 4 and 5 frame the pickle: the opcode and an 8-byte length
        rest = rest[9:]
    return _LEGACY_MAGIC.startswith(rest[: len(_LEGACY_MAGIC)])


def _legacy_protocol(path: Path) -> int:
    """The pickle protocol of the torch legacy-format file ``path``; 0 for a zip archive or an unreadable file."""
    head = _head(path) or b""
    return head[1] if len(head) > 1 and _legacy_torch(head) else 0


def _pickle_member(names: list[str]) -> str | None:
    """Of the member names of a zip archive, the one holding a torch archive's pickle (``<name>/data.pkl``); None in
    another kind of archive."""
    return next((name for name in names if name.endswith("/data.pkl")), None)


def _archive_protocol(path: Path) -> int:
    """The pickle protocol of the ``data.pkl`` in the torch archive ``path`` (``torch.save(pickle_protocol=N)``); 0
    where ``path`` is no such archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = _pickle_member(archive.namelist())
            if name is None:
                return 0
            with archive.open(name) as member:
                head = member.read(2)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return 0
    return head[1] if len(head) == 2 and head[0] == _PICKLE_MAGIC[0] else 0


def _head(path: Path) -> bytes | None:
    """The first bytes of ``path`` that :func:`_file_kind` and :func:`_legacy_protocol` look at; None if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(_LEGACY_HEAD)
    except OSError:
        return None


def _head_and_size(path: Path) -> tuple[bytes, int] | None:
    """The first bytes of ``path`` (as :func:`_head` reads them) and its size; None if either cannot be read."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    head = _head(path)
    return None if head is None else (head, size)


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
        return _other_archive(path) or first_line(exc)
    kind = _file_kind(path)
    if kind == "safetensors":
        return "not a PyTorch weights file (it is a safetensors file: give it the .safetensors suffix)"
    if kind is None and path.suffix.lower() == ".onnx":
        return "not a PyTorch weights file (an ONNX model, as darkir export-onnx writes: run it with ONNX Runtime)"
    return f"not a PyTorch weights file (it is {kind})" if kind else "not a PyTorch weights file"


def _other_archive(path: Path) -> str | None:
    """What the zip archive ``path`` holds where it is no torch archive (whose data lies in ``<name>/data.pkl``): a
    download of a model packed in a zip, say; None for a torch archive or an unreadable file."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None
    if _pickle_member(names) is not None:
        return None
    held = f"it holds {some_of(names, 3)}: extract the weights file from it" if names else "it is empty"
    return f"a zip archive, not a PyTorch weights file ({held})"


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


def safetensors_problem(path: Path) -> str | None:
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
        kind = _file_kind(path)
        if kind == "torch":
            return "not a safetensors file (it is a PyTorch weights file: give it the .pt suffix)"
        return f"not a safetensors file ({kind or 'its first 8 bytes are not the length of a header'})"
    try:
        entries = json.loads(header).values()
        end = max((int(entry["data_offsets"][1]) for entry in entries if "data_offsets" in entry), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None
    if 8 + length + end > size:
        return f"it is truncated: {size} bytes, but its header describes {8 + length + end} (a cut-off download?)"
    return None
