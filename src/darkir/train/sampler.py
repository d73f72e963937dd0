"""Deterministic batches: one global permutation per epoch, split between processes."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this rank's share of each global batch of ``batch_size * world_size`` samples.

    Epoch ``e`` shuffles with seed ``(seed, e)``; step ``k`` takes the global batch
    ``perm[k*G:(k+1)*G]`` and rank ``r`` its slice ``r*B:(r+1)*B``. So N processes see exactly the
    samples one process with batch ``G`` sees, and ``start_step`` resumes mid-epoch. The last
    incomplete global batch is dropped.
    """

    def __init__(self, length: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def steps_per_epoch(self) -> int:
        """Complete global batches in one epoch."""
        return self.length // self.global_batch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the permutation of ``epoch`` and skip its first ``start_step`` batches."""
        self.epoch, self.start_step = epoch, start_step

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        for step in range(self.start_step, self.steps_per_epoch()):
            start = step * self.global_batch + self.rank * self.batch_size
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        return self.steps_per_epoch() - self.start_step
