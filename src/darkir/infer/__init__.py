"""Inference: the Restorer engine, image files and folders, and videos."""

from darkir.infer.restorer import DEFAULT_OVERLAP, DEFAULT_TILE, Restorer

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "Restorer"]
