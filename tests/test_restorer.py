"""The Restorer: exact fp32 fast path, seamless tiling, bf16, argument checks."""

from __future__ import annotations

import itertools
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from darkir.errors import DarkIRError, DarkIRWarning
from darkir.infer import Restorer
from darkir.infer.memory import MemoryPlanner, Plan
from darkir.infer.tiling import tile_starts
from darkir.memory_sizes import parse_memory
from darkir.models.factory import build_model
from tests.conftest import TINY, randomize
from tests.reference import reference_forward


@pytest.mark.parametrize(("length", "tile", "overlap"), [(100, 100, 10), (101, 40, 8), (1000, 256, 32), (300, 64, 0)])
def test_tiles_cover_everything_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for start in starts:
        assert 0 <= start <= length - min(tile, length)
        covered[start : start + tile] = True
    assert covered.all()
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


class _Pointwise(nn.Module):
    """A model without spatial context: tiling must then reproduce the whole-image output exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x)) * x


def test_tiling_blends_without_seams():
    model = _Pointwise()
    x = torch.rand(1, 3, 150, 231)
    whole = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x)
    tiled = Restorer(model, device="cpu", precision="fp32", tile=64, overlap=16, guide_scale=None).restore_tensor(x)
    assert (whole - tiled).abs().max().item() < 1e-6


class _LocalModel(nn.Module):
    """Two 3x3 convolutions (each pixel sees 2 px around it) that pad their input with zeros to a multiple of 8, as
    DarkIR does: tiles of it restore exactly as the whole image, away from the windows' inner edges."""

    padder_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = nn.functional.pad(x, (0, -width % 8, 0, -height % 8))
        return self.convs(x)[..., :height, :width]


def test_the_windows_at_an_images_edges_take_the_whole_images_zero_padding():
    """An image of a size off the model's multiple is padded with zeros whole; its last window ended at the image's
    edge instead, unpadded, so the last rows and columns came out otherwise than whole (30 levels apart on a 1117x637
    photo in 704 px tiles; the model's bias fills the zero rows that a window cut at the edge lacks)."""
    torch.manual_seed(0)
    model = _LocalModel()
    x = torch.rand(1, 3, 61, 75)
    whole = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x)
    tiled = Restorer(model, device="cpu", precision="fp32", tile=32, overlap=8, guide_scale=None)
    result = tiled.restore_tensor(x)
    assert tiled.last_plan.tile == 32 and tiled.tiles_for(61, 75) == 3 * 3
    # the last 4 rows and columns, where no window's inner edge (restored without what lies beyond it) blends in
    for edge in (
        (..., slice(-4, None), slice(0, 20)),
        (..., slice(0, 20), slice(-4, None)),
        (..., slice(-4, None), slice(-4, None)),
    ):
        torch.testing.assert_close(result[edge], whole[edge], rtol=0, atol=1e-6)


def test_guided_windows_cut_short_by_an_images_edge_keep_its_last_rows():
    """The guide averages a window's correction in 64 px blocks from its start: a window cut short by the bottom of a
    400x300 photo (zero-padded to 304 rows) ended in a 4-row block of its edge alone, which brightened its last 60
    rows (10 levels off the whole image at the bottom, against 1.5 elsewhere)."""
    import cv2

    from darkir.demo import example_images

    photo = cv2.cvtColor(cv2.imread(str(example_images()[0])), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (400, 300), interpolation=cv2.INTER_AREA)
    whole = Restorer.from_pretrained(device="cpu", precision="fp32", tile=0)(photo).astype(int)
    tiled = Restorer.from_pretrained(device="cpu", precision="fp32", tile=200)(photo).astype(int)
    rows = np.abs(tiled - whole).mean(axis=(1, 2))
    assert rows[-60:].mean() < 2 * rows[:240].mean() and rows[-60:].max() < 4


def test_a_tile_off_the_models_multiple_restores_in_windows_of_the_multiple_below():
    model = randomize(build_model(TINY))
    x = torch.rand(1, 3, 100, 150)
    restorers = {tile: Restorer(model, device="cpu", precision="fp32", tile=tile) for tile in (129, 128)}
    restored = {tile: restorer.restore_tensor(x) for tile, restorer in restorers.items()}
    assert torch.equal(restored[129], restored[128])
    assert restorers[129].last_plan.reason == "tiled in 128 px windows (tile=129)"


