"""Reading options files: the YAML dialect they are read in (safe, a key repeated in one mapping refused, numbers
as YAML 1.2 reads them) and ``key=value`` overrides merged into them; what the keys mean is :mod:`darkir.options`'s."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from darkir.errors import ConfigError


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=5", "network.use_csf=true"]`` into a nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        if not raw.strip():  # an unset shell variable ($VAL): never taken for null, which turns a setting off
            raise ConfigError(
                f"override {item!r} has no value (an unset variable?); write {key.strip()}=null to unset it"
            )
        node[parts[-1]] = _override_value(item, raw)
    return nested


def _override_value(item: str, raw: str) -> Any:
    """The value of the override ``item`` (``raw``, after its ``=``), read as YAML; a ConfigError naming it where
    it cannot be read. A value holding bytes the locale cannot decode (a file name in another encoding, which Python
    passes on as surrogate escapes, and YAML reads no such text) is that text as it is."""
    if any("\ud800" <= char <= "\udfff" for char in raw):
        return raw.strip()
    try:
        value = _read_yaml_text(raw, "<override>")
        tokens = yaml.scan(raw, Loader=_OptionsLoader)
        read = max((token.end_mark.index for token in tokens if not isinstance(token, yaml.StreamEndToken)), default=0)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise ConfigError(f"override {item[:80]!r}: invalid YAML value: {_yaml_problem(exc)}") from None
    if raw[read:].strip():  # a comment, which YAML drops: "a #1.pt" would be read as "a"
        raise ConfigError(
            f"override {item[:80]!r}: {raw[read:].strip()[:40]!r} would be read as a YAML comment and dropped; remove "
            f"it, or quote a text value that holds it: "
            f"{item.partition('=')[0]}={shlex.quote(json.dumps(raw.strip(), ensure_ascii=False))}"
        )
    return value


def _yaml_problem(exc: BaseException) -> str:
    """One line on why YAML could not be read: PyYAML's message, or the limits Python puts on reading it."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, ValueError) and not isinstance(exc, yaml.YAMLError):  # 5000 digits, a 13th month
        return f"a value cannot be read ({str(exc).split(':')[0]})"
    return " ".join(str(exc).split())


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra``'s values in place of its own, section by section (mappings merged, the rest replaced)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _OptionsLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key repeated in one mapping (YAML would keep the last silently: a second
    ``train:`` section would drop every key of the first)."""


def _unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose keys each appear once; else a YAML error at the repeat, naming the first line."""
    first_lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *anchor` merges a mapping; its keys may be overridden here
            continue
        key = loader.construct_object(key_node, deep=True)
        with contextlib.suppress(TypeError):  # an unhashable key is refused by the mapping below
            if key in first_lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (first on line {first_lines[key]}): the second would replace the "
                    "first; keep one",
                    key_node.start_mark,
                )
            first_lines[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_OptionsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def _numbers_as_written(loader: type[yaml.SafeLoader]) -> None:
    """Make ``loader`` read numbers as they read in decimal (YAML 1.2): YAML 1.1 reads ``017`` as octal (15) and
    ``1:30`` as base 60 (90), silently. Such plain scalars stay strings, so an integer setting reads ``017`` as 17
    and refuses ``1:30``; ``0x``/``0b`` integers and decimal floats are read as before."""
    numbers = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in numbers]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    integer = r"^(?:[-+]?0b[0-1_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
    real = (
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    )
    loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(integer), list("-+0123456789"))
    loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(real), list("-+0123456789."))


_numbers_as_written(_OptionsLoader)


def _read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (UTF-8), read with :class:`_OptionsLoader`; its errors name the file."""
    return _read_yaml_text(path.read_text(encoding="utf-8"), str(path))


def _read_yaml_text(text: str, name: str) -> Any:
    """The YAML document ``text``, read with :class:`_OptionsLoader`; its errors name ``name``."""
    loader = _OptionsLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _refuse_other_kinds(path: Path) -> None:
    """Refuse, by name, an image or a weights file given as the options file (by its first bytes, where they hold a
    NUL byte, as those files' do and no text does: a YAML file may well start with ``BM``, a BMP's mark)."""
    from darkir.weightfiles import kind_in_words

    try:
        with open(path, "rb") as handle:
            head, size = handle.read(64), os.fstat(handle.fileno()).st_size
    except OSError:
        return  # (reading it as YAML says why)
    kind = kind_in_words(head, size) if b"\0" in head else None
    if kind is not None:
        weights = " (weights go to --weights)" if "weights" in kind else ""
        raise ConfigError(f"{path}: not an options file: it is {kind}{weights}; give a YAML file")


def read_options_file(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The sections of the options file ``path`` with the ``key=value`` ``overrides`` merged in, not yet validated
    (:func:`darkir.options.options_from_dict` does that); a ConfigError naming the file where it cannot be read."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.y*ml"))[:5]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ConfigError(f"{path} is a folder, not an options file: give a YAML file{hint}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is not a regular file (a pipe or device?); give a YAML options file")
    if not path.is_file():
        raise ConfigError(f"options file not found: {path}")
    _refuse_other_kinds(path)
    try:
        raw = _read_yaml(path) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); save the options file as UTF-8") from None
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    return _deep_merge(raw, parse_overrides(overrides))
