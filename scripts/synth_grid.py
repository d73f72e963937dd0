"""Write a picture of synthesized pairs: ``python scripts/synth_grid.py data/synth/test docs/synth_examples.png``.

Rows of (input | reference) pairs, one pair per held-out photo, so the degradation model can be judged by eye.
"""

import sys
from pathlib import Path

import cv2
import numpy as np

from darkir.data.pairs import find_pairs
from darkir.imageio import Image, read_image, write_image


def main(root: str, output: str, per_row: int = 2, side: int = 256) -> None:
    pairs = find_pairs(root)
    first_per_photo = {}
    for pair in pairs:
        first_per_photo.setdefault(Path(pair.name).parent, pair)
    tiles = []
    for pair in list(first_per_photo.values())[:6]:
        paths = (pair.low, pair.high)
        low, high = (cv2.resize(read_image(p).rgb, (side, side), interpolation=cv2.INTER_AREA) for p in paths)
        tiles.append(np.hstack([low, np.ones((side, 4, 3), np.float32), high]))
    if not tiles:
        sys.exit(f"synth_grid.py: no pairs in {root}")
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % per_row)  # the last row filled out with blank tiles
    rows = [np.hstack(tiles[i : i + per_row]) for i in range(0, len(tiles), per_row)]
    write_image(Path(output), Image(rgb=np.vstack(rows), alpha=None, bit_depth=8, grayscale=False))


if __name__ == "__main__":
    main(*sys.argv[1:3])