def test_an_overlap_too_large_for_the_planned_tiles_is_named_not_dropped_silently(monkeypatch):
    """--overlap 200 with the planner's 288 px tiles was replaced by the default overlap without a word."""
    restorer = Restorer(_Pointwise(), device="cpu", precision="fp32", overlap=40)
    monkeypatch.setattr(restorer, "plan_for", lambda *args, **kwargs: Plan(tile=64, lean=False, estimate=0, reason=""))
    with pytest.warns(DarkIRWarning) as caught:
        restorer.restore_tensor(torch.rand(1, 3, 150, 231))
    said = "overlap 40 does not fit the 64 px tiles chosen for this image (it must be under 32); it is restored with"
    assert f"{said} the default overlap of 16" in [str(w.message) for w in caught]


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"guide_scale": -1}, "guide_scale must be a whole number of pixels (1 or more) or None, got -1"),
        ({"guide_scale": 1.5}, "guide_scale must be a whole number of pixels (1 or more) or None, got 1.5"),
        ({"half": True}, "the model's weights are float16; a Restorer runs float32 weights"),
    ],
)
def test_a_model_or_guide_scale_it_cannot_run_is_refused_when_made(settings, said):
    """A float16 model failed on the first image ("Input type (float) and bias type (c10::Half) should be the same"),
    a guide_scale of -1 on the first tiled one ("kernel size should be greater than zero")."""
    model = _Pointwise().half() if settings.pop("half", False) else _Pointwise()
    with pytest.raises(DarkIRError, match=re.escape(said)):
        Restorer(model, device="cpu", **settings)


