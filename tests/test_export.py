"""ONNX export: dynamic sizes, same outputs as PyTorch, for both variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkir.checkpoint import save_checkpoint
from darkir.cli import main
from darkir.models.blocks import FreMLP
from darkir.models.factory import build_model
from tests.conftest import TINY, randomize

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def test_full_spectrum_branch_equals_half_spectrum():
    model = randomize(build_model("darkir-csf-w32", **TINY)).eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        half = model(x)
        for module in model.modules():
            if isinstance(module, FreMLP):
                module.onesided = False
        full = model(x)
    assert (half - full).abs().max().item() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["darkir-w32", "darkir-csf-w32"])
def test_export_onnx_command(tmp_path, name, capsys):
    weights = save_checkpoint(tmp_path / "w.pt", randomize(build_model(name, **TINY), seed=3))
    assert main(["export-onnx", "--weights", str(weights), "-o", str(tmp_path / "m.onnx")]) == 0
    printed = capsys.readouterr().out
    diffs = [float(line.rsplit(" ", 1)[1]) for line in printed.splitlines() if line.startswith("checked")]
    assert len(diffs) == 2 and max(diffs) < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": np.random.default_rng(0).random((3, 3, 30, 41), dtype=np.float32)})[0]
    assert out.shape == (3, 3, 30, 41)
