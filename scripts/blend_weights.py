"""Blend two checkpoints of one architecture weight by weight: ``(1 - t) * A + t * B`` (weight-space ensembling).

    python scripts/blend_weights.py darkir-csf-w32-synth runs/darkir-csf-w32-bright2/last_step000500.pt \
        -t 0.5 -o runs/blend/csf_t050.safetensors

``A`` and ``B`` must be of one network (the same config: typically a fine-tune ``B`` of ``A``); floating-point tensors
are blended in float64 and stored in ``A``'s dtype, other tensors (counters) are taken from ``A``. The result keeps
``A``'s model config, so it loads like any darkir checkpoint. Several ``-t`` values write one file each (``-o`` then
names a folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from darkir.checkpoint import save_checkpoint
from darkir.models import create_model


def blend(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], t: float) -> dict[str, torch.Tensor]:
    """``(1 - t) * first + t * second`` per floating-point tensor (the two of one network: same keys and shapes);
    ``first``'s value for any other tensor."""
    out = {}
    for key, a in first.items():
        b = second[key]
        out[key] = ((1 - t) * a.double() + t * b.double()).to(a.dtype) if a.is_floating_point() else a.clone()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="checkpoint A (name or path); t = 0 gives it back")
    parser.add_argument("second", help="checkpoint B; t = 1 gives it back")
    parser.add_argument("-t", type=float, nargs="+", required=True, help="share of B, each in [0, 1]")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file (one t) or folder (several)")
    args = parser.parse_args()
    if any(not 0 <= t <= 1 for t in args.t):
        parser.error(f"-t must lie in [0, 1], got {args.t}")
    model, other = create_model(args.first, require_weights=True), create_model(args.second, require_weights=True)
    if model.config != other.config:
        differences = ", ".join(
            f"{k} {v} vs {other.config[k]}" for k, v in model.config.items() if other.config[k] != v
        )
        parser.error(f"the checkpoints are of different networks ({differences})")
    paths = (
        [args.output / f"blend_t{round(t * 100):03d}.safetensors" for t in args.t] if len(args.t) > 1 else [args.output]
    )
    if len(set(paths)) < len(paths):
        parser.error(f"-t {args.t}: two shares round to one file name (shares are named in hundredths)")
    first = {key: value.clone() for key, value in model.state_dict().items()}
    second = other.state_dict()
    for t, path in zip(args.t, paths, strict=True):
        model.load_state_dict(blend(first, second, t))
        print(f"t = {t:g} -> {save_checkpoint(path, model)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
