"""Finding and checking low/high pairs before any training or testing starts."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from darkir.data.layouts import (
    COLLECTIONS,
    DatasetError,
    Layout,
    detect_layout,
    list_images,
    no_folder,
    warn_other_layouts,
)
from darkir.errors import some_of, warn
from darkir.image_header import read_header
from darkir.imageio import IMAGE_SUFFIXES, ImageReadError, read_image

MAX_LISTED = 10


@dataclass(frozen=True)
class Pair:
    """One training/testing example: a low-light input and its reference (``None`` when unpaired)."""

    low: Path
    high: Path | None
    name: str  # relative path of the input, used for outputs and reports


def _size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed, EXIF orientation applied as :func:`~darkir.imageio.read_image` applies it,
    from the file header (decoded where Pillow cannot read it but OpenCV can: a float TIFF). Raises
    :class:`~darkir.imageio.ImageReadError`, saying why, if it cannot be read."""
    return _look(path)[0]


def _look(path: Path) -> tuple[tuple[int, int], bool]:
    """(:func:`_size`, whether the image is gray)."""
    header = read_header(path)
    if header is None:
        image = read_image(path)
        return (image.rgb.shape[1], image.rgb.shape[0]), image.grayscale
    return header.displayed_size, header.gray


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(f"{what}: {len(problems)} problem(s):\n  {shown}{more}")


