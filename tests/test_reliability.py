"""Nothing lost, ever: inputs, outputs and checkpoints survive overwrites, full disks, concurrent runs and odd images.

Each test is one case of the "Nothing lost" issue; they run the real command (``darkir.cli.main``) where a user
would, with a tiny randomized model so that they stay fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkir.cli import main
from darkir.infer import Restorer
from darkir.models.factory import build_model
from darkir.outputs import OutputBusyError, OutputExistsError, claim, lock_path, write_atomic
from tests.conftest import REPO, TINY, randomize, tmpfs


def _photo(path: Path, height: int = 40, width: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), (rng.random((height, width, 3)) * 60).astype(np.uint8))
    return path


def _restore(*args: str, weights: Path) -> int:
    return main(["restore", *args, "--weights", str(weights), "-q"])


# 1. An explicit input file is never replaced, even with --overwrite.
def test_explicit_file_into_its_own_folder_is_refused(tmp_path, tiny_checkpoint, capsys):
    photo = _photo(tmp_path / "photo.png")
    before = photo.read_bytes()
    assert _restore(str(photo), "-o", str(tmp_path), "--overwrite", weights=tiny_checkpoint) != 0
    assert photo.read_bytes() == before
    assert "would replace the input" in capsys.readouterr().err


def test_input_reached_through_a_symlink_is_refused(tmp_path, tiny_checkpoint, capsys):
    photo = _photo(tmp_path / "real" / "photo.png")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    before = photo.read_bytes()
    assert _restore(str(photo), "-o", str(tmp_path / "link"), "--overwrite", weights=tiny_checkpoint) != 0
    assert photo.read_bytes() == before


def test_video_onto_itself_is_refused(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip("av")
    from tests.test_video import make_video

    clip = make_video(tmp_path / "clip.mp4", frames=4, audio=False)
    before = clip.read_bytes()
    code = main(["video", str(clip), "-o", str(tmp_path), "--overwrite", "--weights", str(tiny_checkpoint), "-q"])
    assert code == 2 and clip.read_bytes() == before
    assert "is the input video" in capsys.readouterr().err


# 2. A full disk (or any write error) never leaves a broken output nor replaces a good one.
@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs where mounting is possible, else None (the tests then inject the write error)."""
    with tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


