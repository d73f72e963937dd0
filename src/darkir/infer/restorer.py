"""The restoration engine: a loaded model plus the fast path (channels_last, bf16, compile) and tiling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from darkir.errors import DarkIRError
from darkir.infer.runtime import keep_freed_memory_for_reuse, resolve_device, resolve_precision

#: Default tile side: larger images are restored in overlapping tiles of this size, which bounds
#: memory (a 768x768 tile peaks near 2 GB on CPU at width 32) at a small cost in fidelity.
DEFAULT_TILE = 768
DEFAULT_OVERLAP = 128


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` overlapping by at least ``overlap`` that cover ``length``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(length: int, start: int, tile: int, overlap: int, full: int) -> torch.Tensor:
    """1-D blending weights of one tile: linear ramps over ``overlap`` pixels where it meets a neighbour."""
    weights = torch.ones(length)
    if overlap == 0:
        return weights
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    if start > 0:
        weights[:overlap] = ramp
    if start + tile < full:
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


class Restorer:
    """Runs a DarkIR model on images of any size, fast and in bounded memory.

    ``tile``: images with a side longer than this are restored in ``tile`` x ``tile`` windows that
    overlap by ``overlap`` pixels and are blended with linear ramps (0 disables tiling).
    ``precision``: ``fp32`` (default, exact), ``bf16`` (CPU with AVX-512 BF16/AMX, or GPU) or
    ``fp16`` (GPU), applied with autocast so that normalizations and FFTs stay in fp32.
    ``compile``: wrap the model in ``torch.compile`` (slow first call, faster afterwards).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        compile: bool = False,
    ) -> None:
        if tile and not 0 <= overlap < tile // 2:
            raise DarkIRError(f"overlap {overlap} must be >= 0 and less than half the tile size {tile}")
        if tile and tile < 32:
            raise DarkIRError(f"tile {tile} is too small; use 0 (no tiling) or at least 32")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.tile, self.overlap = tile, overlap
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self._forward = torch.compile(self.model, dynamic=True) if compile else self.model

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        if self.dtype == torch.float32:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                yield

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self._precision():
            out = self._forward(x)
        return out.float().cpu()

    @torch.inference_mode()
    def restore_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a (N, C, H, W) float batch in [0, 1]; returns float32 on the CPU, not clamped."""
        if x.dim() != 4:
            raise DarkIRError(f"expected a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if not self.tile or (height <= self.tile and width <= self.tile):
            return self._run(x)
        out = torch.zeros(x.shape, dtype=torch.float32)
        weight = torch.zeros(1, 1, height, width)
        tile_h, tile_w = min(self.tile, height), min(self.tile, width)
        for top in tile_starts(height, tile_h, self.overlap):
            rows = _ramp(tile_h, top, tile_h, self.overlap, height)
            for left in tile_starts(width, tile_w, self.overlap):
                cols = _ramp(tile_w, left, tile_w, self.overlap, width)
                window = (rows[:, None] * cols[None, :])[None, None]
                restored = self._run(x[:, :, top : top + tile_h, left : left + tile_w])
                out[:, :, top : top + tile_h, left : left + tile_w] += restored * window
                weight[:, :, top : top + tile_h, left : left + tile_w] += window
        return out / weight

    @torch.inference_mode()
    def restore_array(self, rgb: np.ndarray) -> np.ndarray:
        """Restore one (H, W, 3) float32 RGB image in [0, 1]; the result is clamped to [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        out = self.restore_tensor(x)[0].clamp(0, 1)
        return out.permute(1, 2, 0).numpy()