def find_pairs(
    root: str | Path,
    layout: Layout | None = None,
    check_sizes: bool = True,
    what: str | None = None,
    notes: bool = True,
    of_outputs: bool = False,
) -> list[Pair]:
    """All pairs under ``root`` (layout auto-detected): each input's reference is at its partner path
    (:meth:`Layout.partner`), or else is the only image there of the same name in another format. Missing or shared
    partners, unreadable files and size mismatches are collected and raised together, naming each path, after
    ``what`` (default: the dataset and its layout). With ``notes``, references without an input, gray references
    for colour inputs and the folders of a layout not read are warned of (a set that trains or tests a model; not a
    folder of outputs, nor a probe). ``of_outputs``: the inputs are a model's outputs (``darkir metrics``), whose gray
    references are warned of (colour outputs score against gray), the other notes left to the caller."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: {no_folder(root, 'dataset folder')}")
    if layout is None:
        layout = detect_layout(root)
        if notes:
            warn_other_layouts(root, layout)
    low_dir, high_dir = root / layout.low, root / layout.high
    if low_dir.is_dir() and high_dir.is_dir() and os.path.samefile(low_dir, high_dir):
        raise DatasetError(
            f"{what or root}: the references' folder {high_dir} is the inputs' folder {low_dir} (a link?): each "
            "image would be its own reference"
        )
    lows = list_images(low_dir)
    if not lows:
        raise DatasetError(f"{low_dir}: no images found (empty dataset)")
    pairs, problems, matched = [], [], set()
    folders: dict[Path, dict[str, list[Path]]] = {}
    for low in lows:
        relative = low.relative_to(low_dir)
        expected = high_dir / layout.partner(relative)
        high = _reference(expected, folders)
        if isinstance(high, str):
            problems.append(f"{low}: {high}")
            continue
        if high != expected:
            matched.add(low)
        pairs.append(Pair(low, high, str(relative)))
    problems.extend(_shared_references(pairs, matched))
    if check_sizes:
        problems.extend(check_pairs(pairs, notes or of_outputs, of_outputs))
    _raise_if(problems, what or f"dataset {root} ({layout.name} layout)")
    if notes:
        _warn_unpaired_references(high_dir, pairs)
    return pairs


def _warn_unpaired_references(high_dir: Path, pairs: list[Pair]) -> None:
    """Warn of the images of ``high_dir`` that are no input's reference (a half-copied input folder shrinks a set
    without a word otherwise); they are left out."""
    paired = {pair.high for pair in pairs}
    unpaired = [str(path) for path in list_images(high_dir) if path not in paired]
    if unpaired:
        warn(f"left out {len(unpaired)} reference(s) without an input: {some_of(unpaired, 3)}")


def _reference(expected: Path, folders: dict[Path, dict[str, list[Path]]]) -> Path | str:
    """The reference image at ``expected``; else the only image beside it of the same name in another format (an
    output saved as PNG for a JPEG reference); else why there is none, naming near misses (``folders``: the images
    of each folder looked in by lower-case name without suffix, listed once)."""
    if expected.is_file():
        return expected
    if expected.parent not in folders:
        folders[expected.parent] = by_stem = {}
        for path in sorted(expected.parent.iterdir()) if expected.parent.is_dir() else []:
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                by_stem.setdefault(path.stem.lower(), []).append(path)
    named = folders[expected.parent].get(expected.stem.lower(), [])
    same = [path for path in named if path.stem == expected.stem]
    if len(same) == 1:
        return same[0]
    why = f"no reference image at {expected}"
    if same:
        return f"{why} ({', '.join(path.name for path in same)} share its name in other formats: rename one)"
    near = ", ".join(path.name for path in named)
    return (
        f"{why} ({near} {'differs' if len(named) == 1 else 'differ'} in case; names are matched exactly)"
        if near
        else why
    )


def _shared_references(pairs: list[Pair], matched: set[Path]) -> list[str]:
    """Inputs paired by name alone (``matched``: their inputs) with a reference another input also has: a.png and
    a.jpg beside each other against one a.jpg would be scored, or trained on, twice."""
    owners: dict[Path | None, list[Path]] = {}
    for pair in pairs:
        owners.setdefault(pair.high, []).append(pair.low)
    return [
        f"{pair.low}: its reference {pair.high} (the same name in another format) is also that of "
        f"{', '.join(str(low) for low in owners[pair.high] if low != pair.low)}; rename one of the inputs"
        for pair in pairs
        if pair.low in matched and len(owners[pair.high]) > 1
    ]


def check_pairs(pairs: list[Pair], notes: bool = True, of_outputs: bool = False) -> list[str]:
    """Problems (unreadable files, input/reference size mismatches), one line per path; with ``notes``, a warning
    naming gray references for colour inputs (``of_outputs``: colour outputs)."""
    problems, decoloured = [], []
    for pair in pairs:
        try:
            low_size, low_gray = _look(pair.low)
            high_size, high_gray = (None, False) if pair.high is None else _look(pair.high)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if high_size is not None and high_size != low_size:
            low_text, high_text = "x".join(map(str, low_size)), "x".join(map(str, high_size))
            problems.append(f"{pair.low}: size {low_text} but reference {pair.high} is {high_text}")
        if high_gray and not low_gray:
            decoloured.append(str(pair.high))
    if decoloured and notes:
        listed = some_of(decoloured, 3)
        warn(
            f"{len(decoloured)} reference(s) are gray for colour outputs ({listed}): they score against gray"
            if of_outputs
            else f"{len(decoloured)} reference(s) are gray for colour inputs ({listed}): a model trained on them "
            "learns to remove colour, and colour outputs score against gray"
        )
    return problems


def find_unpaired(root: str | Path) -> list[Pair]:
    """All images under ``root`` as input-only pairs (unreadable ones are raised, naming each)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: {no_folder(root, 'folder')}")
    pairs = [Pair(p, None, str(p.relative_to(root))) for p in list_images(root)]
    if not pairs:
        raise DatasetError(f"{root}: no images found (empty folder)")
    _raise_if(check_pairs(pairs), f"folder {root}")
    return pairs


