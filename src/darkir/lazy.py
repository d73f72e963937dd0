"""Lazy package exports: a package names what it exports and from which module, and each name is imported when first
used (so that ``import darkir`` and ``darkir --help`` do not load torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], also: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__`` for ``exports`` (name -> module); ``also``: the package's own
    names that ``dir`` lists too."""

    def attribute(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def names() -> list[str]:
        return sorted([*also, *exports])

    return attribute, names
