"""ONNX export with dynamic batch, height and width, checked against PyTorch."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from darkir.errors import DarkIRError
from darkir.models import DarkIR
from darkir.models.blocks import FreMLP

#: Sizes the exported graph is checked on: one multiple of 8 and one that needs padding.
CHECK_SIZES = ((64, 96), (57, 83))


def export_onnx(model: DarkIR, path: str | os.PathLike[str], opset: int = 18) -> Path:
    """Write ``model`` as ONNX with dynamic (batch, height, width) input ``input`` and output ``output``.

    The frequency branch is exported on the full complex spectrum (``FreMLP.onesided = False``):
    the same result as the real spectrum, in DFT ops that ONNX Runtime runs for any size.
    """
    try:
        import onnxscript  # noqa: F401 - required by the exporter
    except ImportError as exc:
        raise DarkIRError("ONNX export needs the onnx extra: pip install 'darkir[onnx]'") from exc
    exported = copy.deepcopy(model).cpu().eval()
    for module in exported.modules():
        if isinstance(module, FreMLP):
            module.onesided = False
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, model.config["img_channel"], 64, 96)
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = torch.export.Dim("height", min=8, max=16384), torch.export.Dim("width", min=8, max=16384)
    torch.onnx.export(
        exported,
        (example,),
        str(path),
        dynamo=True,
        opset_version=opset,
        input_names=["input"],
        output_names=["output"],
        dynamic_shapes={"input": {0: batch, 2: height, 3: width}},
        verbose=False,
    )
    return path


def check_onnx(model: DarkIR, path: str | os.PathLike[str]) -> list[tuple[tuple[int, int], float]]:
    """Max abs difference between ONNX Runtime and PyTorch outputs at :data:`CHECK_SIZES`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = []
    generator = torch.Generator().manual_seed(0)
    for size in CHECK_SIZES:
        x = torch.rand(1, model.config["img_channel"], *size, generator=generator)
        with torch.no_grad():
            expected = model.cpu().eval()(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        results.append((size, float(np.abs(got - expected).max())))
    return results
