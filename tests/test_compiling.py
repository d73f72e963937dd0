"""compile="auto": a Restorer compiles for the shapes a job says it will restore often enough, on a GPU only; jobs
(folders, videos) say so; a failing compiler costs speed, not the job. torch.compile itself is replaced by a
stand-in that counts calls (a real compile takes a minute; the GPU benchmark runs one)."""

from __future__ import annotations

import argparse
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import darkir.infer.restorer as restorer_module
from darkir import create_model
from darkir.errors import DarkIRError, DarkIRWarning
from darkir.infer import Restorer
from darkir.infer.compiling import (
    COMPILE_SECONDS,
    MAX_COMPILED_SHAPES,
    SAVED_SECONDS_PER_MEGAPIXEL,
    can_compile,
    images_to_earn,
)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return create_model(tiny_checkpoint)


class FakeCompiled:
    """What the stand-in torch.compile returns: the model itself, counting the shapes it ran on."""

    def __init__(self, model: torch.nn.Module, fail: bool = False) -> None:
        self.model, self.fail, self.shapes = model, fail, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        if self.fail:
            raise RuntimeError("no C compiler found\nmore detail")
        return self.model(x)


class Compiles(list):
    """The stand-ins torch.compile made, each with its ``dynamic`` setting; :meth:`fail` makes later ones fail."""

    failing = False

    def fail(self) -> None:
        self.failing = True

    def compile(self, model: torch.nn.Module, dynamic: bool | None = None) -> FakeCompiled:
        self.append((FakeCompiled(model, fail=self.failing), dynamic))
        return self[-1][0]


@pytest.fixture
def compiles(monkeypatch):
    """Make the CPU a device that compiles, with the stand-in torch.compile."""
    made = Compiles()
    monkeypatch.setattr(restorer_module, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", made.compile)
    return made


def test_images_to_earn_follows_the_measured_figures():
    per_image = 1920 * 1080 / 1e6 * SAVED_SECONDS_PER_MEGAPIXEL
    assert images_to_earn(1080, 1920) == math.ceil(COMPILE_SECONDS / per_image)
    assert images_to_earn(2160, 3840) < images_to_earn(1080, 1920) < images_to_earn(480, 640)
    assert images_to_earn(100_000, 100_000) == 1


def test_the_cpu_never_compiles_by_itself(model):
    assert not can_compile(torch.device("cpu"))
    restorer = Restorer(model, device="cpu")
    assert restorer.compile == "auto" and not restorer.compiles_on_demand
    assert restorer.expect({(1, 48, 64): 10**9}) == [] and restorer.compiled_shapes == set()


@pytest.mark.parametrize("setting", ["yes", 1, None, "on"])
def test_a_compile_setting_other_than_true_false_auto_is_refused(model, setting):
    with pytest.raises(DarkIRError, match="compile must be True, False or 'auto'"):
        Restorer(model, device="cpu", compile=setting)


def test_auto_compiles_only_the_shapes_a_job_restores_often_enough(model, compiles):
    restorer = Restorer(model, device="cpu", precision="fp32", tile=64)
    plenty = images_to_earn(48, 64)
    pairs = -(-images_to_earn(32, 48) // 2)  # batches of two
    counts = {(1, 48, 64): plenty, (1, 40, 56): images_to_earn(40, 56) - 1, (1, 96, 128): 10**9, (2, 32, 48): pairs}
    assert restorer.expect(counts) == [(1, 48, 64), (2, 32, 48)]  # 96x128 is tiled at tile 64
    assert restorer.expect(counts) == []  # chosen already
    eager = Restorer(model, device="cpu", precision="fp32", tile=64, compile=False)
    for shape in ((1, 3, 48, 64), (1, 3, 40, 56), (2, 3, 32, 48), (1, 3, 32, 48)):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        assert torch.equal(restorer.restore_tensor(x), eager.restore_tensor(x))
    (compiled, dynamic), *others = compiles
    assert not others and dynamic is False  # one compiled model, static shapes
    assert compiled.shapes == [(1, 3, 48, 64), (2, 3, 32, 48)]


def test_a_failing_compiler_under_auto_warns_and_restores_uncompiled(model, compiles):
    compiles.fail()
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0)
    restorer.expect({(1, 48, 64): 10**9})
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with pytest.warns(DarkIRWarning, match=r"torch.compile failed \(RuntimeError: no C compiler found\); restoring"):
        out = restorer.restore_tensor(x)
    expected = Restorer(model, device="cpu", precision="fp32", tile=0, compile=False).restore_tensor(x)
    assert torch.equal(out, expected)
    assert restorer.compile is False and restorer.compiled_shapes == set()
    assert len(compiles[0][0].shapes) == 1  # not tried again
    assert torch.equal(restorer.restore_tensor(x), expected)
    assert len(compiles[0][0].shapes) == 1


def test_compile_true_compiles_every_shape_and_a_failure_is_raised(model, compiles):
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0, compile=True)
    assert restorer.expect({(1, 48, 64): 10**9}) == []  # nothing to choose: every shape compiles
    restorer.restore_tensor(torch.rand(1, 3, 48, 64))
    restorer.restore_tensor(torch.rand(1, 3, 40, 56))
    (compiled, dynamic), *_ = compiles
    assert compiled.shapes == [(1, 3, 48, 64), (1, 3, 40, 56)] and dynamic is None
    compiles.fail()
    with pytest.raises(RuntimeError, match="no C compiler"):
        Restorer(model, device="cpu", precision="fp32", tile=0, compile=True).restore_tensor(torch.rand(1, 3, 48, 64))