@contextlib.contextmanager
def _disk_full_on_write(monkeypatch):
    """Make every fsync report ENOSPC, as a full disk does at the latest when data reaches it."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full)
        yield


def test_full_disk_fails_loudly_and_keeps_existing_outputs(tmp_path, small_disk, tiny_checkpoint, monkeypatch, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / "small.png", 24, 24)
    big = inputs / "big.png"
    big.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(big), np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    out = small_disk if small_disk is not None else tmp_path / "out"
    out.mkdir(exist_ok=True)
    good = b"previous good result"
    (out / "big.png").write_bytes(good)
    if small_disk is not None:  # fill the disk, leaving too little for a 120 KB PNG
        (small_disk / "filler").write_bytes(b"\0" * 200_000)
        code = _restore(str(inputs), "-o", str(out), "--overwrite", weights=tiny_checkpoint)
    else:
        with _disk_full_on_write(monkeypatch):
            code = _restore(str(inputs), "-o", str(out), "--overwrite", weights=tiny_checkpoint)
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "nothing replaced" in err
    assert (out / "big.png").read_bytes() == good  # the good output is untouched
    assert not [p for p in out.iterdir() if "darkir-" in p.name]  # no temporary or lock files left
    # a re-run without --overwrite keeps the good file; after freeing space, --overwrite replaces it
    if small_disk is not None:
        (small_disk / "filler").unlink()
    assert _restore(str(inputs), "-o", str(out), "--overwrite", weights=tiny_checkpoint) == 0
    assert cv2.imread(str(out / "big.png")).shape == (200, 200, 3)


def test_a_disk_without_room_stops_the_run_after_a_few_outputs_and_the_rerun_does_the_rest(
    tmp_path, tiny_checkpoint, monkeypatch, capsys
):
    """A full disk failed every remaining file after restoring it (265 of 300 restored for nothing, one failure line
    each): five outputs in a row without room stop the run, which says how far it got."""
    from darkir.infer.files import FULL_STREAK

    inputs = tmp_path / "in"
    for index in range(FULL_STREAK + 7):
        _photo(inputs / f"{index:02d}.png", seed=index)
    out = tmp_path / "out"
    restored = []
    real_restore = Restorer.restore_array

    def counting(self, rgb):
        restored.append(1)
        return real_restore(self, rgb)

    monkeypatch.setattr(Restorer, "restore_array", counting)
    with _disk_full_on_write(monkeypatch):
        assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 2
    captured = capsys.readouterr()
    assert len(restored) == FULL_STREAK  # not a model run more for outputs with no room
    assert captured.err.count("No space left on device; nothing replaced") == FULL_STREAK + 1  # 5 lines, the error
    assert f"error: {out}: no room left ({FULL_STREAK} outputs in a row could not be written" in captured.err
    assert f"stopped: restored 0, skipped 0 existing, failed 5; 7 not restored (nothing written: {out} not made)" in (
        captured.out
    )
    assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 0  # once there is room: all of them
    assert len(list(out.glob("*.png"))) == FULL_STREAK + 7


def test_failed_write_of_a_new_output_leaves_no_file(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / "a.png")
    out = tmp_path / "out"
    with _disk_full_on_write(monkeypatch):
        assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 1
    assert not out.exists()  # no file, nor the folder made for the run: every input failed
    assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 0  # not skipped as "existing"
    assert (out / "a.png").is_file()


def test_write_atomic_never_replaces_without_overwrite(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"theirs")
    with pytest.raises(OutputExistsError):
        write_atomic(target, b"ours")
    assert target.read_bytes() == b"theirs"
    write_atomic(target, b"ours", overwrite=True)
    assert target.read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


# 3. A new training run never replaces an earlier run's checkpoints.
def test_training_refuses_to_replace_a_run_unless_told(tmp_path, capsys):
    from darkir.data.synth import synthesize
    from tests.conftest import make_photos, tiny_run_overrides

    data = tmp_path / "set"
    synthesize(
        make_photos(tmp_path / "photos"), data, per_photo=2, size=64, val_photos=1, test_photos=1, progress=False
    )
    run = tmp_path / "run"
    args = [
        "train",
        "-p",
        str(REPO / "options" / "train" / "tiny_csf.yml"),
        *tiny_run_overrides(data, run),
        "-q",
    ]
    assert main(args) == 0
    first = (run / "last.pt").read_bytes()
    assert main(args) == 2
    assert "holds an earlier run" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == first
    assert main([*args, "--restart"]) == 0
    backups = list(run.glob("backup-*"))
    assert len(backups) == 1 and (backups[0] / "last.pt").read_bytes() == first
    assert main([*args, "--resume", "--restart"]) == 2


# 4. Concurrent runs: an output another run is writing is skipped, never replaced.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from darkir.outputs import claim
    with claim(Path(sys.argv[1])):
        print("claimed", flush=True)
        time.sleep(60)
    """
)


def test_output_claimed_by_another_process_is_skipped(tmp_path, tiny_checkpoint, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / "a.png")
    _photo(inputs / "b.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out / "a.png")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(OutputBusyError), claim(out / "a.png"):
            pass
        assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 0
        assert "another run is writing" in capsys.readouterr().out
        assert not (out / "a.png").exists() and (out / "b.png").is_file()
    finally:
        holder.kill()
        holder.wait()
    # the claim died with its process: a later run restores the file
    assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 0
    assert (out / "a.png").is_file() and not lock_path(out / "a.png").exists()


def test_two_concurrent_runs_share_a_folder_without_mixing(tmp_path, tiny_checkpoint):
    inputs = tmp_path / "in"
    for index in range(6):
        _photo(inputs / f"{index}.png", 48, 64, seed=index)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "darkir", "restore", str(inputs), "-o", str(out), "-q"]
    other = randomize(build_model("darkir-csf-w32", **TINY), seed=99)
    from darkir.checkpoint import save_checkpoint

    other_weights = save_checkpoint(tmp_path / "other.pt", other)
    runs = [
        subprocess.Popen([*command, "--weights", str(weights)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for weights in (tiny_checkpoint, other_weights)
    ]
    results = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), results
    restored = [int(s.split()[1].rstrip(",")) for s, _ in ((out.decode(), err) for out, err in results)]
    assert sum(restored) == 6  # every file was written by exactly one run
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in range(6))