def test_small_tiles_warn_that_they_change_the_tone():
    model, x = _Pointwise(), torch.rand(1, 3, 150, 231)
    with pytest.warns(DarkIRWarning, match=r"restoring in 64 px tiles: tiles under 384 px change the result's tone"):
        Restorer(model, device="cpu", precision="fp32", tile=64).restore_tensor(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Restorer(model, device="cpu", precision="fp32", tile=384).restore_tensor(torch.rand(1, 3, 400, 500))
        Restorer(model, device="cpu", precision="fp32", tile=256).restore_tensor(x)  # whole: within one tile


def test_the_small_tile_warning_comes_once_per_restorer():
    """A batch through the Python API (or a Ray worker) warned once per image: a TIFF read between images resets
    Python's own once-per-place record."""
    restorer, x = Restorer(_Pointwise(), device="cpu", precision="fp32", tile=64), torch.rand(1, 3, 150, 231)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            restorer.restore_tensor(x)
    assert sum("px tiles" in str(warning.message) for warning in caught) == 1


class _GlobalTone(nn.Module):
    """Brightens by the image's own mean, like DarkIR's global branch: tiles alone get different tones."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (0.4 / x.mean(dim=(1, 2, 3), keepdim=True))


def test_whole_image_guide_restores_the_global_tone():
    y, x = torch.meshgrid(torch.linspace(0, 1, 200), torch.linspace(0, 1, 320), indexing="ij")
    image = (0.05 + 0.2 * x * y)[None, None].repeat(1, 3, 1, 1)
    whole = Restorer(_GlobalTone(), device="cpu", precision="fp32", tile=0).restore_tensor(image)
    plain = Restorer(
        _GlobalTone(), device="cpu", precision="fp32", tile=96, overlap=24, guide_scale=None
    ).restore_tensor(image)
    guided = Restorer(_GlobalTone(), device="cpu", precision="fp32", tile=96, overlap=24).restore_tensor(image)
    error = lambda out: (out - whole).abs().mean().item()  # noqa: E731
    assert error(guided) < error(plain) / 10


def test_fp32_fast_path_matches_reference():
    model = randomize(build_model("darkir-csf-w32", **TINY), seed=3)
    x = torch.rand(2, 3, 45, 70)
    out = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x)
    with torch.no_grad():
        reference = reference_forward(model.state_dict(), model.config, x)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert (out - reference).abs().max().item() <= 1e-5


def test_tiled_darkir_stays_close_to_whole_image():
    model = randomize(build_model("darkir-w32", **TINY), seed=4)
    x = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(0)) * 0.3
    whole = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x).clamp(0, 1)
    tiled = Restorer(model, device="cpu", precision="fp32", tile=96, overlap=32).restore_tensor(x).clamp(0, 1)
    assert tiled.shape == whole.shape
    assert 0 < (whole - tiled).abs().max().item() < 0.5  # the FFT branch sees each tile, not the image


@pytest.mark.filterwarnings("ignore:restoring in 1")
def test_a_tile_off_the_models_multiple_is_as_close_to_the_whole_image_as_one_on_it():
    """The model pads its input with zeros to a multiple of 8: a 129 px tile (and a preview of a size off the
    multiple) got 7 px of black, and the result came out 12% brighter than whole where 128 px tiles gave 5%."""
    from PIL import Image as PILImage

    from tests.conftest import REPO

    photo = REPO / "src" / "darkir" / "assets" / "examples" / "lolv2-real-00733.png"
    src = np.asarray(PILImage.open(photo).convert("RGB").resize((300, 200)))
    whole = Restorer.from_pretrained(precision="fp32", tile=0)(src).astype(int)
    error = {}
    for tile in (128, 129, 131):
        out = Restorer.from_pretrained(precision="fp32", tile=tile, overlap=32)(src).astype(int)
        error[tile] = (np.abs(out - whole).mean(), abs(out.mean() / whole.mean() - 1))
    assert error[129][0] < 1.2 * error[128][0] and error[131][0] < 1.2 * error[128][0], error  # were 2.4x and 1.7x
    assert error[129][1] < 0.04 and error[131][1] < 0.04, error  # were 12% and 7% brighter


def test_bf16_path_is_close_to_fp32():
    model = randomize(build_model("darkir-w32", **TINY), seed=5)
    x = torch.rand(1, 3, 64, 64)
    fp32 = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x)
    bf16 = Restorer(model, device="cpu", tile=0, precision="bf16").restore_tensor(x)
    mse = torch.mean((fp32.clamp(0, 1) - bf16.clamp(0, 1)) ** 2).item()
    assert 10 * np.log10(1 / mse) > 35


def test_restore_array_clamps_and_keeps_shape():
    model = randomize(build_model("darkir-w32", **TINY), seed=6)
    rgb = np.random.default_rng(0).random((33, 47, 3), dtype=np.float32)
    out = Restorer(model, device="cpu", precision="fp32").restore_array(rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 64, "overlap": 32}, "overlap 32 must be"),
        ({"tile": 16, "overlap": 2}, "too small"),
        ({"precision": "fp16", "device": "cpu"}, "fp16 is for GPUs"),
        ({"precision": "int8"}, "unknown precision"),
    ],
)
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(DarkIRError, match=message):
        Restorer(_Pointwise(), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_request_without_gpu():
    with pytest.raises(DarkIRError, match="no CUDA device"):
        Restorer(_Pointwise(), device="cuda")


def test_memory_returned_to_os_nests(monkeypatch):
    """The tile preview opens such a block inside the demo's own: the inner exit must not end the outer block."""
    from darkir import runtime

    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

    monkeypatch.setattr(runtime, "_libc", lambda: FakeLibc())
    monkeypatch.setattr(runtime, "keep_freed_memory_for_reuse", lambda: True)
    with runtime.memory_returned_to_os():
        with runtime.memory_returned_to_os():
            pass
        assert calls == [(runtime._M_MMAP_MAX, runtime._DEFAULT_MMAP_MAX)]  # still mapping after the inner exit
    assert calls[-1] == (runtime._M_MMAP_MAX, 0) and len(calls) == 2


@pytest.mark.parametrize(
    ("text", "size"), [("3GB", 3e9), ("2.5G", 2.5e9), ("800MB", 8e8), ("1GiB", 2**30), ("4096", 4096), (1e9, 1e9)]
)
def test_memory_sizes_are_read(text, size):
    assert parse_memory(text) == int(size)


@pytest.mark.parametrize("text", ["lots", "3 PB", "-1GB", "0", "GB"])  # (TB is read since 2026-12-05)
def test_bad_memory_sizes_are_named(text):
    with pytest.raises(DarkIRError, match="memory size"):
        parse_memory(text)


def _planner(budget: float) -> MemoryPlanner:
    """A planner with a fixed baseline (not this test process's memory) and ``budget``."""
    planner = MemoryPlanner(torch.device("cpu"), torch.float32, 32, "1000GB")
    planner.base, planner.budget = 300_000_000, int(budget)
    return planner


def test_auto_plan_prefers_the_whole_image_then_lean_then_the_largest_fitting_tiles():
    height, width, pixels = 640, 1120, 640 * 1120
    probe = _planner(1e12)
    whole, lean = probe.estimate(pixels, pixels), probe.estimate(pixels, pixels, "lean")
    assert lean < whole
    assert _planner(whole).plan(height, width) == Plan(0, False, whole, _planner(whole).plan(height, width).reason)
    plan = _planner(whole - 1).plan(height, width)
    assert plan.tile == 0 and plan.lean and plan.estimate <= whole - 1
    budget = lean - 1
    plan = _planner(budget).plan(height, width)
    assert plan.tile and plan.tile % 32 == 0 and not plan.lean
    assert probe.estimate(pixels, plan.tile**2) <= budget < probe.estimate(pixels, (plan.tile + 32) ** 2)
    assert "tiled in" in plan.reason and "over" in plan.reason
    with pytest.raises(DarkIRError, match="raise max_memory"):
        _planner(probe.estimate(pixels, 100**2)).plan(height, width)


def test_an_image_that_fits_no_plan_names_the_python_setting():
    """The message named the command's flag, also where a Restorer made in Python raised it (the command line
    names its flag: darkir.cli.in_flags)."""
    with pytest.raises(DarkIRError, match=r"raise max_memory$"):
        _planner(1).plan(4000, 3000)


def test_a_batch_that_does_not_fit_says_to_lower_the_batch():
    budget = _planner(1e12).estimate(2 * 640 * 1120, 100**2)
    _planner(budget).plan(640, 1120)  # one frame fits in tiles
    with pytest.raises(DarkIRError, match=r"a batch of 8 1120x640 frames does not fit .*lower --batch"):
        _planner(budget).plan(640, 1120, batch=8)


def test_auto_tiling_restores_whole_images_exactly_and_tiles_within_a_small_budget():
    model = randomize(build_model(TINY))
    x = torch.rand(1, 3, 160, 288)
    whole = Restorer(model, device="cpu", precision="fp32", tile=0).restore_tensor(x)
    auto = Restorer(model, device="cpu", precision="fp32")
    assert torch.equal(auto.restore_tensor(x), whole)
    assert auto.last_plan.tile == 0 and "whole image" in auto.last_plan.reason
    small = Restorer(model, device="cpu", precision="fp32", max_memory="100GB")
    small.planner.budget = small.planner.estimate(160 * 288, 128 * 128)
    tiled = small.restore_tensor(x)
    assert small.last_plan.tile == 128 and small.tiles_for(160, 288) > 1
    assert (tiled - whole).abs().mean().item() < 0.05


def test_the_planner_counts_the_rows_the_model_pads_a_thin_image_to():
    """The model pads each side to a multiple of 8, so a 1 x 100000 image computes as 8 x 100000; planned as 1 x
    100000, it was restored whole, at 2 GB under max_memory 700MB."""
    model = randomize(build_model(TINY))
    restorer = Restorer(model, device="cpu", precision="fp32", max_memory="100GB")
    assert restorer.planner.multiple == model.padder_size == 8
    restorer.planner.budget = restorer.planner.estimate(16384, 16384)  # what 1 x 16384 would need, unpadded
    assert not restorer.plan_for(1, 16384).whole(1, 16384)
    assert restorer.plan_for(8, 2048).whole(8, 2048)  # as many pixels, none padded


def test_an_image_of_another_shape_than_the_last_is_planned_for_the_holes_the_heap_kept():
    """Images of four sizes, each planned within --max-memory 1.2GB, peaked at 1.5 GB: after a full-speed pass of
    another shape, the heap's holes are reused badly. Such an image is planned with that allowance (here it runs
    lean), while one of the last shape, or the first, is planned as before."""
    model = randomize(build_model(TINY))
    restorer = Restorer(model, device="cpu", precision="fp32", max_memory="100GB")
    planner = restorer.planner
    fast, lean = planner.estimate(512 * 512, 512 * 512), planner.estimate(512 * 512, 512 * 512, "lean")
    planner.budget = (fast + planner.estimate(512 * 512, 512 * 512, "heap after other shapes")) // 2
    assert restorer.plan_for(512, 512) == Plan(0, False, fast, restorer.plan_for(512, 512).reason)
    restorer.restore_tensor(torch.rand(1, 3, 32, 48))
    assert restorer.plan_for(512, 512) == Plan(0, True, lean, restorer.plan_for(512, 512).reason)
    assert not restorer.plan_for(32, 48).lean and not restorer.plan_for(30, 44).lean  # the last shape (as padded)
    restorer.restore_tensor(torch.rand(1, 3, 512, 512))
    assert restorer.last_plan.lean and not restorer.plan_for(512, 512).lean  # the next of its shape: full speed


def test_copies_with_another_exposure_share_the_record_of_the_passes_run():
    """The heap is the process's: the demo restores each request through a fresh ``with_exposure`` copy, which
    started without the record of the passes before it, so an image of another shape was planned for a fresh heap."""
    model = randomize(build_model(TINY))
    restorer = Restorer(model, device="cpu", precision="fp32", max_memory="100GB")
    planner = restorer.planner
    planner.budget = (
        planner.estimate(512 * 512, 512 * 512) + planner.estimate(512 * 512, 512 * 512, "heap after other shapes")
    ) // 2
    assert not restorer.plan_for(512, 512).lean
    restorer.with_exposure(0.5).restore_tensor(torch.rand(1, 3, 32, 48))
    assert restorer.plan_for(512, 512).lean and restorer.with_exposure(1.0).plan_for(512, 512).lean


def test_a_tiled_pass_is_recorded_by_the_shape_of_its_windows():
    """A thin image tiled in 128 px windows ran 40x128 windows, recorded as 128x128 passes that never ran."""
    restorer = Restorer(randomize(build_model(TINY)), device="cpu", precision="fp32", max_memory="100GB")
    restorer.planner.budget = restorer.planner.estimate(40 * 2000, 128 * 128)
    restorer.restore_tensor(torch.rand(1, 3, 40, 2000))
    assert restorer.last_plan.tile == 128 and restorer.passes.last == (1, 40, 128)


def test_an_overlap_is_checked_against_the_windows_a_tile_is_rounded_to():
    """``tile=39, overlap=18`` passed the check (18 < 39 // 2) and ran 32 px windows overlapping by 18, more than half
    of them: 20 windows where 9 cover the image, and the warnings named 39 px tiles."""
    restorer = Restorer(randomize(build_model(TINY)), device="cpu", precision="fp32", tile=39, overlap=18)
    runs = []
    run = restorer._run
    restorer._run = lambda x: runs.append(x.shape) or run(x)
    with pytest.warns(DarkIRWarning, match="overlap 18 does not fit the 32 px windows of tile 39 "):
        restorer.restore_tensor(torch.rand(1, 3, 61, 75))
    assert restorer.tiles_for(61, 75) == 9 and len(runs) == 9 + 1  # the windows and the whole image's preview


def test_a_whole_image_of_a_tiles_shape_after_a_tiled_image_checks_the_heap(monkeypatch):
    """A whole 40x128 image after a 40x2000 one tiled in 128 px windows counted as a repeat of the last pass and left
    the heap as it was, though the tiled image's full-size buffers lay freed in it."""
    limits = []
    monkeypatch.setattr("darkir.infer.restorer.release_free_memory_over", limits.append)
    restorer = Restorer(randomize(build_model(TINY)), device="cpu", precision="fp32", tile=128)
    restorer.restore_tensor(torch.rand(1, 3, 40, 2000))
    restorer.restore_tensor(torch.rand(1, 3, 40, 128))
    assert restorer.last_plan.tile == 0 and limits == [0]


def test_a_batch_over_the_memory_budget_is_restored_as_its_images_are_alone():
    """Under a budget, a batch of frames (``darkir video --batch 3``) was restored in smaller tiles than one frame
    alone, so the batch size changed the video's tone; it is now restored in smaller batches instead, with the
    batch's frames counted as held in memory."""
    model = randomize(build_model(TINY))
    x = torch.rand(3, 3, 320, 448)
    restorer = Restorer(model, device="cpu", precision="fp32", max_memory="100GB")
    restorer.planner.budget = restorer.planner.estimate(3 * 320 * 448, 320 * 448)  # three held, one restored whole
    assert restorer.plan_for(320, 448, 3).tile > 0 and restorer.plan_for(320, 448, 1, held=3).tile == 0
    alone = torch.cat([restorer.restore_tensor(frame[None]) for frame in x])
    batch = restorer.restore_tensor(x)
    assert restorer.last_plan.tile == 0
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 256, "max_memory": "2GB"}, "applies to tile='auto'"),
        ({"tile": "big"}, "'auto' or a number"),
        ({"max_memory": "lots"}, "memory size"),
        ({"overlap": -1}, "must be >= 0"),
    ],
)
def test_bad_auto_settings_are_explained(kwargs, message):
    with pytest.raises(DarkIRError, match=message):
        Restorer(_Pointwise(), device="cpu", precision="fp32", **kwargs)


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch):
    from darkir import runtime

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == torch.float32
    assert Restorer(_Pointwise(), device="cpu").dtype == torch.float32