def _exif_turned(path, size):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed height x width
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path, exif=exif)


def test_a_folder_says_its_image_sizes_and_the_compile_is_announced(model, compiles, tmp_path, monkeypatch, capsys):
    from darkir.infer.files import restore_files
    from darkir.infer.jobs import plan_jobs

    monkeypatch.setattr(restorer_module, "images_to_earn", lambda height, width: 3)
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(2):
        Image.fromarray(np.full((40, 56, 3), 20 * index, np.uint8)).save(folder / f"a{index}.png")
    _exif_turned(folder / "turned.jpg", (56, 40))  # stored 40 wide, 56 high; restored as 56 x 40
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / "other.png")
    (tmp_path / "out").mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "out" / "kept.png")
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / "kept.png")  # output exists: not restored
    (folder / "broken.png").write_bytes(b"not an image")
    seen = []
    expect = Restorer.expect
    monkeypatch.setattr(Restorer, "expect", lambda self, counts: seen.append(dict(counts)) or expect(self, counts))
    jobs, _ = plan_jobs([str(folder)], tmp_path / "out")
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0)
    report = restore_files(restorer, jobs, progress=True)
    assert seen == [{(1, 40, 56): 3, (1, 32, 48): 1}]
    assert restorer.compiled_shapes == {(1, 40, 56)}
    assert "compiling the model for 56x40 (torch.compile" in capsys.readouterr().err
    assert len(report.done) == 4 and len(report.skipped) == 1 and len(report.failed) == 1
    assert sorted(compiles[0][0].shapes) == [(1, 3, 40, 56)] * 3


def test_an_output_name_too_long_fails_that_image_alone_where_the_model_compiles(model, compiles, tmp_path, capsys):
    """Counting a batch's sizes (on a GPU, where the model compiles) asked each output whether it exists, and a name
    too long for the file system stopped the batch there, before any image."""
    from darkir.infer.files import restore_files
    from darkir.infer.jobs import plan_jobs

    folder = tmp_path / "in"
    folder.mkdir()
    for name in (f"{'a' * 251}.png", "b.png"):
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / name)
    (tmp_path / "out").mkdir()
    jobs, _ = plan_jobs([str(folder)], tmp_path / "out", ".jpeg")
    report = restore_files(Restorer(model, device="cpu", precision="fp32", tile=0), jobs, progress=False)
    assert [path.name for path in report.done] == ["b.jpeg"] and len(report.failed) == 1


def test_a_folder_on_a_device_that_does_not_compile_reads_no_headers(model, tmp_path, monkeypatch):
    from darkir.infer import files
    from darkir.infer.jobs import plan_jobs

    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(files, "read_header", lambda path: pytest.fail("a header was read"))
    jobs, _ = plan_jobs([str(tmp_path / "a.png")], tmp_path / "out")
    assert len(files.restore_files(Restorer(model, device="cpu"), jobs, progress=False).done) == 1


def test_a_video_says_its_frame_count(model, compiles, tmp_path, monkeypatch, capsys):
    pytest.importorskip("av")
    from darkir.infer.video import restore_video
    from tests.test_video import make_video

    monkeypatch.setattr(restorer_module, "images_to_earn", lambda height, width: 6)
    source = make_video(tmp_path / "clip.mp4", frames=7, size=(48, 64), audio=False)
    restorer = Restorer(model, device="cpu", precision="fp32")
    report = restore_video(restorer, source, tmp_path / "out.mp4", progress=True, batch=2)
    assert report.frames == 7
    assert restorer.compiled_shapes == {(2, 48, 64)}  # 3 batches of 2 frames: 6 frames, enough
    assert "compiling the model for 64x48 (2 at once)" in capsys.readouterr().err
    assert compiles[0][0].shapes == [(2, 3, 48, 64)] * 3  # the last frame alone runs uncompiled


@pytest.mark.parametrize(("flags", "setting"), [([], "auto"), (["--compile"], True), (["--no-compile"], False)])
def test_the_compile_flags(flags, setting):
    from darkir.cli.common import add_runtime, settings_from_args

    parser = argparse.ArgumentParser()
    add_runtime(parser)
    assert settings_from_args(parser.parse_args(flags)).compile == setting


