"""scripts/blend_weights.py: weight-space blends of two checkpoints of one architecture."""

from __future__ import annotations

import subprocess
import sys

import torch

from darkir.checkpoint import read_checkpoint, save_checkpoint
from darkir.models.factory import build_model, load_model
from tests.conftest import REPO, TINY, randomize

SCRIPT = REPO / "scripts" / "blend_weights.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_blends_are_the_weighted_mean_and_keep_the_first_config(tmp_path):
    first = randomize(build_model("darkir-csf-w32", **TINY), seed=1)
    second = randomize(build_model("darkir-csf-w32", **TINY), seed=2)
    a, b = save_checkpoint(tmp_path / "a.pt", first), save_checkpoint(tmp_path / "b.pt", second)
    done = _run(str(a), str(b), "-t", "0", "0.25", "1", "-o", str(tmp_path / "blends"))
    assert done.returncode == 0, done.stderr
    blends = tmp_path / "blends"
    ends = {name: load_model(blends / f"blend_t{name}.safetensors").state_dict() for name in ("000", "100")}
    assert all(torch.equal(ends["000"][k], v) for k, v in first.state_dict().items())
    assert all(torch.equal(ends["100"][k], v) for k, v in second.state_dict().items())
    quarter, config, _ = read_checkpoint(blends / "blend_t025.safetensors")
    assert config == first.config
    for key, value in first.state_dict().items():
        expected = 0.75 * value.double() + 0.25 * second.state_dict()[key].double()
        assert torch.allclose(quarter[key].double(), expected, atol=1e-7), key


def test_other_architectures_and_bad_shares_are_refused(tmp_path):
    a = save_checkpoint(tmp_path / "a.pt", build_model("darkir-csf-w32", **TINY))
    b = save_checkpoint(tmp_path / "b.pt", build_model("darkir-w16", **TINY))
    refused = _run(str(a), str(b), "-t", "0.5", "-o", str(tmp_path / "x.safetensors"))
    assert refused.returncode == 2 and "different networks (use_csf True vs False)" in refused.stderr
    wide = save_checkpoint(tmp_path / "wide.pt", build_model("darkir-csf-w32", **{**TINY, "width": 16}))
    refused = _run(str(a), str(wide), "-t", "0.5", "-o", str(tmp_path / "x.safetensors"))
    assert refused.returncode == 2 and "different networks (width 8 vs 16)" in refused.stderr
    refused = _run(str(a), str(a), "-t", "1.5", "-o", str(tmp_path / "x.safetensors"))
    assert refused.returncode == 2 and "-t must lie in [0, 1]" in refused.stderr
    dilated = save_checkpoint(tmp_path / "dilated.pt", build_model("darkir-csf-w32", **TINY, dilations=[1, 2, 3]))
    refused = _run(str(a), str(dilated), "-t", "0.5", "-o", str(tmp_path / "x.safetensors"))
    assert refused.returncode == 2 and "different networks (dilations [1, 4, 9] vs [1, 2, 3])" in refused.stderr
    refused = _run(str(a), str(a), "-t", "0.12", "0.121", "-o", str(tmp_path / "x"))
    assert refused.returncode == 2 and "two shares round to one file name" in refused.stderr
    assert not (tmp_path / "x.safetensors").exists()