def read_manifest(path: str | Path, split: str) -> list[Pair]:
    """Pairs of one split of a manifest written by ``darkir split`` (paths relative to the manifest), checked as
    :func:`find_pairs` checks a folder's: missing, unreadable and mismatched files are raised together."""
    path = Path(path)
    manifest = _manifest(path)
    entries = _split_entries(path, manifest, split)
    if not entries:
        raise DatasetError(f"{path}: split {split!r} is empty")
    base = path.parent / manifest.get("root", ".")
    pairs = [Pair(base / low, base / high, low) for low, high in entries]
    present, problems = [], []
    for pair in pairs:
        absent = next((file for file in (pair.low, pair.high) if not file.is_file()), None)
        if absent is None:
            present.append(pair)
        else:
            problems.append(f"{absent}: listed in {path} but missing")
    problems.extend(check_pairs(present))
    _raise_if(problems, f"manifest {path} split {split}")
    return pairs


def manifest_folders(path: str | Path) -> list[Path]:
    """The data of the manifest at ``path``, where nothing may be written: the folders of every file any split lists
    and the deepest folder that holds them all (the set's root, above its ``low_blur_noise/`` and
    ``high_sharp_scaled/``), unless that is the file system's root (files of unrelated trees). No folders where it
    cannot be read: reading its pairs says why."""
    path = Path(path)
    try:
        manifest = _manifest(path)
        entries = [entry for split in manifest["splits"] for entry in _split_entries(path, manifest, split)]
    except (DatasetError, KeyError, TypeError):
        return []
    base = path.parent / manifest.get("root", ".")
    folders = sorted({(base / name).parent for entry in entries for name in entry})
    if not folders:
        return []
    root = Path(os.path.commonpath([os.path.abspath(folder) for folder in folders]))
    return folders if root == Path(root.anchor) else [*folders, root]


def _manifest(path: Path) -> object:
    """The JSON of the manifest file at ``path``; a :class:`DatasetError` where it cannot be read."""
    if path.exists() and not path.is_file():  # a folder, or a pipe that reading would wait on
        raise DatasetError(f"{path}: not a manifest file (a folder, pipe or device)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read manifest: {exc}") from exc
    except RecursionError:
        raise DatasetError(f"{path}: cannot read manifest: nested too deeply") from None


def _split_entries(path: Path, manifest: object, split: str) -> list[list[str]]:
    """The ``[low, high]`` entries of ``split``, the manifest's structure checked (as ``darkir split`` writes it:
    ``{"root": "...", "splits": {"name": [["low", "high"], ...]}}``)."""
    splits = manifest.get("splits") if isinstance(manifest, dict) else None
    if not isinstance(splits, dict):
        raise DatasetError(
            f'{path}: not a split manifest (expected a JSON object with "splits": {{"name": [["low", "high"], ...]}}, '
            "as darkir split writes)"
        )
    if not isinstance(manifest.get("root", "."), str):
        raise DatasetError(f'{path}: "root" is {json.dumps(manifest["root"])[:80]}, not a folder path')
    if split not in splits:
        raise DatasetError(f"{path}: no split {split!r} (has {', '.join(splits) or 'none'})")
    entries = splits[split]
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: split {split!r} is {json.dumps(entries)[:80]}, not a list of [low, high] pairs")
    bad = [
        index
        for index, entry in enumerate(entries)
        if not (isinstance(entry, list) and len(entry) == 2 and all(_is_path(name) for name in entry))
    ]
    if bad:
        raise DatasetError(
            f"{path}: split {split!r} entry {bad[0]} is {json.dumps(entries[bad[0]])[:80]}, not a [low, high] pair "
            f"of paths{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}"
        )
    file = _file_namer(path.parent / manifest.get("root", "."))
    first: dict[str, int] = {}
    for index, (low, high) in enumerate(entries):
        if file(low) == file(high):
            raise DatasetError(
                f"{path}: split {split!r} entry {index} gives {low} as its own reference; list its reference"
            )
        again = first.setdefault(file(low), index)
        if again != index:
            raise DatasetError(
                f"{path}: split {split!r} lists {low} twice (entries {again} and {index}); every mean over the split "
                "would count it twice"
            )
    inputs = {file(low): low for low, _ in entries}  # as written here, for the message
    references = {file(high): high for _, high in entries}
    for other, listed in splits.items():
        found = _listed_files(listed, file) if other != split else set()
        shared = sorted(inputs[file] for file in found & inputs.keys())  # the inputs, else the references
        shared = shared or sorted(references[file] for file in found & references.keys())
        if shared:
            raise DatasetError(
                f"{path}: {some_of(shared, 3)} {'is' if len(shared) == 1 else 'are'} in split {split!r} and in "
                f"{other!r}; a pair in two splits would be scored on what the model was trained or chosen on"
            )
    return entries


