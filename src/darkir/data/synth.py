"""Pairs synthesized from clean photos with the degradation model of :mod:`darkir.data.degradation`.

:func:`synthesize` writes a fixed set (draws from ``numpy.random.default_rng([seed, photo, crop])``);
:class:`SynthDataset` makes a fresh pair for every sample and epoch (``[seed, epoch, index]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from darkir.data.corpus import SET_RECORD, synth_set_holding
from darkir.data.dataset import to_tensor
from darkir.data.degradation import SynthParams, degrade, log_uniform
from darkir.data.layouts import LAYOUTS, DatasetError
from darkir.errors import some_of
from darkir.image_header import read_header
from darkir.imageio import Image, read_image, write_image
from darkir.outputs import DiskFullError, is_disk_full, is_inside, left_by_killed_run, local_owner, owner_tag
from darkir.progress import progress_bar


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` square from the photo rescaled so its short side is 1-1.6x ``size`` (area filter)."""
    height, width = photo.shape[:2]
    scale = size * rng.uniform(1.0, 1.6) / min(height, width)
    resized = cv2.resize(
        photo, (max(size, round(width * scale)), max(size, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    top = int(rng.integers(0, resized.shape[0] - size + 1))
    left = int(rng.integers(0, resized.shape[1] - size + 1))
    crop = resized[top : top + size, left : left + size]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def assign_splits(names: list[str], val: int, test: int, seed: int) -> dict[str, str]:
    """Photo name -> split, whole photos per split (test photos never appear in training)."""
    if val + test >= len(names):
        raise DatasetError(
            f"{len(names)} photos cannot give {val} validation and {test} test photos plus training ones"
        )
    order = [names[i] for i in np.random.default_rng([seed, 7]).permutation(len(names))]
    return {name: "test" if i < test else "val" if i < test + val else "train" for i, name in enumerate(order)}


def check_output(output: Path, sources: Sequence[Path] = ()) -> None:
    """Refuse an output folder that is a file or holds anything (a new set never mixes with what is there), or that
    lies in or around one of the ``sources`` photo folders (a later run would read the pairs as photos). What killed
    runs left in it is removed first (:func:`remove_killed_stages`)."""
    if output.exists() and not output.is_dir():
        raise DatasetError(f"output folder {output} is a file; choose a new folder")
    around = synth_set_holding(output.absolute().parent)
    if around is not None:
        raise DatasetError(f"output folder {output} is inside the darkir synth set {around}; choose one outside it")
    for source in sources:
        if is_inside(output, source):
            raise DatasetError(f"output folder {output} is inside the photo folder {source}; choose a folder outside")
        if is_inside(source, output):
            raise DatasetError(f"photo folder {source} is inside the output folder {output}; choose another folder")
    if output.is_dir():
        remove_killed_stages(output)
        entries = sorted(entry.name for entry in os.scandir(output))
        if entries and all(name.startswith(STAGE_PREFIX) for name in entries):
            raise DatasetError(
                f"output folder {output} holds {some_of([repr(name) for name in entries], 1)}, the unfinished set of "
                "another darkir synth run (running now, on another machine, or killed under an older darkir); "
                "delete it if no run writes there, or choose a new folder"
            )
        if entries:
            raise DatasetError(
                f"output folder {output} is not empty (it holds {some_of([repr(name) for name in entries], 1)}); "
                "choose a new folder"
            )


#: The hidden folder a run writes its set into before moving it into place: this prefix and its process's
#: :func:`darkir.outputs.owner_tag`.
STAGE_PREFIX = ".darkir-part-"


def remove_killed_stages(output: Path) -> None:
    """Remove the hidden folders that killed runs left in ``output`` (:func:`darkir.outputs.left_by_killed_run`:
    this machine's whose process is gone, or whose pid is another process's now; another machine's or container's,
    in a shared folder, once nothing was written in it for a day), and say so."""
    mine = re.compile(rf"{re.escape(STAGE_PREFIX)}{local_owner().pattern}")
    for entry in os.scandir(output):
        if not entry.name.startswith(STAGE_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        if left_by_killed_run(Path(entry.path), mine.fullmatch(entry.name)):
            shutil.rmtree(entry.path)
            print(f"darkir: removed {entry.path}, the unfinished set of a killed run", file=sys.stderr)


def synthesize(
    photos: dict[str, Path],
    output: Path,
    per_photo: int = 16,
    size: int = 320,
    val_photos: int = 3,
    test_photos: int = 6,
    seed: int = 0,
    params: SynthParams | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write a LOLBlur-layout set ``output/{train,val,test}/{low_blur_noise,high_sharp_scaled}/<photo>/<k>.png``
    into a new or empty folder ``output`` (see :func:`check_output`).

    Returns the number of pairs per split; the drawn parameters of every pair go to ``output/synth.json``. The set
    is written into a hidden folder inside ``output`` and moved into place once complete: a run that fails or is
    interrupted leaves ``output`` as it found it.
    """
    if per_photo < 1 or size < 1:
        raise DatasetError(f"per_photo and size must be at least 1 (got {per_photo} and {size})")
    params = params or SynthParams()
    splits = assign_splits(sorted(photos), val_photos, test_photos, seed)
    _check_sizes(photos, size)
    check_output(output)
    created = not output.exists()
    stage = output / f"{STAGE_PREFIX}{owner_tag()}"
    moved: list[Path] = []  # the set's parts moved into place so far
    try:
        stage.mkdir(parents=True)
        records, counts = _write_pairs(photos, splits, stage, per_photo, size, seed, params, progress)
        summary = {"seed": seed, "size": size, "per_photo": per_photo, "params": asdict(params), "counts": counts}
        (stage / SET_RECORD).write_text(json.dumps({**summary, "pairs": records}, indent=1))
        for entry in [*sorted(p for p in stage.iterdir() if p.is_dir()), stage / SET_RECORD]:
            entry.rename(output / entry.name)
            moved.append(output / entry.name)
        stage.rmdir()
    except BaseException as exc:
        for part in moved:  # the set goes in whole or not at all (another run's train/ met midway)
            with contextlib.suppress(OSError):
                part.rename(stage / part.name)
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                output.rmdir()
        if is_disk_full(exc):  # (named by a file in the hidden folder, which is gone)
            full = f"cannot write the set in {output}: no space left on its disk; nothing was kept"
            raise DiskFullError(full) from None
        if isinstance(exc, OSError):
            where = f" ({os.fsdecode(exc.filename)})" if isinstance(exc.filename, (str, bytes)) else ""
            raise DatasetError(
                f"cannot write the set in {output}: {exc.strerror or exc}{where}; nothing was kept"
            ) from None
        raise
    return counts


def _check_sizes(photos: dict[str, Path], size: int) -> None:
    """Refuse, before any work and naming them all, the photos whose headers give a side under ``size`` (those
    without a readable header are checked as they are read)."""
    small = []
    for path in photos.values():
        header = read_header(path)
        if header is not None and min(header.displayed_size) < size:
            small.append(f"{path} ({header.displayed_size[0]}x{header.displayed_size[1]})")
    if small:
        raise DatasetError(f"{len(small)} photo(s) smaller than --size {size}: {some_of(small, 5)}; lower --size")


def _write_pairs(
    photos: dict[str, Path],
    splits: dict[str, str],
    root: Path,
    per_photo: int,
    size: int,
    seed: int,
    params: SynthParams,
    progress: bool,
) -> tuple[list[dict], dict[str, int]]:
    """Degrade and write every photo's pairs under ``root``; (the record of every pair, pairs per split)."""
    layout = LAYOUTS["lolblur"]
    records, counts = [], {"train": 0, "val": 0, "test": 0}
    bar = progress_bar(sorted(photos), desc="synthesizing", unit="photo", disable=not progress)
    for photo_index, name in enumerate(bar):
        clean = read_image(photos[name]).rgb
        if min(clean.shape[:2]) < size:
            raise DatasetError(f"{photos[name]}: {clean.shape[1]}x{clean.shape[0]} is smaller than --size {size}")
        split = splits[name]
        for k in range(per_photo):
            rng = np.random.default_rng([seed, photo_index, k])
            low, high, record = degrade(random_crop(clean, size, rng), rng, params)
            relative = Path(name) / f"{k:03d}.png"
            for folder, image in ((layout.low, low), (layout.high, high)):
                target = root / split / folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(target, Image(rgb=image, alpha=None, bit_depth=8, grayscale=False))
            records.append({"split": split, "pair": str(relative), "source": os.path.abspath(photos[name]), **record})
            counts[split] += 1
    return records, counts


def load_photos(paths: Sequence[Path], max_short_side: int = 1024) -> list[np.ndarray]:
    """Decode clean photos to uint8 RGB, downscaled (area filter) so their short side is at most ``max_short_side``."""
    photos = []
    for path in paths:
        rgb = np.rint(read_image(path).rgb * 255).astype(np.uint8)
        scale = max_short_side / min(rgb.shape[:2])
        if scale < 1:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        photos.append(rgb)
    return photos


def sample_crop(photo: np.ndarray, size: int, rng: np.random.Generator, max_zoom_out: float) -> np.ndarray:
    """A random ``size`` square seeing ``size``-``size * max_zoom_out`` source pixels (log-uniform), maybe mirrored."""
    short = min(photo.shape[:2])
    if short < size:
        raise DatasetError(f"a {photo.shape[1]}x{photo.shape[0]} photo is smaller than the crop size {size}")
    window = min(short, round(size * log_uniform(rng, (1.0, max(max_zoom_out, 1.0 + 1e-6)))))
    top = int(rng.integers(0, photo.shape[0] - window + 1))
    left = int(rng.integers(0, photo.shape[1] - window + 1))
    crop = photo[top : top + window, left : left + window]
    if window != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    crop = crop[:, ::-1] if rng.random() < 0.5 else crop
    return crop.astype(np.float32) / 255


class SynthDataset(Dataset):
    """Pairs degraded on the fly from clean photos: a fresh degradation per sample and epoch.

    Sample ``index`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, index])``, so it is
    the same whichever worker or process makes it (exact resume, multi-process runs). With
    ``fixed=True`` every epoch gives the same samples (a validation set).
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        names: Sequence[str],
        length: int,
        crop: int,
        seed: int = 0,
        params: SynthParams | None = None,
        max_zoom_out: float = 4.0,
        fixed: bool = False,
    ) -> None:
        if not photos:
            raise DatasetError("no clean photos to synthesize pairs from")
        small = [
            f"{name} ({photo.shape[1]}x{photo.shape[0]})"
            for name, photo in zip(names, photos, strict=True)
            if min(photo.shape[:2]) < crop
        ]
        if small:
            raise DatasetError(f"photos smaller than the crop size {crop}: {some_of(small, 5)}; lower the crop size")
        self.photos, self.names, self.length, self.crop = list(photos), list(names), length, crop
        self.seed, self.params, self.max_zoom_out, self.fixed = seed, params or SynthParams(), max_zoom_out, fixed
        self.epoch = 0
        self.held_out: list[str] = []  # a training set's: the photos held out of it, which a resumed run keeps out

    def set_epoch(self, epoch: int) -> None:
        """Select the draws of ``epoch`` (ignored for a fixed set)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, object]:
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, index])
        which = int(rng.integers(len(self.photos)))
        clean = sample_crop(self.photos[which], self.crop, rng, self.max_zoom_out)
        low, high, _ = degrade(clean, rng, self.params)
        return {"low": to_tensor(low), "high": to_tensor(high), "name": f"{self.names[which]}/{index:06d}"}
