"""The README's exposure picture: one low-light photo, then the default model's result at -1, 0 and +1 EV.

    python scripts/exposure_strip.py [IMAGE] docs/exposure.jpg [--weights NAME_OR_PATH] [--panel 400]

IMAGE defaults to the first bundled example. Each panel is the whole image restored with ``Restorer(...,
exposure=EV)`` (what ``darkir restore --exposure EV`` writes), downscaled to ``--panel`` px wide and labelled; the
mean brightness of each panel is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from darkir.examples import example_images
from darkir.imageio import Image, read_image, write_image
from darkir.infer import Restorer


def _panel(rgb: np.ndarray, width: int, text: str) -> np.ndarray:
    height = round(rgb.shape[0] * width / rgb.shape[1])
    panel = cv2.resize(np.clip(rgb, 0, 1), (width, height), interpolation=cv2.INTER_AREA)
    panel = np.ascontiguousarray(np.rint(panel * 255).astype(np.uint8))
    cv2.rectangle(panel, (0, 0), (len(text) * 9 + 8, 20), (0, 0, 0), -1)
    cv2.putText(panel, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return panel.astype(np.float32) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", type=Path, nargs="+", help="[IMAGE] OUTPUT")
    parser.add_argument("--weights", default="darkir-csf-w32-synth")
    parser.add_argument("--panel", type=int, default=400, help="panel width in pixels")
    args = parser.parse_args()
    source, output = args.paths if len(args.paths) == 2 else [example_images()[0], args.paths[0]]
    low = read_image(source).rgb
    restorer = Restorer.from_pretrained(args.weights, tile=0, precision="fp32")
    panels = [_panel(low, args.panel, "input")]
    for ev in (-1.0, 0.0, 1.0):
        restored = restorer.with_exposure(ev).restore_array(low)
        print(f"{ev:+g} EV: mean brightness {restored.mean():.3f}")
        panels.append(_panel(restored, args.panel, f"{ev:+g} EV" if ev else "0 EV (model)"))
    strip = np.hstack([np.pad(p, ((0, 0), (0, 4), (0, 0))) for p in panels])[:, :-4]
    write_image(output, Image(rgb=strip, alpha=None, bit_depth=8, grayscale=False), overwrite=True)
    print(f"-> {output}")


if __name__ == "__main__":
    main()