def test_where_the_model_itself_fails_its_error_is_raised_and_compiling_goes_on(model, compiles):
    compiles.fail()

    class Refusing(torch.nn.Module):
        config = model.config

        def forward(self, x):
            raise RuntimeError("the model's own fault")

    restorer = Restorer(Refusing(), device="cpu", precision="fp32", tile=0)
    restorer.expect({(1, 48, 64): 10**9})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "torch.compile failed" warning either
        with pytest.raises(RuntimeError, match="the model's own fault"):
            restorer.restore_tensor(torch.rand(1, 3, 48, 64))
    assert restorer.compile == "auto" and restorer.compiled_shapes == {(1, 48, 64)}


def test_expect_takes_empty_shapes_and_counts_and_compiles_at_most_eight_shapes(model, compiles):
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0)
    assert restorer.expect({(1, 0, 0): 0, (1, 48, 64): 0, (1, 0, 64): 10**9}) == []
    counts = {(1, 32 + height, 48): 10**9 + height for height in range(10)}
    chosen = restorer.expect(counts)
    assert len(chosen) == MAX_COMPILED_SHAPES == 8
    assert set(chosen) == {(1, 32 + height, 48) for height in range(2, 10)}  # the most time saved
    assert restorer.expect({(1, 200, 200): 10**9}) == []  # no room left


def test_the_sizes_of_a_large_batch_come_from_a_sample_of_headers(tmp_path, monkeypatch):
    from darkir.infer import files
    from darkir.infer.jobs import Job

    monkeypatch.setattr(files, "SIZE_SAMPLE", 6)
    jobs = []
    for index in range(10):
        path = tmp_path / f"{index}.png"
        Image.fromarray(np.zeros((40, 56) if index % 2 else (32, 48), np.uint8)).save(path)
        jobs.append(Job(path, tmp_path / "out" / path.name))
    animated = tmp_path / "animated.gif"
    frames = [Image.fromarray(np.full((32, 48), value, np.uint8)) for value in (0, 255)]
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    (tmp_path / "broken.png").write_bytes(b"no image")
    jobs += [Job(animated, tmp_path / "out" / "a.gif"), Job(tmp_path / "broken.png", tmp_path / "out" / "b.png")]
    read = []
    header = files.read_header
    monkeypatch.setattr(files, "read_header", lambda path: read.append(path) or header(path))
    sizes = files.count_sizes(jobs)
    assert read == [job.source for job in jobs[::2]]  # every other of the 12
    assert sizes == {(1, 32, 48): 10}  # 5 of the 6 read are 32x48, the 6th is animated (refused): 5 x 12/6
    assert files.count_sizes([]) == {}


@pytest.mark.parametrize(
    ("rgb", "message"),
    [
        (
            np.zeros((1, 8, 8, 4), np.uint8),
            r"\(N, H, W, 3\) uint8 or uint16 images, non-empty, got \(1, 8, 8, 4\) uint8",
        ),
        (np.zeros((1, 8, 8, 3), np.float32), "got \\(1, 8, 8, 3\\) float32"),
        (np.zeros((8, 8, 3), np.uint8), "got \\(8, 8, 3\\) uint8"),
        (np.zeros((0, 8, 8, 3), np.uint8), "non-empty"),
        ([[1, 2, 3]], "got list"),
    ],
)
def test_restore_levels_refuses_what_it_cannot_take(model, rgb, message):
    with pytest.raises(DarkIRError, match=message):
        Restorer(model, device="cpu").restore_levels(rgb)


def test_restore_levels_takes_a_reversed_channel_view(model):
    bgr = (np.random.default_rng(0).random((1, 40, 56, 3)) * 100).astype(np.uint8)
    restorer = Restorer(model, device="cpu", precision="fp32", tile=0)
    assert np.array_equal(restorer.restore_levels(bgr[..., ::-1]), restorer.restore_levels(bgr[..., ::-1].copy()))


def test_a_ray_worker_expects_its_share_of_the_images(model, compiles, monkeypatch):
    import sys
    import types

    from darkir.cluster import RestoreWorker, WorkerSettings

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(get=lambda reference: reference))
    settings = WorkerSettings(device="cpu", tile=0, threads=1, expected=(((1, 48, 64), 10**9), ((1, 40, 56), 1)))
    worker = RestoreWorker(model, settings)
    assert worker.restorer.compiled_shapes == {(1, 48, 64)}


@pytest.mark.parametrize(("command", "default"), [("restore", "earn the compile back"), ("test", "not compiled")])
def test_the_compile_help_says_what_the_command_does_by_default(command, default, capsys):
    from darkir.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert default in " ".join(capsys.readouterr().out.split())
