"""The restoration engine: a loaded model plus the fast path (channels_last, bf16, compile) and tiling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from darkir.errors import DarkIRError
from darkir.infer.runtime import (
    keep_freed_memory_for_reuse,
    memory_returned_to_os,
    resolve_device,
    resolve_precision,
)

#: Default tile side: larger images are restored in overlapping tiles of this size, which bounds
#: memory (a 704x704 tile peaks near 1.8 GB on CPU at width 32) at a small cost in fidelity.
DEFAULT_TILE = 704
DEFAULT_OVERLAP = 128
#: Scale (pixels) above which a tiled result takes its content from the whole-image preview.
GUIDE_SCALE = 64


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` overlapping by at least ``overlap`` that cover ``length``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def _ramp(start: int, tile: int, overlap: int, full: int) -> torch.Tensor:
    """1-D blending weights of one tile: linear ramps over ``overlap`` pixels where it meets a neighbour."""
    weights = torch.ones(tile)
    if overlap == 0:
        return weights
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
    if start > 0:
        weights[:overlap] = ramp
    if start + tile < full:
        weights[-overlap:] = torch.minimum(weights[-overlap:], ramp.flip(0))
    return weights


def _lowpass(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Structures larger than ``scale`` pixels: box-average by ``scale`` and interpolate back."""
    kernel = (min(scale, x.shape[-2]), min(scale, x.shape[-1]))
    coarse = F.avg_pool2d(x, kernel, ceil_mode=True, count_include_pad=False)
    return F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _resample_window(
    small: torch.Tensor, size: tuple[int, int], top: int, left: int, window: tuple[int, int]
) -> torch.Tensor:
    """The ``window`` at (top, left) of ``small`` bilinearly resized to ``size``, computed for that window only."""
    height, width = size
    ys = (torch.arange(top, top + window[0]) + 0.5) * 2 / height - 1
    xs = (torch.arange(left, left + window[1]) + 0.5) * 2 / width - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].expand(small.shape[0], -1, -1, -1)
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Restorer:
    """Runs a DarkIR model on images of any size, fast and in bounded memory.

    ``tile``: images with a side longer than this are restored in ``tile`` x ``tile`` windows that
    overlap by ``overlap`` pixels and are blended with linear ramps (0 disables tiling). DarkIR's
    frequency branch sees a whole image at once, so a tile alone restores with the tone of its own
    content; each tile therefore takes its coarse content (scales above :data:`GUIDE_SCALE` pixels)
    from a preview of the whole image restored at tile size, and keeps its own detail
    (``guide_scale=None`` blends plain tiles).
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
        guide_scale: int | None = GUIDE_SCALE,
    ) -> None:
        if tile and not 0 <= overlap < tile // 2:
            raise DarkIRError(f"overlap {overlap} must be >= 0 and less than half the tile size {tile}")
        if tile and tile < 32:
            raise DarkIRError(f"tile {tile} is too small; use 0 (no tiling) or at least 32")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.tile, self.overlap, self.guide_scale = tile, overlap, guide_scale
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

    def tiles_for(self, height: int, width: int) -> int:
        """How many windows an image of ``height`` x ``width`` is restored in (1: the whole image at once)."""
        if not self.tile or (height <= self.tile and width <= self.tile):
            return 1
        rows = tile_starts(height, min(self.tile, height), self.overlap)
        return len(rows) * len(tile_starts(width, min(self.tile, width), self.overlap))

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
        guide = self._preview(x, (tile_h, tile_w)) if self.guide_scale else None
        for top in tile_starts(height, tile_h, self.overlap):
            rows = _ramp(top, tile_h, self.overlap, height)
            for left in tile_starts(width, tile_w, self.overlap):
                cols = _ramp(left, tile_w, self.overlap, width)
                window = (rows[:, None] * cols[None, :])[None, None]
                window_slice = (slice(None), slice(None), slice(top, top + tile_h), slice(left, left + tile_w))
                restored = self._run(x[window_slice])
                if guide is not None:
                    coarse = _resample_window(guide, (height, width), top, left, (tile_h, tile_w))
                    restored += _lowpass(coarse - restored, self.guide_scale)
                out[window_slice] += restored * window
                weight[window_slice] += window
        return out / weight

    def _preview(self, x: torch.Tensor, tile_shape: tuple[int, int]) -> torch.Tensor:
        """The whole image, area-downscaled to fit a tile, restored; tiles read it through
        :func:`_resample_window`, so it is never held at full size.

        Its activations have other shapes than the tiles', so on the CPU they are allocated as memory
        that goes back to the OS when freed, rather than left as holes in the heap the tiles reuse.
        """
        scale = min(tile_shape[0] / x.shape[-2], tile_shape[1] / x.shape[-1])
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        small = F.interpolate(x, size=size, mode="area")
        with memory_returned_to_os() if self.device.type == "cpu" else contextlib.nullcontext():
            return self._run(small).clone()

    @torch.inference_mode()
    def restore_array(self, rgb: np.ndarray) -> np.ndarray:
        """Restore one (H, W, 3) float32 RGB image in [0, 1]; the result is clamped to [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        out = self.restore_tensor(x)[0].clamp(0, 1)
        return out.permute(1, 2, 0).numpy()
