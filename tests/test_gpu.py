"""GPU paths (skipped without CUDA; run on a lent GPU machine): CPU agreement, the planner, a video round trip, and
the GPU benchmark script (which also runs on the CPU with tiny sizes, so that it is tested everywhere)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from darkir import create_model
from darkir.infer import Restorer
from tests.conftest import REPO

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return create_model(tiny_checkpoint)


@cuda
@pytest.mark.parametrize("tile", [0, 64])
def test_gpu_restore_matches_the_cpu(model, tile):
    x = torch.rand(1, 3, 120, 200, generator=torch.Generator().manual_seed(0))
    cpu = Restorer(model, device="cpu", precision="fp32", tile=tile).restore_tensor(x)
    exact = Restorer(model, device="cuda", precision="fp32", tile=tile).restore_tensor(x)
    default = Restorer(model, device="cuda", tile=tile).restore_tensor(x)
    assert (exact - cpu).abs().max() < 1e-3
    levels = [torch.round(t.clamp(0, 1) * 255) for t in (default, cpu)]
    assert (levels[0] - levels[1]).abs().le(1).float().mean() >= 0.999


@cuda
def test_gpu_restore_levels_matches_the_cpu(model):
    import numpy as np

    rgb = (np.random.default_rng(0).random((2, 120, 200, 3)) * 120).astype(np.uint8)[..., ::-1]  # as from BGR
    cpu = Restorer(model, device="cpu", precision="fp32", tile=0).restore_levels(rgb)
    gpu = Restorer(model, device="cuda", tile=0).restore_levels(rgb)  # 8-bit levels converted on the GPU
    assert gpu.dtype == np.uint8 and gpu.shape == rgb.shape
    assert (np.abs(gpu.astype(int) - cpu.astype(int)) <= 1).mean() >= 0.999


@cuda
def test_gpu_planner_estimate_holds(model):
    restorer = Restorer(model, device="cuda", max_memory="1000GB")
    for height, width in ((256, 256), (512, 768), (1024, 1024)):
        plan = restorer.plan_for(height, width)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        restorer.restore_tensor(torch.rand(1, 3, height, width))
        torch.cuda.synchronize()
        assert torch.cuda.max_memory_allocated() <= plan.estimate * 1.2


@cuda
def test_gpu_video_round_trip(model, tmp_path):
    pytest.importorskip("av")
    from darkir.infer.video import restore_video
    from tests.test_video import make_video

    source = make_video(tmp_path / "clip.mp4", frames=5, size=(64, 96), audio=False)
    report = restore_video(Restorer(model, device="cuda"), source, tmp_path / "out.mp4", progress=False)
    assert report.frames == 5 and (tmp_path / "out.mp4").stat().st_size > 0


@cuda
def test_gpu_training_with_amp_saves_and_resumes(tmp_path):
    """``darkir train`` on CUDA (fp16 autocast and the grad scaler): a finite run whose checkpoints load on the CPU,
    and a run stopped after 3 steps and resumed ends where the uninterrupted one does."""
    from darkir.checkpoint import read_checkpoint
    from darkir.data.synth import synthesize
    from darkir.train.run import train
    from tests.conftest import make_photos
    from tests.test_train import SET, _options

    dataset = tmp_path / "set"
    synthesize(make_photos(tmp_path / "photos"), dataset, **SET)
    straight = train(_options(dataset, tmp_path / "a"), device="cuda", progress=False)
    half = train(_options(dataset, tmp_path / "b"), device="cuda", progress=False, max_steps=3)
    resumed = train(_options(dataset, tmp_path / "b"), resume=True, device="cuda", progress=False)
    assert (straight.steps, half.steps, resumed.steps) == (8, 3, 8) and straight.best_psnr > 0
    a, _, payload = read_checkpoint(straight.last)
    b, _, _ = read_checkpoint(resumed.last)
    assert payload["scaler"]["scale"] > 0
    assert all(v.device.type == "cpu" and torch.isfinite(v).all() for v in a.values())
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4


@cuda
def test_tone_split_loss_runs_on_the_gpu_as_on_the_cpu():
    """train.tone_split's terms on CUDA tensors (and under fp16 autocast) agree with the CPU's."""
    from darkir.train.losses import charbonnier, global_tone, tone_matched

    reference = 0.05 + 0.8 * torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    out = (reference * 0.7).requires_grad_(True)
    cpu = charbonnier(tone_matched(out, reference), reference) + global_tone(out, reference)
    gpu_out = out.detach().cuda().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.float16):
        gpu = charbonnier(tone_matched(gpu_out, reference.cuda()), reference.cuda()) + global_tone(
            gpu_out, reference.cuda()
        )
    gpu.backward()
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-3) and torch.isfinite(gpu_out.grad).all()


def test_gpu_benchmark_script_writes_its_report(tiny_checkpoint, tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "gpu.json"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_restore.py"), "--weights", str(tiny_checkpoint)]
    command += ["--sizes", "64x48,96x64", "--repeats", "1", "--frames", "3", "--out", str(out), "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert {"device", "torch", "cuda", "rows", "planner", "video"} <= set(report)
    official = [row for row in report["rows"] if row["path"] == "official fp32"]
    assert len(official) == 2 and all(row["speedup"] == 1 for row in official)
    assert all(row["within_1_level"] == 1 if device == "cpu" else row["within_1_level"] > 0.999 for row in official)
    exact = [row for row in report["rows"] if row["path"] == "darkir fp32/TF32"]
    assert all(row["within_1_level"] > 0.999 for row in exact)
    default = [row for row in report["rows"] if row["path"] == "darkir default"]
    assert len(default) == 2 and all(row["within_1_level"] > 0.99 for row in default)
    video = report["video"]
    assert video["frames"] == 3 and video["frames_per_s"] > 0 and video["frames_per_s_default_first"] > 0
    planner = 2 + 1 if device == "cuda" else 0  # where the peak is measured: each size, and the fitted bytes/pixel
    videos = 2 if device == "cuda" else 1  # with --compile too on CUDA
    defaults = 2 + 1 if device == "cuda" else 2  # at each size, and in a job long enough to compile at the middle one
    assert len(report["verdict"]) == defaults + planner + videos  # darkir's defaults, the planner at each size, video
    assert "| official fp32 |" in done.stdout and "darkir default x" in done.stdout
