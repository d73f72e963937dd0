"""The tiling defaults, apart from the engine so that the command line can show them without importing torch."""

#: Default tiling: the whole image when it fits the memory budget, else the largest tiles that do
#: (:mod:`darkir.infer.memory`).
DEFAULT_TILE = "auto"
#: Default overlap (pixels) of tiles.
DEFAULT_OVERLAP = 128
