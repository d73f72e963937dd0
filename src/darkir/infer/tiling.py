"""Tiles: where the windows of a large image start, how they blend, and the whole-image guide that keeps their tone.

DarkIR's frequency branch sees a whole image at once, so a tile alone restores with the tone of its own content. Each
tile therefore takes its coarse content (scales above :data:`GUIDE_SCALE` pixels) from a preview of the whole image
restored at tile size, and keeps its own detail; windows overlap and blend with linear ramps, so no seam shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from darkir.errors import DarkIRError, is_whole
from darkir.infer.defaults import DEFAULT_OVERLAP
from darkir.infer.memory import padded
from darkir.memory_sizes import parse_memory

#: Scale (pixels) above which a tiled result takes its content from the whole-image preview.
GUIDE_SCALE = 64
#: Tiles smaller than this change the result's tone noticeably (a 1120x640 photo, against the whole image: 512 px
#: tiles 0.2% brighter, 384 px 0.3%, 256 px 0.8%, 128 px 2.2%); a Restorer warns, once, when it tiles below it.
TONE_SAFE_TILE = 384


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: :data:`DEFAULT_OVERLAP`, or a quarter of a smaller tile."""
    return min(DEFAULT_OVERLAP, tile // 4)


def overlap_fits(overlap: int, tile: int) -> bool:
    """Whether windows of ``tile`` px may overlap by ``overlap`` px: less than half a tile (rounded down)."""
    return overlap < tile // 2


def window_overlap(tile: int, overlap: int | None) -> int:
    """The overlap of ``tile`` px windows: ``overlap`` where one is given that fits them (:func:`overlap_fits`), else
    :func:`default_overlap`."""
    return overlap if overlap is not None and overlap_fits(overlap, tile) else default_overlap(tile)


#: How :func:`check_tiling` names the settings in its errors: the parameters, and ``tile="auto"`` as ``auto``.
TILING_NAMES = {"tile": "tile", "overlap": "overlap", "max_memory": "max_memory", "auto": "tile='auto'"}


def check_tiling(
    tile: int | str, overlap: int | None, max_memory: int | str | None, names: Mapping[str, str] = TILING_NAMES
) -> int | None:
    """Check tiling settings before anything is loaded; returns ``max_memory`` in bytes (or None).

    ``names``: how errors call the settings (:data:`TILING_NAMES`' keys; the command line passes its flags).
    """
    if tile != "auto" and not is_whole(tile):
        raise DarkIRError(f"{names['tile']} must be 'auto' or a number of pixels, got {tile!r}")
    if max_memory is not None:
        if tile != "auto":
            raise DarkIRError(
                f"{names['max_memory']} applies to {names['auto']}; {names['tile']} {tile} sets the tile size itself"
            )
        max_memory = parse_memory(max_memory, names["max_memory"])
    if overlap is not None and not is_whole(overlap):
        raise DarkIRError(f"{names['overlap']} must be a whole number of pixels or None, got {overlap!r}")
    if overlap is not None and overlap < 0:
        raise DarkIRError(f"{names['overlap']} {overlap} must be >= 0")
    if tile != "auto":
        if tile < 0 or 0 < tile < 32:
            raise DarkIRError(f"{names['tile']} {tile} is too small; use 0 (whole images), auto, or at least 32")
        if tile and overlap is not None and not overlap_fits(overlap, tile):
            raise DarkIRError(
                f"{names['overlap']} {overlap} must be less than {tile // 2} (half of {names['tile']} {tile}, rounded "
                "down)"
            )
    return max_memory


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` overlapping by at least ``overlap`` that cover ``length``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def ramp(start: int, tile: int, overlap: int, full: int) -> torch.Tensor:
    """1-D blending weights of one tile: linear ramps over ``overlap`` pixels where it meets a neighbour."""
    weights = torch.ones(tile)
    if overlap == 0:
        return weights
    rising = torch.linspace(0, 1, overlap + 2)[1:-1]
    if start > 0:
        weights[:overlap] = rising
    if start + tile < full:
        weights[-overlap:] = torch.minimum(weights[-overlap:], rising.flip(0))
    return weights


def lowpass(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Structures larger than ``scale`` pixels: box-average by ``scale`` and interpolate back."""
    kernel = (min(scale, x.shape[-2]), min(scale, x.shape[-1]))
    coarse = F.avg_pool2d(x, kernel, ceil_mode=True, count_include_pad=False)
    return F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)


def resample_window(
    small: torch.Tensor, size: tuple[int, int], top: int, left: int, window: tuple[int, int]
) -> torch.Tensor:
    """The ``window`` at (top, left) of ``small`` bilinearly resized to ``size``, computed for that window only."""
    height, width = size
    ys = (torch.arange(top, top + window[0]) + 0.5) * 2 / height - 1
    xs = (torch.arange(left, left + window[1]) + 0.5) * 2 / width - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None].expand(small.shape[0], -1, -1, -1)
    return F.grid_sample(small, grid, mode="bilinear", padding_mode="border", align_corners=False)


def window_side(tile: int, multiple: int = 1) -> int:
    """The side of the windows of ``tile`` px tiles for a model that pads its input with zeros to a ``multiple``:
    the tile rounded down to the multiple (``--tile 129``: 128 px windows for DarkIR's 8)."""
    return max(multiple, tile // multiple * multiple)


def window_shape(height: int, width: int, tile: int, multiple: int = 1) -> tuple[int, int]:
    """The windows' shape for a ``height`` x ``width`` image in ``tile`` px tiles (:func:`window_side`), at most the
    image as the model pads it."""
    side = window_side(tile, multiple)
    full_h, full_w = padded(height, width, multiple)
    return min(side, full_h), min(side, full_w)


def window_count(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """How many windows :func:`restore_in_tiles` restores a ``height`` x ``width`` image in."""
    tile_h, tile_w = window_shape(height, width, tile, multiple)
    full_h, full_w = padded(height, width, multiple)
    return len(tile_starts(full_h, tile_h, overlap)) * len(tile_starts(full_w, tile_w, overlap))


def restore_in_tiles(
    run: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    preview: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None = None,
    guide_scale: int | None = GUIDE_SCALE,
    multiple: int = 1,
) -> torch.Tensor:
    """``x`` (N, C, H, W) restored by ``run`` (a batch -> its restored float32 batch on the CPU) in ``tile`` x
    ``tile`` windows overlapping by ``overlap`` pixels, blended with linear ramps. ``preview(x, tile_shape)``: the
    whole image restored small (see :meth:`darkir.infer.Restorer._preview`), from which each window takes its
    structures above ``guide_scale`` pixels (either None: plain tiles).

    The windows lie on the image as a model that pads with zeros to a ``multiple`` pads it whole, in tiles of that
    multiple (:func:`window_shape`): those at the bottom and right take the whole image's zero padding, so its edges
    restore as they do whole, and no window needs padding of its own."""
    height, width = x.shape[-2:]
    full_h, full_w = padded(height, width, multiple)
    out = torch.zeros(x.shape, dtype=torch.float32)
    weight = torch.zeros(1, 1, height, width)
    tile_h, tile_w = window_shape(height, width, tile, multiple)
    guide = preview(x, (tile_h, tile_w)) if preview is not None and guide_scale else None
    for top in tile_starts(full_h, tile_h, overlap):
        rows = ramp(top, tile_h, overlap, full_h)[: height - top]
        for left in tile_starts(full_w, tile_w, overlap):
            cols = ramp(left, tile_w, overlap, full_w)[: width - left]
            window = (rows[:, None] * cols[None, :])[None, None]
            window_slice = (slice(None), slice(None), slice(top, top + tile_h), slice(left, left + tile_w))
            part = x[window_slice]
            rows_in, cols_in = part.shape[-2:]
            beyond = (0, tile_w - cols_in, 0, tile_h - rows_in)  # the zero padding of a window at the bottom/right
            restored = run(F.pad(part, beyond) if any(beyond) else part)[..., :rows_in, :cols_in]
            if guide is not None and guide_scale:
                # a window cut short by the image's edge takes its blocks from that edge (its odd block inside,
                # where it blends with its neighbour), not from its own start
                ends = [dim for dim, cut in ((-2, beyond[3]), (-1, beyond[1])) if cut]
                coarse = resample_window(guide, (height, width), top, left, (rows_in, cols_in))
                difference = (coarse - restored).flip(ends) if ends else coarse - restored
                correction = lowpass(difference, guide_scale)
                restored += correction.flip(ends) if ends else correction
            out[window_slice] += restored * window
            weight[window_slice] += window
    return out / weight
