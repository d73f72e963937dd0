"""PyTorch datasets over pairs: deterministic random crops and flips, independent of worker layout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from darkir.data.layouts import DatasetError
from darkir.data.pairs import Pair, _raise_if, _size
from darkir.imageio import read_image
from darkir.opencv import use_one_thread
from darkir.signals import outlive_sigterm


def loader_worker_init(worker_id: int) -> None:
    """Set up a data loader worker process: OpenCV single-threaded (:func:`darkir.opencv.use_one_thread`), and a
    SIGTERM to its whole process group left to its run to act on (:func:`darkir.signals.outlive_sigterm`)."""
    use_one_thread()
    outlive_sigterm()


def _check_sizes(pair: Pair, low: np.ndarray, high: np.ndarray | None, crop: int | None) -> None:
    """Refuse a pair whose files no longer match as they did when the set was checked (replaced while a run goes
    on): a reference of another size than its input (its crops would not line up), or an input under the crop."""
    size = f"{low.shape[1]}x{low.shape[0]}"
    if high is not None and high.shape[:2] != low.shape[:2]:
        raise DatasetError(
            f"{pair.low}: size {size} but reference {pair.high} is {high.shape[1]}x{high.shape[0]} (changed since "
            "the set was checked?)"
        )
    if crop and min(low.shape[:2]) < crop:
        raise DatasetError(
            f"{pair.low}: {size} is smaller than the crop size {crop} (changed since the set was checked?)"
        )


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


class PairedDataset(Dataset):
    """Low/high pairs as float tensors in [0, 1], optionally cropped and augmented.

    Augmentation draws from a generator seeded by (seed, epoch, index), so a sample is the same
    whichever worker or process loads it: runs resume exactly and multi-process runs see the
    same data as single-process ones. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop: int | None = None,
        flips: bool = False,
        rot90: bool = False,
        crop_type: str = "Random",
        seed: int = 0,
    ) -> None:
        if not pairs:
            raise DatasetError("empty dataset: no pairs to load")
        if crop_type not in ("Random", "Center"):
            raise DatasetError(f"crop_type {crop_type!r} is not 'Random' or 'Center'")
        self.pairs = list(pairs)
        self.crop, self.flips, self.rot90, self.crop_type, self.seed = crop, flips, rot90, crop_type, seed
        self.epoch = 0
        if crop:
            too_small = []
            for pair in self.pairs:
                size = _size(pair.low)
                if size and min(size) < crop:
                    too_small.append(f"{pair.low}: {size[0]}x{size[1]} is smaller than the crop size {crop}")
            _raise_if(too_small, "datasets.train.cropsize")

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, object]:
        pair = self.pairs[index]
        image = read_image(pair.low)
        low = image.rgb
        high = read_image(pair.high).rgb if pair.high is not None else None
        _check_sizes(pair, low, high, self.crop)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.crop:
            height, width = low.shape[:2]
            if self.crop_type == "Random":
                top, left = rng.integers(0, height - self.crop + 1), rng.integers(0, width - self.crop + 1)
            else:
                top, left = (height - self.crop) // 2, (width - self.crop) // 2
            window = (slice(top, top + self.crop), slice(left, left + self.crop))
            low = low[window]
            high = high[window] if high is not None else None
        ops = []
        if self.flips:
            ops += [lambda a: a[:, ::-1]] if rng.random() < 0.5 else []
            ops += [lambda a: a[::-1]] if rng.random() < 0.5 else []
        if self.rot90:
            turns = int(rng.integers(0, 4))
            ops += [lambda a: np.rot90(a, turns)]
        for op in ops:
            low = op(low)
            high = op(high) if high is not None else None
        sample: dict[str, object] = {
            "low": to_tensor(low),
            "name": pair.name,
            "bit_depth": image.bit_depth,
            "grayscale": image.grayscale,
        }
        if high is not None:
            sample["high"] = to_tensor(high)
        return sample
