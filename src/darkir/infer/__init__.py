"""Inference: the Restorer engine, image files and folders, and videos.

Image files are read and written by :mod:`darkir.imageio`; devices, precision and memory by :mod:`darkir.runtime`.
"""

from darkir.infer.restorer import DEFAULT_OVERLAP, DEFAULT_TILE, Restorer, RestoreSettings

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_TILE", "RestoreSettings", "Restorer"]
