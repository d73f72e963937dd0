"""The training and validation sets a run's options describe: paired folders (``datasets.train.train_path``,
``datasets.val.test_path``) or pairs degraded on the fly from clean photos (``datasets.train.synth``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from darkir.data.corpus import resolve_sources
from darkir.data.dataset import PairedDataset
from darkir.data.degradation import synth_params
from darkir.data.layouts import DatasetError
from darkir.data.pairs import Pair, resolve_pairs
from darkir.data.synth import SynthDataset, assign_splits, load_photos
from darkir.errors import ConfigError, some_of, warn
from darkir.options import Options
from darkir.train.runpaths import synthetic_validation


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all if fewer): a validation subset that spans the scenes
    of a set sorted by scene, instead of the first scene's frames."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def run_sets(options: Options) -> tuple[PairedDataset | SynthDataset, PairedDataset | SynthDataset | None, str]:
    """(training set, validation set or None, the key the training data comes from, for messages)."""
    data_cfg = options.datasets.train
    val_set: PairedDataset | SynthDataset | None = None
    if data_cfg.synth is not None:
        train_set, val_set = _synthetic_sets(options)
        train_root = "datasets.train.synth"
    else:
        train_root = options.require_path("datasets.train.train_path")
        pairs = _pairs(train_root, "datasets.train.train_path", "train")
        try:
            train_set = PairedDataset(
                pairs,
                crop=data_cfg.cropsize,
                flips=data_cfg.flips,
                rot90=data_cfg.rot90,
                crop_type=data_cfg.crop_type,
                seed=options.train.seed,
            )
        except DatasetError as exc:  # a setting that does not fit the data: named in the options file, as others are
            raise DatasetError(f"{options.source}: {exc}") from None
    if options.datasets.val.test_path:
        val_pairs = _pairs(options.require_path("datasets.val.test_path"), "datasets.val.test_path", "val")
        if options.train.val_max_images:
            val_pairs = spread(val_pairs, options.train.val_max_images)
        val_set = PairedDataset(val_pairs)
        if isinstance(train_set, PairedDataset):
            _warn_shared(train_set, val_set)
    return train_set, val_set, str(train_root)


def _pairs(root: Path, key: str, split: str) -> list[Pair]:
    """The pairs of the set ``key`` names (its ``split`` in a manifest); a set that yields none (an empty folder, no
    layout darkir knows) is a DatasetError naming the key, as errors of the other settings do."""
    try:
        return resolve_pairs(root, split)
    except DatasetError as exc:
        raise DatasetError(f"{key}: {exc}") from None


def _warn_shared(train_set: PairedDataset, val_set: PairedDataset) -> None:
    """Warn where validation pairs are training pairs too (the same folder, a manifest of it, a copy under links):
    the best checkpoint would be chosen on images the run trains on."""
    trained = {os.path.realpath(pair.low) for pair in train_set.pairs}
    shared = [str(pair.low) for pair in val_set.pairs if os.path.realpath(pair.low) in trained]
    if shared:
        warn(
            f"{len(shared)} of the {len(val_set)} validation pairs are training pairs too ({some_of(shared, 3)}): "
            "the best checkpoint is chosen on images the run trains on; validate on a set of its own"
        )


def file_list(dataset: PairedDataset | SynthDataset | None) -> dict[str, object] | None:
    """What the pairs of a folder set are, for a resumed run to tell whether they changed: their count and a digest
    of their names and file sizes (None for a set made on the fly, whose photos the checkpoint records)."""
    if not isinstance(dataset, PairedDataset):
        return None
    digest = hashlib.sha256()
    for pair in sorted(dataset.pairs, key=lambda pair: pair.name):
        sizes = [os.path.getsize(path) if path is not None else -1 for path in (pair.low, pair.high)]
        digest.update(f"{pair.name}\0{sizes[0]}\0{sizes[1]}\n".encode(errors="surrogateescape"))
    return {"pairs": len(dataset.pairs), "digest": digest.hexdigest()}


def _synthetic_sets(options: Options) -> tuple[SynthDataset, SynthDataset | None]:
    """(training set, validation set or None) degraded on the fly from ``datasets.train.synth``'s photos."""
    synth, data_cfg = options.datasets.train.synth, options.datasets.train
    assert synth is not None
    try:
        params = synth_params(synth.degradation)
        sources = resolve_sources(synth.sources)
    except (ValueError, DatasetError) as exc:
        raise ConfigError(f"{options.source}: datasets.train.synth: {exc}") from None
    names = sorted(sources)
    splits = assign_splits(names, synth.val_photos, synth.test_photos, synth.split_seed)

    def subset(split: str) -> tuple[list, list[str]]:
        chosen = [name for name in names if splits[name] == split]
        return load_photos([sources[name] for name in chosen], synth.max_short_side), chosen

    photos, chosen = subset("train")
    with _naming(options, "datasets.train.cropsize"):
        train_set = SynthDataset(
            photos, chosen, synth.pairs_per_epoch, data_cfg.cropsize, options.train.seed, params, synth.max_zoom_out
        )
    train_set.held_out = sorted(name for name in names if splits[name] != "train")
    if not synthetic_validation(options):
        return train_set, None
    photos, chosen = subset("val")
    with _naming(options, "datasets.train.synth.val_cropsize"):
        val_set = SynthDataset(
            photos, chosen, synth.val_pairs, synth.val_cropsize, synth.split_seed + 1, params, synth.max_zoom_out,
            fixed=True,
        )  # fmt: skip
    return train_set, val_set


@contextlib.contextmanager
def _naming(options: Options, key: str) -> Iterator[None]:
    """Turn a :class:`DatasetError` (photos smaller than the crop) into a ConfigError naming the file and ``key``."""
    try:
        yield
    except DatasetError as exc:
        raise ConfigError(f"{options.source}: {key}: {exc}") from None
