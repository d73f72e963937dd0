"""The defaults of restoring that the command line shows (tiling, JPEG quality), apart from the engine so that it
shows them without importing torch or NumPy."""

#: Default tiling: the whole image when it fits the memory budget, else the largest tiles that do
#: (:mod:`darkir.infer.memory`).
DEFAULT_TILE = "auto"
#: Default overlap (pixels) of tiles.
DEFAULT_OVERLAP = 128
#: The quality JPEG outputs are written at by default (libjpeg's 1-100 scale; colour subsampled 4:2:0).
JPEG_QUALITY = 95
