"""Where the low-light inputs and their references live in each dataset's folder tree.

One table instead of one reader per dataset: a layout names the input and reference folders and
how an input's relative path maps to its reference's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from darkir.errors import DarkIRError, some_of, warn
from darkir.imageio import IMAGE_SUFFIXES, UNREAD_IMAGE_SUFFIXES
from darkir.outputs import is_same_file


class DatasetError(DarkIRError):
    """A dataset is missing, empty, or has unpaired, unreadable or mismatched files (all are listed)."""


@dataclass(frozen=True)
class Layout:
    """Input folder, reference folder and an optional (pattern, replacement) renaming input -> reference."""

    name: str
    low: str
    high: str
    rename: tuple[str, str] | None = None

    def partner(self, relative: Path) -> Path:
        """The reference's path (relative to the reference folder) for an input's relative path."""
        if self.rename is None:
            return relative
        return relative.with_name(re.sub(self.rename[0], self.rename[1], relative.name))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("lolblur", "low_blur_noise", "high_sharp_scaled"),
        Layout("paired", "low", "high"),
        Layout("lol", "low", "high"),  # LOL v1: our485/{low,high}, eval15/{low,high}
        Layout("lolv2", "Low", "Normal", (r"^low", "normal")),  # LOL v2 Real/Synthetic: Low/low00001.png
        Layout("input-gt", "input", "gt"),  # LSRW-style folders
    )
}


#: The official ``datasets.name`` values whose ``datasets.val.test_path`` is a root holding several test sets (as the
#: official testing.py reads them): set name -> its folders under the root (a set of two folders is read as one).
COLLECTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "All_LOL": {
        "lolblur": ("LOLBlur/test",),
        "lolv2": ("LOL-v2/Real_captured/test",),
        "lolv2_synth": ("LOL-v2/Synthetic/test",),
    },
    "real_LSRW": {
        "lolv2": ("LOL-v2/Real_captured/test",),
        "lsrw": (
            "Low_Light_Enhancement_Datasets/LSRW_/Eval/Huawei",
            "Low_Light_Enhancement_Datasets/LSRW_/Eval/Nikon",
        ),
        "lolblur": ("LOLBlur/test",),
    },
}


def detect_layout(root: Path) -> Layout:
    """The first layout whose input and reference folders both exist under ``root``."""
    for layout in LAYOUTS.values():
        if _holds(root, layout):
            return layout
    known = "; ".join(f"{x.name}: {x.low}/ + {x.high}/" for x in LAYOUTS.values())
    raise DatasetError(f"{root}: no known paired layout found (expected one of {known}){_in_subfolders(root)}")


def _holds(root: Path, layout: Layout) -> bool:
    """Whether ``root`` holds the input and reference folders of ``layout``."""
    return (root / layout.low).is_dir() and (root / layout.high).is_dir()


def _in_subfolders(root: Path) -> str:
    """A hint where ``root`` holds no layout but its sub-folders do (a dataset's root above ``train/`` and ``val/``):
    which of them to pass instead, or ``""``."""
    try:  # (a sub-folder it may not read, lost+found at a disk's root: is_dir raises)
        folders = sorted(path for path in root.iterdir() if path.is_dir())
        holding = [path for path in folders if any(_holds(path, layout) for layout in LAYOUTS.values())]
    except OSError:
        return ""
    if not holding:
        return ""
    which = "holds one: pass it" if len(holding) == 1 else "each hold one: pass one of them"
    return f"; {', '.join(map(str, holding))} {which}"


def warn_other_layouts(root: Path, layout: Layout) -> None:
    """Warn where ``root`` also holds the folders of another layout than ``layout`` (the one read): a tree with
    both ``low/`` + ``high/`` and ``Low/`` + ``Normal/`` is otherwise read in part without a word."""
    chosen = (root / layout.low, root / layout.high)
    others = {
        f"{other.low}/ + {other.high}/"
        for other in LAYOUTS.values()
        if (root / other.low).is_dir()
        and (root / other.high).is_dir()
        and not all(any(is_same_file(root / mine, read) for read in chosen) for mine in (other.low, other.high))
    }
    if others:
        warn(
            f"{root}: reads {layout.low}/ + {layout.high}/ ({layout.name} layout) and leaves out "
            f"{some_of(sorted(others), 3, ' and ')}, which hold another layout's pairs (give each pair of folders "
            "a root of its own)"
        )


def no_folder(path: Path, what: str) -> str:
    """Why ``path`` is no ``what`` (a kind of folder): it is a file, or it is not there."""
    return f"a file, not a {what}" if path.exists() else f"{what} not found"


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` outside hidden folders (``root`` itself may be one), symlinked folders followed,
    each real folder entered once: loops of links end. A folder that cannot be read (no permission) is named in a
    warning: its files are left out."""
    seen: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True, onerror=_warn_unreadable_folder):
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((status.st_dev, status.st_ino))
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(files):
            yield Path(folder) / name


def _warn_unreadable_folder(error: OSError) -> None:
    """Warn that a folder of a walk cannot be read (:func:`walk_files`), naming it and why."""
    warn(f"cannot read the folder {error.filename} ({error.strerror or error}): its files are left out")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively (linked folders too, as :func:`walk_files` walks), sorted; hidden
    files and files in hidden folders (below ``folder``: a hidden ``folder`` itself is read) skipped. Images in
    formats darkir does not read are named in a warning (:func:`warn_unread`), as are broken links and pipes, sockets
    or devices named like images."""
    named = [
        p
        for p in walk_files(folder)
        if p.suffix.lower() in IMAGE_SUFFIXES + UNREAD_IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    files, others = [], []
    for path in named:
        (files if path.is_file() else others).append(path)
    broken = [str(p) for p in others if p.is_symlink() and not p.exists()]
    if broken:
        links = "link" if len(broken) == 1 else "links"
        warn(f"left out {len(broken)} broken {links} (to no file): {some_of(broken, UNREAD_NAMED)}")
    special = [str(p) for p in others if p.exists() and not p.is_dir()]
    if special:
        warn(
            f"left out {len(special)} named like images that are no files (a pipe, socket or device): "
            f"{some_of(special, UNREAD_NAMED)}"
        )
    warn_unread([p for p in files if p.suffix.lower() in UNREAD_IMAGE_SUFFIXES])
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)


#: How many of the files left out :func:`warn_unread` names.
UNREAD_NAMED = 3


def warn_unread(unread: list[Path]) -> None:
    """One warning naming the files of a folder walk or a glob that are images darkir cannot read (a GIF, HEIC...),
    which are left out."""
    if not unread:
        return
    named = some_of([str(path) for path in unread], UNREAD_NAMED)
    kinds = ", ".join(sorted({path.suffix.lower() for path in unread}))
    files = "file" if len(unread) == 1 else "files"
    warn(
        f"left out {len(unread)} {files} in formats darkir does not read ({kinds}: {named}); convert them to "
        f"{', '.join(IMAGE_SUFFIXES)} to include them"
    )
