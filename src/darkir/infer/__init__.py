"""Inference: the Restorer engine, image files and folders, and videos.

- ``restorer``: :class:`Restorer`, whole or tiled, at a precision, within a memory budget (``memory``: the planner;
  ``defaults``: tile and overlap sizes, JPEG quality; ``exposure``: the EV dial applied to restored images;
  ``inputs``: what it is called on, paths, PIL images, arrays and tensors, and gives back);
- ``jobs``: what to restore (inputs expanded into jobs with their output paths); ``files``: restoring them, with
  per-file outcomes, reading and writing overlapped with compute (``pipeline``);
- ``video``: videos, streamed frame by frame with their timing and audio (``video_colour``: their YUV matrix,
  range, bit depth and colour tags, kept).

Image files are read and written by :mod:`darkir.imageio` (their ICC profile, EXIF and dpi kept by
:mod:`darkir.image_metadata`; PNG and TIFF mended where OpenCV gets them wrong by :mod:`darkir.image_formats`);
devices, precision and memory by :mod:`darkir.runtime`.
The names below are imported when first used, so that importing a submodule (or ``darkir --help``) does not load
torch before it is needed.
"""

from __future__ import annotations

from darkir.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_OVERLAP": "darkir.infer.defaults",
    "DEFAULT_TILE": "darkir.infer.defaults",
    "RestoreSettings": "darkir.infer.restorer",
    "Restorer": "darkir.infer.restorer",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