def test_bf16_on_a_cpu_without_native_bf16_is_warned_as_slow(monkeypatch):
    """bf16 asked for on an AVX2-only CPU ran 12x slower than fp32 at 256x256, without a word."""
    from darkir import runtime
    from darkir.errors import DarkIRWarning

    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: False)
    with pytest.warns(DarkIRWarning, match=r"bf16 precision on this CPU \(no AVX-512 BF16 nor AMX\) is emulated"):
        assert runtime.resolve_precision("bf16", cpu) == torch.bfloat16
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.resolve_precision("bf16", cpu) == torch.bfloat16


@pytest.mark.parametrize(("capability", "expected"), [((9, 0), torch.float16), ((7, 0), torch.float16),
                                                       ((6, 1), torch.float32)])  # fmt: skip
def test_auto_precision_on_cuda_is_fp16_where_the_gpu_has_tensor_cores(monkeypatch, capability, expected):
    from darkir import runtime

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(runtime, "native_bf16_cpu", lambda: True)  # a CPU's bf16 has no say on a GPU
    assert runtime.resolve_precision("auto", torch.device("cuda")) == expected
    assert runtime.resolve_precision("fp32", torch.device("cuda")) == torch.float32


def test_default_budget_adds_to_what_a_large_process_already_holds(monkeypatch):
    """A notebook that already holds more than the cap still gets a usable default budget, not an error."""
    from darkir.infer import memory

    monkeypatch.setattr(memory, "resident_memory", lambda: 5_000_000_000)
    monkeypatch.setattr(memory, "available_memory", lambda device: 10_000_000_000)
    planner = MemoryPlanner(torch.device("cpu"), torch.float32, 32)
    assert planner.budget == 5_000_000_000 + memory.DEFAULT_CAP
    assert planner.plan(640, 1120).tile == 0


