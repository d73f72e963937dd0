"""Memory sizes as people write them (``3GB``, ``800MB``, ``1GiB``) and as messages print them; without torch, so
that options files are checked without loading it."""

from __future__ import annotations

import math
import numbers
import re

from darkir.errors import DarkIRError

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
#: A size: a number (``2.5``, ``.5``, ``1e9``; a sign read, to be refused as a size under 1) and a unit of
#: :data:`_UNITS` (none: bytes).
_SIZE = re.compile(r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_memory(text: str | float, name: str = "max_memory") -> int:
    """Bytes from ``3GB``, ``2.5G``, ``800MB``, ``1GiB``, ``1e9`` or a plain number of bytes (any real number type,
    numpy's too); ``name``: how errors call the setting (none: where the caller names it)."""
    named = f"{name}: " if name else ""
    if isinstance(text, bool) or not isinstance(text, (str, numbers.Real)):
        wanted = "a number of bytes or a memory size like '3GB'"
        raise DarkIRError(f"{name} must be {wanted}, got {text!r}" if name else f"{wanted} is needed")
    if isinstance(text, str):
        match = _SIZE.fullmatch(text)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise DarkIRError(f"{named}cannot read memory size {text!r}; write e.g. 3GB, 2.5G, 800MB, 1GiB or 1e9")
        value = float(match.group(1)) * _UNITS[unit]
    else:
        value = float(text)
    if not math.isfinite(value) or value < 1:
        raise DarkIRError(f"{named}memory size {text!r} must be a finite number of bytes of at least 1")
    return int(value)


def format_memory(size: float, up: bool = False) -> str:
    """``1.20 TB`` / ``2.75 GB`` / ``640 MB`` / ``12 KB`` / ``512 bytes``; rounded up with ``up`` (what an image needs
    at least: a budget of the figure shown then holds it)."""
    units = ((1e12, "TB", 2), (1e9, "GB", 2), (1e6, "MB", 0), (1e3, "KB", 0))
    unit, name, digits = next((each for each in units if size >= each[0]), (1, "bytes", 0))
    value = size / unit
    if up:
        value = math.ceil(value * 10**digits - 1e-9) / 10**digits
    return "1 byte" if name == "bytes" and round(value) == 1 else f"{value:.{digits}f} {name}"


def without_unit(size: object) -> bool:
    """Whether ``size`` is a memory size written as a plain number (bytes): ``3``, ``"8"``, ``"1e9"``, not ``"8GB"``."""
    if isinstance(size, str):
        match = _SIZE.fullmatch(size)
        return bool(match) and not match.group(2)
    return isinstance(size, numbers.Real) and not isinstance(size, bool)
