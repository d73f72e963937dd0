"""Scene-aware train/val/test splits of a paired tree, written as a manifest that training and testing read."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from darkir.data.layouts import DatasetError
from darkir.data.pairs import find_pairs
from darkir.errors import warn
from darkir.outputs import parent_made, write_atomic


def scene_of(name: str) -> str:
    """A pair's scene: its input's parent folder (LOLBlur: ``<scene>/<frame>.png``), else its file stem."""
    parent = str(Path(name).parent)
    return parent if parent != "." else Path(name).stem


#: How many shuffles of the scenes :func:`split_scenes` fills the splits in before it gives up.
SHUFFLES = 100


def split_scenes(root: str | Path, counts: dict[str, int], seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Assign whole scenes to splits, in shuffled order, until each split has about its count of pairs.

    Splits are filled in the order given (``test`` first when listed first); a scene never spans two
    splits, so a split may overshoot by up to one scene. Where a shuffle leaves a split with fewer pairs than its
    count, the next shuffle (of the same seed) is tried, up to :data:`SHUFFLES`; then it is an error naming it.
    Pairs are returned relative to ``root``.
    """
    root = Path(root)
    small = [f"{name} {count}" for name, count in counts.items() if count < 1]
    if small:
        raise DatasetError(f"every split needs at least 1 pair (asked for {', '.join(small)})")
    pairs = find_pairs(root)
    scenes: dict[str, list] = defaultdict(list)
    for pair in pairs:
        scenes[scene_of(pair.name)].append(pair)
    if len(scenes) == len(pairs) > 1 and all(Path(pair.name).parent == Path() for pair in pairs):
        warn(
            f"{root}: no scene folders (the inputs lie directly in their folder), so each pair is a scene of its own "
            "and frames of one scene may go to different splits; put each scene's frames in a folder of its own"
        )
    wanted = sum(counts.values())
    if wanted > len(pairs):
        asked = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise DatasetError(
            f"{root}: {len(pairs)} pairs cannot fill splits of {wanted} ({asked}); ask for fewer (--counts "
            "TRAIN,VAL,TEST)"
        )
    rng, names = np.random.default_rng(seed), sorted(scenes)
    relative = {
        scene: [(str(p.low.relative_to(root)), str(p.high.relative_to(root))) for p in scenes[scene]] for scene in names
    }
    for _ in range(SHUFFLES):  # the first fill that leaves no split short (one shuffle, where it does)
        splits = _fill([names[i] for i in rng.permutation(len(names))], relative, counts)
        short = [f"{name} {len(got)} of {counts[name]}" for name, got in splits.items() if len(got) < counts[name]]
        if not short:
            break
    else:
        raise DatasetError(
            f"{root}: {len(pairs)} pairs in {len(scenes)} scenes leave too few pairs for {', '.join(short)} in "
            f"{SHUFFLES} shuffles of the scenes (they are kept whole, so an earlier split can take more than its "
            "count); ask for fewer pairs"
        )
    return splits


def _fill(
    order: list[str], scenes: dict[str, list[tuple[str, str]]], counts: dict[str, int]
) -> dict[str, list[tuple[str, str]]]:
    """The splits filled in ``counts``' order with the pairs of whole scenes taken in ``order``, each until it has its
    count."""
    splits: dict[str, list[tuple[str, str]]] = {name: [] for name in counts}
    names, current = list(counts), 0
    for scene in order:
        while current < len(names) and len(splits[names[current]]) >= counts[names[current]]:
            current += 1
        if current == len(names):
            break
        splits[names[current]].extend(scenes[scene])
    return splits


def write_manifest(
    root: str | Path, output: str | Path, counts: dict[str, int], seed: int = 0, overwrite: bool = False
) -> dict[str, int]:
    """Split ``root`` by scene and write the manifest JSON atomically (an existing ``output`` is replaced only with
    ``overwrite``, and a failed write leaves it as it was); returns the pairs per split."""
    root, output = Path(root), Path(output)
    splits = split_scenes(root, counts, seed)
    with parent_made(output):
        relative_root = _relative_root(root, output)
        counts = {k: len(v) for k, v in splits.items()}
        manifest = {"root": relative_root, "seed": seed, "counts": counts, "splits": splits}
        write_atomic(output, json.dumps(manifest, indent=1).encode(), overwrite=overwrite)
    return manifest["counts"]


def _relative_root(root: Path, output: Path) -> str:
    """``root`` relative to the folder the manifest ``output`` is written in: as given where that leads to it (a
    linked data folder stays the link, which may be pointed elsewhere later), else through the real folders (``..``
    after a link leads elsewhere than the name says). An ``output`` that is a link is replaced, not written
    through."""
    given = os.path.relpath(os.path.abspath(root), os.path.abspath(output.parent))
    if (output.parent / given).resolve() == root.resolve():  # ('link/..' in either path leads elsewhere)
        return given
    return os.path.relpath(root.resolve(), output.parent.resolve())