@pytest.mark.parametrize(("dtype", "exposure"), [(np.uint8, 0.0), (np.uint16, 0.0), (np.uint8, 1.0)])
def test_restore_levels_is_restore_tensor_of_the_levels_rounded(dtype, exposure):
    model = randomize(build_model(TINY))
    peak = np.iinfo(dtype).max
    rgb = (np.random.default_rng(0).random((2, 40, 56, 3)) * 0.4 * peak).astype(dtype)
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0, exposure=exposure)
    levels = restorer.restore_levels(rgb)
    assert levels.dtype == dtype and levels.shape == rgb.shape
    x = torch.from_numpy(rgb.astype(np.float32) / peak).permute(0, 3, 1, 2)
    expected = restorer.restore_tensor(x).clamp(0, 1).permute(0, 2, 3, 1).numpy() * peak
    assert np.array_equal(levels, np.rint(expected).astype(dtype))
    assert levels.std() > 0  # not a constant image


@pytest.mark.parametrize(("tile", "advice"), [("auto", "raise max_memory"), (64, "set a larger tile, or tile auto")])
def test_the_small_tile_warning_advises_what_the_tiling_setting_allows(tile, advice):
    model = randomize(build_model(TINY))
    restorer = Restorer(model, device="cpu", precision="fp32", tile=tile)
    if tile == "auto":  # a budget that leaves room for small tiles only
        restorer.planner.plan = lambda height, width, batch=1, held=None, *_: Plan(
            64, False, 0, "tiled in 64 px windows"
        )
    with pytest.warns(DarkIRWarning, match=rf"change the result's tone .*; {advice}$"):
        restorer.restore_tensor(torch.rand(1, 3, 100, 120))


