"""Run in an environment with spandrel (and darkir): load checkpoints through spandrel, compare with darkir.

    python tests/spandrel_check.py [--fixture CONFORMANCE.pt] CHECKPOINT [CHECKPOINT ...]

Prints one JSON object: per checkpoint, the architecture spandrel detected, its tags, and the largest difference
between spandrel's output and darkir's (``load_model`` + forward, clamped to [0, 1]) on a fixed random image; with
``--fixture``, also the largest difference between spandrel's output on the fixture's input and the reference
output it stores (clamped), for every checkpoint tagged like the fixture's weights.
"""

from __future__ import annotations

import json
import sys

import torch

import darkir.integrations.spandrel  # noqa: F401  (registers DarkIR)
from darkir.models.factory import load_model


def main() -> None:
    import spandrel

    args = sys.argv[1:]
    fixture = None
    if args[:1] == ["--fixture"]:
        fixture, args = torch.load(args[1], weights_only=False), args[2:]
    image = torch.rand(1, 3, 72, 100, generator=torch.Generator().manual_seed(0)) * 0.3
    report = {}
    for path in args:
        descriptor = spandrel.ModelLoader().load_from_file(path)
        with torch.no_grad():
            expected = load_model(path)(image).clamp(0, 1)
        report[path] = {
            "architecture": descriptor.architecture.id,
            "tags": descriptor.tags,
            "purpose": descriptor.purpose,
            "max_abs_diff": float((descriptor(image) - expected).abs().max()),
        }
        if fixture is not None and path.endswith("official_layout.pt"):
            reference = fixture["output"].clamp(0, 1)
            report[path]["fixture_max_abs_diff"] = float((descriptor(fixture["input"]) - reference).abs().max())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
