"""spandrel (chaiNNer, ComfyUI, InvokeAI) loads darkir's shipped weights and official checkpoints.

spandrel needs torchvision, whose registry wheels do not import beside this environment's CPU torch, so the check
runs in a second environment made by ``scripts/setup_spandrel_env.sh`` (``scripts/test.sh`` makes it and sets
``DARKIR_SPANDREL_PYTHON``); without that variable the test is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from darkir.models.weights import packaged_weights_path
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_spandrel_loads_shipped_and_official_checkpoints(shared, tmp_path):
    python = os.environ.get("DARKIR_SPANDREL_PYTHON")
    if not python:
        pytest.skip("no spandrel environment (scripts/setup_spandrel_env.sh, then set DARKIR_SPANDREL_PYTHON)")
    fixture = torch.load(shared / "conformance" / "darkir_csf_w32.pt", weights_only=False)
    official = tmp_path / "DarkIR_official_layout.pt"  # a DDP training checkpoint, as the official scripts save one
    torch.save(
        {
            "model_state_dict": {f"module.{k}": v for k, v in fixture["state_dict"].items()},
            "optimizer_state_dict": {"state": {}, "param_groups": []},
            "epoch": 3,
        },
        official,
    )
    shipped = [packaged_weights_path(f"{name}.safetensors") for name in ("darkir-w32-synth", "darkir-csf-w32-synth")]
    check = [str(REPO / "tests" / "spandrel_check.py"), "--fixture", str(shared / "conformance" / "darkir_csf_w32.pt")]
    done = subprocess.run(
        [python, *check, *map(str, shipped), str(official)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == 3
    for path, entry in report.items():
        assert entry["architecture"] == "DarkIR" and entry["purpose"] == "Restoration", path
        assert entry["max_abs_diff"] < 1e-5, (path, entry)
    assert "CSF" in report[str(shipped[1])]["tags"] and "CSF" not in report[str(shipped[0])]["tags"]
    assert "CSF" in report[str(official)]["tags"] and "32nf" in report[str(official)]["tags"]
    assert report[str(official)]["fixture_max_abs_diff"] < 1e-4  # the reference implementation's own output