def test_an_image_that_fits_no_plan_is_told_the_least_it_needs():
    planner = MemoryPlanner(torch.device("cpu"), torch.float32, 32, max_memory="10GB")
    pixels = 128 * 128
    lean = planner.estimate(pixels, pixels, "lean")
    assert lean < planner.estimate(pixels, pixels) and lean < planner.estimate(pixels, 128 * 128)
    planner.budget = lean - 1
    with pytest.raises(DarkIRError, match=r"a 128x128 image does not fit .*: it needs at least ~.* \(whole, freed"):
        planner.plan(128, 128)


def test_the_least_memory_an_image_needs_is_shown_rounded_up():
    """ "needs at least ~404 MB; raise --max-memory", then --max-memory 404MB was refused again: the figure was
    rounded down."""
    planner = MemoryPlanner(torch.device("cpu"), torch.float32, 32, max_memory="10GB")
    lean = planner.estimate(128 * 128, 128 * 128, "lean")
    planner.budget = lean - 1
    with pytest.raises(DarkIRError) as refused:
        planner.plan(128, 128)
    shown = re.search(r"needs at least ~(.+?) \(", str(refused.value))[1]
    planner.budget = parse_memory(shown.replace(" ", ""))
    assert planner.plan(128, 128).lean


@pytest.mark.parametrize("version", [1, 2])
def test_a_containers_memory_limit_bounds_the_memory_available(tmp_path, version):
    """In a container (a control group with a memory limit), /proc/meminfo shows the machine's memory: the default
    budget then took memory the container does not have, and the kernel killed the whole batch. The limit may be set
    on a group above the process's (a SLURM job's), and the page cache the kernel can drop is room too."""
    from darkir.hostmemory import cgroup_room

    group = "/job_1/step_0/task_0"
    if version == 2:
        membership, top = f"0::{group}\n", tmp_path
        files, cache = ("memory.max", "memory.current"), "inactive_file"
    else:
        membership, top = f"9:name=systemd:/\n4:memory:{group}\n3:cpuset:/\nnot a cgroup line\n", tmp_path / "memory"
        files, cache = ("memory.limit_in_bytes", "memory.usage_in_bytes"), "total_inactive_file"
    (tmp_path / "self").write_text(membership)
    leaf, job = top / group.strip("/"), top / "job_1"
    leaf.mkdir(parents=True)
    (job / files[0]).write_text("3221225472\n")  # 3 GiB, on the job: the process's own group sets none
    (job / files[1]).write_text("2147483648\n")  # 2 GiB in use
    (job / "memory.stat").write_text(f"anon 1\n{cache} 536870912\nactive_file 5\n")  # half a GiB of it cache
    assert cgroup_room(tmp_path, tmp_path / "self") == 3 * 1024**3 // 2
    (leaf / files[0]).write_text("2147483648\n")  # a tighter limit on the process's own group
    (leaf / files[1]).write_text("1610612736\n")
    assert cgroup_room(tmp_path, tmp_path / "self") == 512 * 1024**2
    for folder in (job, leaf):
        (folder / files[0]).write_text("max\n" if version == 2 else "9223372036854771712\n")  # no limits
    assert cgroup_room(tmp_path, tmp_path / "self") is None
    assert cgroup_room(tmp_path, tmp_path / "missing") is None