def _file_namer(base: Path) -> Callable[[str], str]:
    """One spelling of the file a manifest's entry names, however it is written (relative to ``base``, absolute,
    through ``..`` or a linked folder; in any case where the file system ignores it): its folder resolved (once per
    folder), its own name kept (a file linked to a shared blob, as git-annex and DVC keep them, stays itself)."""
    folders: dict[str, str] = {}

    def file(name: str) -> str:
        folder, leaf = os.path.split(os.path.join(base, name))
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        return os.path.normcase(os.path.join(folders[folder], leaf))

    return file


def _listed_files(entries: object, file: Callable[[str], str]) -> set[str]:
    """The files (spelled by ``file``, :func:`_file_namer`) that the ``[low, high]`` entries of a split list (of
    another split, whose structure is checked when it is read)."""
    if not isinstance(entries, list):
        return set()
    return {file(name) for entry in entries if isinstance(entry, list) for name in entry if _is_path(name)}


def _is_path(name: object) -> bool:
    """Whether a manifest's entry holds a path: a string, not empty, without a NUL (which no path holds)."""
    return isinstance(name, str) and bool(name) and "\0" not in name


def resolve_pairs(location: str | Path, split: str) -> list[Pair]:
    """Pairs from a dataset folder or from a manifest JSON's ``split``."""
    location = Path(location)
    if location.suffix.lower() == ".json":
        return read_manifest(location, split)
    return find_pairs(location)


def collection_pairs(root: str | Path, name: str) -> dict[str, list[Pair]]:
    """The pairs of each test set that the official ``datasets.name`` ``name`` gathers under ``root``
    (:data:`~darkir.data.layouts.COLLECTIONS`), by set name; a DatasetError names every folder that is missing."""
    root = Path(root)
    sets = COLLECTIONS[name]
    looked_up = {folder: _folder(root, folder) for folders in sets.values() for folder in folders}
    missing = [str(root / folder) for folder, path in looked_up.items() if path is None]
    if missing:
        raise DatasetError(
            f"datasets.name {name} reads {len(sets)} test sets under {root}, but {len(missing)} folder(s) are missing: "
            f"{', '.join(missing)} (or evaluate one set with --data FOLDER)"
        )
    resolved = {folder: path for folder, path in looked_up.items() if path is not None}
    found = {}
    for label, folders in sets.items():
        try:
            found[label] = [pair for folder in folders for pair in _named(resolved[folder], len(folders))]
        except DatasetError as exc:
            raise DatasetError(f"datasets.name {name}, test set {label}: {exc}") from None
    return found


def _folder(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a folder; else the one folder whose path differs from it only in the case of its
    names (LOL-v2 as downloaded has ``Test``, the official readers ask for ``test``); else None."""
    if not root.is_dir():
        return None
    folder = root
    for part in Path(relative).parts:
        if (folder / part).is_dir():
            folder = folder / part
            continue
        try:
            alike = [p for p in folder.iterdir() if p.name.lower() == part.lower() and p.is_dir()]
        except OSError:  # unreadable: as good as missing
            return None
        if len(alike) != 1:
            return None
        folder = alike[0]
    return folder


def _named(folder: Path, folders: int) -> list[Pair]:
    """The pairs of ``folder``; in a set of several ``folders``, named with their folder's name first (LSRW's Huawei
    and Nikon number their images alike)."""
    pairs = find_pairs(folder)
    if folders == 1:
        return pairs
    return [dataclasses.replace(pair, name=f"{folder.name}/{pair.name}") for pair in pairs]
