"""Finding and checking low/high pairs before any training or testing starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from darkir.data.layouts import DatasetError, Layout, detect_layout, list_images

MAX_LISTED = 10


@dataclass(frozen=True)
class Pair:
    """One training/testing example: a low-light input and its reference (``None`` when unpaired)."""

    low: Path
    high: Path | None
    name: str  # relative path of the input, used for outputs and reports


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, or None if it cannot be read."""
    try:
        with PILImage.open(path) as handle:
            return handle.size
    except Exception:
        return None


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{what}: {len(problems)} problem(s):\n  {shown}{more}")


def find_pairs(root: str | Path, layout: Layout | None = None, check_sizes: bool = True) -> list[Pair]:
    """All pairs under ``root`` (layout auto-detected); missing partners, unreadable files and size
    mismatches are collected and raised together, naming each path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    layout = layout or detect_layout(root)
    low_dir, high_dir = root / layout.low, root / layout.high
    lows = list_images(low_dir)
    if not lows:
        raise DatasetError(f"{low_dir}: no images found (empty dataset)")
    pairs, problems = [], []
    for low in lows:
        relative = low.relative_to(low_dir)
        high = high_dir / layout.partner(relative)
        if not high.is_file():
            problems.append(f"{low}: no reference image at {high}")
            continue
        pairs.append(Pair(low, high, str(relative)))
    if check_sizes:
        problems.extend(check_pairs(pairs))
    _raise_if(problems, f"dataset {root} ({layout.name} layout)")
    return pairs


def check_pairs(pairs: list[Pair]) -> list[str]:
    """Problems (unreadable files, input/reference size mismatches), one line per path."""
    problems = []
    for pair in pairs:
        low_size = _size(pair.low)
        if low_size is None:
            problems.append(f"{pair.low}: cannot read image")
            continue
        if pair.high is None:
            continue
        high_size = _size(pair.high)
        if high_size is None:
            problems.append(f"{pair.high}: cannot read image")
        elif high_size != low_size:
            low_text, high_text = "x".join(map(str, low_size)), "x".join(map(str, high_size))
            problems.append(f"{pair.low}: size {low_text} but reference {pair.high} is {high_text}")
    return problems


def find_unpaired(root: str | Path) -> list[Pair]:
    """All images under ``root`` as input-only pairs (unreadable ones are raised, naming each)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found")
    pairs = [Pair(p, None, str(p.relative_to(root))) for p in list_images(root)]
    if not pairs:
        raise DatasetError(f"{root}: no images found (empty folder)")
    _raise_if(check_pairs(pairs), f"folder {root}")
    return pairs


def read_manifest(path: str | Path, split: str) -> list[Pair]:
    """Pairs of one split of a manifest written by ``darkir split`` (paths relative to the manifest)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read manifest: {exc}") from exc
    if split not in manifest.get("splits", {}):
        raise DatasetError(f"{path}: no split {split!r} (has {', '.join(manifest.get('splits', {}))})")
    base = path.parent / manifest.get("root", ".")
    pairs = [Pair(base / low, base / high, low) for low, high in manifest["splits"][split]]
    missing = [
        f"{p.low if not p.low.is_file() else p.high}: listed in {path} but missing"
        for p in pairs
        if not (p.low.is_file() and p.high.is_file())
    ]
    _raise_if(missing, f"manifest {path} split {split}")
    if not pairs:
        raise DatasetError(f"{path}: split {split!r} is empty")
    return pairs


def resolve_pairs(location: str | Path, split: str) -> list[Pair]:
    """Pairs from a dataset folder or from a manifest JSON's ``split``."""
    location = Path(location)
    if location.suffix == ".json":
        return read_manifest(location, split)
    return find_pairs(location)