def test_an_address_space_limit_bounds_the_memory_available(monkeypatch):
    """Under ``ulimit -v 2500000`` the default budget was 2.72 GB, over the limit: a 1600x1200 image planned whole
    failed to allocate where it would have fitted in tiles (found by an outside test). The room is the limit less
    what the process has mapped."""
    import resource

    import darkir.hostmemory
    from darkir.hostmemory import address_space_room, cpu_available_memory

    assert address_space_room() is None or resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = mapped + 300 * 1024**2
    monkeypatch.setattr(darkir.hostmemory.resource, "getrlimit", lambda kind: (limit, resource.RLIM_INFINITY))
    room = address_space_room()
    assert room is not None and abs(room - 300 * 1024**2) < 100 * 1024**2
    assert cpu_available_memory() <= limit - mapped + 100 * 1024**2
    monkeypatch.setattr(darkir.hostmemory.resource, "getrlimit", lambda kind: (mapped // 2, resource.RLIM_INFINITY))
    assert address_space_room() == 0  # (already over it: no room, never a negative budget)


def test_an_fp32_restorer_computes_in_fp32_inside_a_callers_autocast(tiny_checkpoint):
    """Inside a caller's ``torch.autocast`` block an fp32 Restorer computed in bf16 (its output was the bf16
    Restorer's); its precision is its own."""
    from darkir.models.factory import load_model

    model = load_model(tiny_checkpoint)
    fp32 = Restorer(model, device="cpu", precision="fp32", tile=0)
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    alone = fp32.restore_tensor(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fp32.restore_tensor(x)
    assert torch.equal(inside, alone)
    assert not torch.equal(Restorer(model, device="cpu", precision="bf16", tile=0).restore_tensor(x), alone)


def test_free_heap_over_an_images_estimate_goes_back_to_the_os(monkeypatch):
    """Images of many sizes left holes the kept heap never reused: 600 small images grew the process by 870 MB."""
    import darkir.runtime

    trims, free = [], [0]

    def mallinfo2():
        return SimpleNamespace(fordblks=free[0])

    fake = SimpleNamespace(mallinfo2=mallinfo2, malloc_trim=trims.append)
    monkeypatch.setattr(darkir.runtime, "_libc", lambda: fake)
    free[0] = 500
    darkir.runtime.release_free_memory_over(1000)
    assert trims == []
    free[0] = 1500
    darkir.runtime.release_free_memory_over(1000)
    assert trims == [0]


def test_each_whole_cpu_image_checks_the_free_heap_against_its_estimate(monkeypatch):
    limits = []
    monkeypatch.setattr("darkir.infer.restorer.release_free_memory_over", limits.append)
    restorer = Restorer(randomize(build_model("darkir-w32", **TINY), seed=1), device="cpu", precision="fp32", tile=0)
    for size in (24, 40):
        restorer.restore_tensor(torch.rand(1, 3, size, size))
        assert limits[-1] == restorer.last_plan.estimate
    assert len(limits) == 2


@pytest.mark.parametrize("tile", [0, "auto"])
def test_a_whole_cpu_pass_of_the_last_shape_reuses_the_heap_as_it_is(monkeypatch, tile):
    """Each whole pass read glibc's heap statistics (which walk every free chunk: ~3 ms after many images), and with
    fixed tiles gave the heap back to the OS before every image, so a folder of one size re-took it each time."""
    limits = []
    monkeypatch.setattr("darkir.infer.restorer.release_free_memory_over", limits.append)
    restorer = Restorer(randomize(build_model("darkir-w32", **TINY), seed=1), device="cpu", precision="fp32", tile=tile)
    for size in (24, 24, 22, 40, 40, 24):  # 22 pads to 24, the model's multiple of 8
        restorer.restore_tensor(torch.rand(1, 3, size, size))
    budget_room = restorer.planner.budget - restorer.last_plan.estimate if restorer.planner else 0
    assert len(limits) == 3 and limits[-1] == budget_room