# 5. Any image size restores or fails alone; one failure never stops the batch.
def test_extreme_aspect_ratio_does_not_stop_the_batch(tmp_path, tiny_checkpoint, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / "a_strip.png", 8, 10000)
    _photo(inputs / "b_column.png", 2000, 3)
    _photo(inputs / "c_pixel.png", 1, 1)
    (inputs / "d_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    _photo(inputs / "e_normal.png")
    out = tmp_path / "out"
    assert _restore(str(inputs), "-o", str(out), weights=tiny_checkpoint) == 1
    captured = capsys.readouterr()
    assert "restored 4," in captured.out and "failed 1" in captured.out
    assert "Traceback" not in captured.err
    assert cv2.imread(str(out / "a_strip.png")).shape == (8, 10000, 3)
    assert cv2.imread(str(out / "b_column.png")).shape == (2000, 3, 3)


@pytest.fixture(scope="module")
def tiny_restorer_model():
    return randomize(build_model("darkir-csf-w32", **TINY), seed=3).eval()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 160),
    width=st.integers(1, 160),
    tile=st.sampled_from([0, 32, 48, 64, 100]),
    overlap=st.integers(0, 15),
)
def test_any_size_and_tiling_gives_a_finite_image_of_the_same_size(tiny_restorer_model, height, width, tile, overlap):
    restorer = Restorer(tiny_restorer_model, device="cpu", tile=tile, overlap=overlap)
    rgb = np.random.default_rng(height * 1000 + width).random((height, width, 3), dtype=np.float32)
    out = restorer.restore_array(rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 48),
    width=st.integers(1, 48),
    kind=st.sampled_from(["gray8", "rgb8", "rgba8", "rgb16", "gray16"]),
    suffix=st.sampled_from([".png", ".tif", ".jpg", ".webp", ".bmp"]),
)
def test_any_file_kind_round_trips_its_size_and_channels(
    tmp_path_factory, tiny_checkpoint, height, width, kind, suffix
):
    root = tmp_path_factory.mktemp("kinds")
    depth = np.uint16 if kind.endswith("16") else np.uint8
    if suffix in (".jpg", ".webp", ".bmp") and depth == np.uint16:
        depth = np.uint8
    channels = {"gray": 1, "rgb": 3, "rgba": 4}[kind.rstrip("0123456789")]
    if channels == 4 and suffix in (".jpg", ".bmp"):
        channels = 3
    rng = np.random.default_rng(height * 100 + width)
    array = rng.integers(0, np.iinfo(depth).max // 4, (height, width, channels), dtype=depth).squeeze()
    source = root / f"in{suffix}"
    if not cv2.imwrite(str(source), array):
        return  # a combination OpenCV cannot write is not an input anyone has
    out = root / "out"
    assert _restore(str(source), "-o", str(out), weights=tiny_checkpoint) == 0
    result = cv2.imread(str(out / source.name), cv2.IMREAD_UNCHANGED)
    written = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    assert result.shape == written.shape and result.dtype == written.dtype


# 6. The demo deletes its results.
def test_demo_deletes_its_results(tmp_path, tiny_checkpoint, monkeypatch):
    pytest.importorskip("gradio")
    from darkir import demo

    engine = demo.DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    photo = _photo(tmp_path / "p.png")
    first = engine.restore_image(str(photo), "tiny").path
    assert first.is_file() and first.is_relative_to(engine.workdir)
    old = time.time() - demo.KEEP_RESULTS_S - 10
    os.utime(first, (old, old))
    second = engine.restore_image(str(photo), "tiny").path
    assert not first.exists() and second.is_file()  # older results go when new ones come
    engine.close()
    assert not engine.workdir.exists()


# 7. Bad files give one line, no traceback.
def test_non_utf8_options_file_is_one_clear_line(tmp_path, capsys):
    options = tmp_path / "bad.yml"
    options.write_bytes(b"train:\n  lr_initial: 1e-4 \xff\xfe\n")
    assert main(["train", "-p", str(options)]) == 2
    err = capsys.readouterr().err
    assert "not a UTF-8 text file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("metadata", ["{not json", "[1, 2]", '{"width": -3}'])
def test_safetensors_with_bad_config_metadata_is_one_clear_line(tmp_path, tiny_checkpoint, capsys, metadata):
    from safetensors.torch import save_file

    from darkir.checkpoint import read_checkpoint

    state_dict, _, _ = read_checkpoint(tiny_checkpoint)
    weights = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(weights), metadata={"darkir_config": metadata})
    photo = _photo(tmp_path / "p.png")
    assert main(["restore", str(photo), "-o", str(tmp_path / "out"), "--weights", str(weights), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(weights) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# 8. Minor: nothing is created before settings are checked; the real reason is given.
def test_bad_weights_create_no_output_folder(tmp_path, capsys):
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "new" / "out"
    assert main(["restore", str(photo), "-o", str(out), "--weights", str(tmp_path / "missing.pt"), "-q"]) == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tile", "1"], "--tile 1 is too small"),
        (["--tile", "64", "--overlap", "40"], "--overlap 40 must be"),
        # 16 is less than half of 33: the message said so while refusing it
        (["--tile", "33", "--overlap", "16"], "--overlap 16 must be less than 16 (half of --tile 33, rounded down)"),
    ],
)
def test_tile_settings_are_checked_first_and_blame_the_right_flag(tmp_path, tiny_checkpoint, capsys, flags, message):
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "out"
    assert _restore(str(photo), "-o", str(out), *flags, weights=tiny_checkpoint) == 2
    assert message in capsys.readouterr().err and not out.exists()
    assert _restore(str(photo), "-o", str(out), "--tile", "64", weights=tiny_checkpoint) == 0  # overlap follows tile


def test_output_folder_equal_to_input_folder_says_why(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "photos"
    _photo(folder / "a.png")
    assert _restore(str(folder), "-o", str(folder), weights=tiny_checkpoint) == 2
    assert "inside the output folder" in capsys.readouterr().err


def test_the_output_folder_among_the_inputs_is_left_out_with_a_warning(tmp_path, tiny_checkpoint, capsys):
    """``darkir restore * -o out`` run again: the shell passes out/ among the inputs, and it counted as a failed
    input (exit 1 on every rerun, though nothing failed)."""
    photos = [_photo(tmp_path / name, seed=seed) for seed, name in enumerate(("a.png", "b.png"))]
    out = tmp_path / "out"
    assert _restore(*map(str, photos), "-o", str(out), weights=tiny_checkpoint) == 0
    capsys.readouterr()
    assert _restore(*map(str, photos), str(out), "-o", str(out), weights=tiny_checkpoint) == 0
    captured = capsys.readouterr()
    assert "failed 0" in captured.out and "left out 2 files inside the output folder" in captured.err


def test_unexpected_errors_are_one_line_unless_debug(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    import darkir.cli.restore as restore_cli

    def boom(args):
        raise RuntimeError("something odd\nwith a second line")

    monkeypatch.setattr(restore_cli, "restorer_from_args", boom)
    photo = _photo(tmp_path / "p.png")
    assert main(["restore", str(photo), "-o", str(tmp_path / "o"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "darkir: error: RuntimeError: something odd (run with --debug for the traceback)"
    with pytest.raises(RuntimeError):
        main(["--debug", "restore", str(photo), "-o", str(tmp_path / "o"), "-q"])
    with pytest.raises(RuntimeError):  # where users add it, after the command, as the message suggests
        main(["restore", str(photo), "-o", str(tmp_path / "o"), "-q", "--debug"])


def test_debug_shows_an_expected_errors_traceback_and_keeps_its_exit_status(tmp_path, capsys):
    """With --debug a darkir error (a missing options file) escaped as a traceback, exit status 1 where it is 2."""
    assert main(["--debug", "train", "-p", str(tmp_path / "missing.yml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "Error: " in err
    assert err.strip().splitlines()[-1].startswith("darkir: error: ") and "missing.yml" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (OSError(36, "File name too long", "/out/long.png"), "/out/long.png: File name too long"),
        (OSError(21, "Is a directory", "/o/.a.tmp", None, "/o/a.png"), "/o/.a.tmp -> /o/a.png: Is a directory"),
        (OSError(9, "Bad file descriptor", 3), "OSError: [Errno 9] Bad file descriptor: 3 (run with --debug"),
    ],
)
def test_a_file_the_system_refused_is_named_in_one_line(tmp_path, monkeypatch, capsys, error, line):
    import darkir.cli.restore as restore_cli

    def refuse(args):
        raise error

    monkeypatch.setattr(restore_cli, "restorer_from_args", refuse)
    assert main(["restore", str(_photo(tmp_path / "p.png")), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert capsys.readouterr().err.strip().startswith(f"darkir: error: {line}")


def test_dunder_main_exists_for_subprocess_runs():
    done = subprocess.run([sys.executable, "-m", "darkir", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("darkir")


def test_checkpoint_write_failure_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from darkir.checkpoint import CheckpointError, read_checkpoint, save_checkpoint

    model = randomize(build_model("darkir-csf-w32", **TINY), seed=1)
    path = save_checkpoint(tmp_path / "last.pt", model, step=1)
    before = path.read_bytes()
    with _disk_full_on_write(monkeypatch), pytest.raises(CheckpointError, match="previous one is kept"):
        save_checkpoint(path, model, step=2)
    assert path.read_bytes() == before and read_checkpoint(path)[2]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.fixture(scope="module")
def nan_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint whose first convolution's weights are finite but huge: every output overflows (weights
    holding NaN are refused as they load)."""
    import torch

    from darkir.checkpoint import save_checkpoint

    model = randomize(build_model("darkir-csf-w32", **TINY), seed=11)
    with torch.no_grad():
        model.intro.weight.fill_(3e38)
    return save_checkpoint(tmp_path_factory.mktemp("nan") / "nan.pt", model)


def test_broken_weights_are_named_not_written_or_scored(tmp_path, nan_checkpoint, capsys):
    """Weights whose output is NaN: restore writes nothing and names each file; test and test-unpaired stop with an
    error naming the image, instead of writing NaN cast to pixels or reporting "PSNR n/a" with exit 0."""
    low = [_photo(tmp_path / "set" / sub / f"{i}.png", seed=i) for sub in ("low", "high") for i in range(2)][:2]
    assert (
        main(["restore", str(low[0].parent), "-o", str(tmp_path / "out"), "--weights", str(nan_checkpoint), "-q"]) == 1
    )
    err = capsys.readouterr().err
    assert f"darkir: failed: {low[0]}: the model's output has NaN or infinite values: its weights may be broken" in err
    assert not (tmp_path / "out" / "0.png").exists() and not (tmp_path / "out" / "1.png").exists()
    for command in (
        ["test", "--data", str(tmp_path / "set"), "--no-lpips", "--results-dir", str(tmp_path / "r")],
        ["test-unpaired", "--data", str(low[0].parent), "-o", str(tmp_path / "u")],
    ):
        assert main([*command, "--weights", str(nan_checkpoint), "-q"]) == 2
        assert f"darkir: error: {low[0]}: the model's output has NaN or infinite values" in capsys.readouterr().err
    assert not (tmp_path / "u" / "0.png").exists()
