"""Clean photos that anyone can install from a package registry, for synthesizing training pairs.

The ``debian`` corpus is the photographs (not the illustrations, logos, renders or calibration
charts) among the images of five Debian packages; their licences are in
``/usr/share/doc/<package>/copyright``:

- ``plasma-workspace-wallpapers`` (GPL-2+): 11 photos, the largest resolution of each;
- ``mate-backgrounds`` (``nature/``, GPL-2+ / CC-BY-SA-4.0): 12 photos;
- ``lomiri-wallpapers-16.04`` (CC-BY-4.0, CC-BY-SA-3.0/4.0, CC0-1.0): 13 photos;
- ``lomiri-wallpapers-20.04`` (CC-BY-SA-3.0): 2 photos;
- ``opencv-doc`` (``examples/data/``, Apache-2.0 AND BSD-3-Clause): 17 small classic test photos
  (street facades, indoor scenes, objects), 256-1282 px.

Install them with ``apt-get install`` and the packages of :data:`DEBIAN_PACKAGES`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from darkir.data.layouts import DatasetError, list_images, no_folder
from darkir.errors import some_of, warn

DEBIAN_PACKAGES = (
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "opencv-doc",
)
_PLASMA = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip
_MATE = (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
    "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
)  # fmt: skip
_LOMIRI = (
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
    "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "free_by_Peter_Nerlich",
    "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi",
    "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
)  # fmt: skip
_LOMIRI_2004 = ("Infinite-Sea_by_Aury88", "Kleiber_by_Lukas_Baubkus")
_OPENCV = (
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "box_in_scene.png", "building.jpg",
    "butterfly.jpg", "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg",
    "orange.jpg", "squirrel_cls.jpg", "stuff.jpg",
)  # fmt: skip
_OPENCV_DIR = "usr/share/doc/opencv-doc/examples/data"


def _largest(folder: Path) -> Path | None:
    files = [p for p in folder.glob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size) if files else None


def debian_photos(root: Path = Path("/")) -> dict[str, Path]:
    """Photo name -> file of the ``debian`` corpus; raises naming the packages to install if absent."""
    photos: dict[str, Path] = {}
    for name in _PLASMA:
        if best := _largest(root / "usr/share/wallpapers" / name / "contents/images"):
            photos[f"plasma-{name}"] = best
    for name in _MATE:
        if (path := root / "usr/share/backgrounds/mate/nature" / f"{name}.jpg").is_file():
            photos[f"mate-{name}"] = path
    for name in _LOMIRI + _LOMIRI_2004:
        if (path := root / "usr/share/backgrounds" / f"{name}.jpg").is_file():
            photos[f"lomiri-{name}"] = path
    for name in _OPENCV:
        if (path := root / _OPENCV_DIR / name).is_file():
            photos[f"opencv-{Path(name).stem}"] = path
    expected = len(_PLASMA) + len(_MATE) + len(_LOMIRI) + len(_LOMIRI_2004) + len(_OPENCV)
    if len(photos) < expected:
        raise DatasetError(
            f"the debian photo corpus is incomplete ({len(photos)} of {expected} photos found); "
            f"install it with: apt-get install {' '.join(DEBIAN_PACKAGES)}"
        )
    return photos


#: The record every set ``darkir synth`` writes holds at its root (its pairs' drawn parameters).
SET_RECORD = "synth.json"


def synth_set_holding(path: Path) -> Path | None:
    """The ``darkir synth`` set (the folder with its :data:`SET_RECORD`) that ``path`` is, or lies in; None if none."""
    return next((folder for folder in (path, *path.parents) if (folder / SET_RECORD).is_file()), None)


def _refuse_synth_sets(folder: Path, images: list[Path]) -> None:
    """Refuse a photo folder that is, lies in or holds a ``darkir synth`` set: its images are degraded pairs, not clean
    photos, and crops of one photo would cross between the new set's splits."""
    for parent in sorted({image.parent for image in images}):
        found = synth_set_holding(parent)
        if found is not None:
            raise DatasetError(
                f"{folder}: its images include the darkir synth set {found} (it holds {SET_RECORD}), whose pairs are "
                "degraded copies of photos, not clean photos; give the folder of the photos themselves"
            )


def resolve_sources(sources: list[str]) -> dict[str, Path]:
    """Photo name -> file for each source: the word ``debian`` or a folder of the user's own photos (named by their
    path in it, ``/`` as ``_``, without the suffix), not a ``darkir synth`` set. Every photo is kept: see
    :func:`unique_names`."""
    found: list[tuple[str, Path]] = []
    for source in sources:
        if source == "debian":
            found.extend(debian_photos().items())
            continue
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: {no_folder(folder, 'photo folder')} (use a folder of clean photos or 'debian')"
            )
        images = list_images(folder)
        if not images:
            raise DatasetError(f"{folder}: no images found")
        _refuse_synth_sets(folder, images)
        found.extend((str(path.relative_to(folder).with_suffix("")).replace("/", "_"), path) for path in images)
    return unique_names(found)


def unique_names(found: list[tuple[str, Path]]) -> dict[str, Path]:
    """Name -> file for ``(name, file)`` pairs in order, each photo once: a file given twice, through a link or a
    hard link, or a copy of the same bytes is taken once (the first), copies named in a warning, so that one photo
    is never both held out and trained on. Files that would share a name (``x.jpg`` and ``x.png``, ``a/x.png`` and
    ``a_x.png``, one name in two sources) are all kept: the first keeps the name, the next get ``<name>-2``,
    ``<name>-3``, ... (skipping names in use)."""
    bases = {name for name, _ in found}
    photos: dict[str, Path] = {}
    copies = _copies([path for _, path in found])
    files: set[object] = set()
    for name, path in found:
        identity = _identity(path)
        if identity in files or path in copies:
            continue
        files.add(identity)
        unique, number = name, 1
        while unique in photos or (number > 1 and unique in bases):
            number += 1
            unique = f"{name}-{number}"
        photos[unique] = path
    return photos


def _identity(path: Path) -> object:
    """What tells files apart: the device and inode (one file under two names or hard links), else its real path."""
    try:
        status = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return status.st_dev, status.st_ino


def _copies(paths: list[Path]) -> dict[Path, Path]:
    """Files whose bytes equal those of an earlier other file in ``paths`` -> that file, said in one warning. Only
    files of equal sizes are read."""
    by_size: dict[int, list[Path]] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            by_size.setdefault(os.path.getsize(path), []).append(path)
    copies: dict[Path, Path] = {}
    for size, group in by_size.items():
        first: dict[str, Path] = {}
        for path in group if len(group) > 1 and size > 0 else []:  # (empty files are refused as they are read)
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
                original = first.setdefault(digest, path)
                if _identity(original) != _identity(path):
                    copies[path] = original
    if copies:
        named = some_of([f"{copy} (a copy of {original})" for copy, original in copies.items()], 3)
        warn(f"left out {len(copies)} photo(s), copies of others: {named}")
    return copies
