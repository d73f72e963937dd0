"""Side-by-side pictures of unpaired real photos: input | auto-exposure | CLAHE | [Zero-DCE] | each model.

    python scripts/side_by_side.py data/real/dicm reports/real/dicm.jpg --weights darkir-w32-synth \\
        --weights darkir-csf-w32-synth --zero-dce data/real/zerodce/Epoch99.pth --images 8

Inputs are folders (their first ``--images`` photos) or single files, in order. Whole images are restored (no
tiling) and shown downscaled to ``--panel`` px wide; the mean brightness of each column is printed.
``--models-only`` leaves out auto-exposure and CLAHE (the README's opening picture:
input | DarkIR | DarkIR+CSF).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from darkir.data.layouts import list_images
from darkir.eval.methods import Method, auto_exposure, clahe, identity, model_method, zero_dce
from darkir.imageio import read_image
from darkir.infer import Restorer
from darkir.models import create_model


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    out = panel.copy()
    cv2.rectangle(out, (0, 0), (len(text) * 8 + 8, 18), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", type=Path, nargs="+", help="folders or image files")
    parser.add_argument("output", type=Path)
    parser.add_argument("--weights", action="append", default=[], help="model weights (repeat)")
    parser.add_argument("--zero-dce", help="the official Zero-DCE Epoch99.pth")
    parser.add_argument("--images", type=int, default=8, help="the first N images of each folder (default 8)")
    parser.add_argument("--panel", type=int, default=300, help="width of each picture in pixels")
    parser.add_argument("--models-only", action="store_true", help="only the input and the models")
    args = parser.parse_args()
    methods: list[Method] = [identity()] if args.models_only else [identity(), auto_exposure(), clahe()]
    if args.zero_dce:
        methods.append(zero_dce(args.zero_dce))
    for weights in args.weights:
        methods.append(model_method(Path(weights).stem, Restorer(create_model(weights), device="cpu", tile=0)))
    rows, means = [], {m.name: [] for m in methods}
    paths = [p for item in args.inputs for p in (list_images(item)[: args.images] if item.is_dir() else [item])]
    for path in paths:
        rgb = read_image(path).rgb
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        panels = []
        for method in methods:
            out = method.run(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
            means[method.name].append(float(out.mean()))
            height = round(args.panel * out.shape[0] / out.shape[1])
            small = cv2.resize(out, (args.panel, height), interpolation=cv2.INTER_AREA)
            bgr = cv2.cvtColor(np.rint(small * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
            panels.append(_label(bgr, method.name))
        height = max(p.shape[0] for p in panels)
        rows.append(np.hstack([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    for name, values in means.items():
        print(f"{name}: mean brightness {np.mean(values):.3f}")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
