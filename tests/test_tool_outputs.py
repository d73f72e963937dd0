"""The tool commands (convert, split, synth) never write over data: an existing output, the command's own input or a
folder of photos is refused with one line and exit 2 before any work, writes are atomic, and bad flag values are
refused by argparse. (export-onnx: tests/test_export.py.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkir.checkpoint import read_checkpoint
from darkir.cli import main
from darkir.data.corpus import resolve_sources
from darkir.errors import DarkIRWarning
from tests.test_data import make_lolblur


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (48, 56)) -> Path:
    """A small smooth colour 'photo' (distinct per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0 : size[0], 0 : size[1]] / 12.0
    image = np.stack([np.sin(x * (seed + 1)), np.cos(y * (seed + 2)), np.sin(x + y + seed)], -1) * 0.45 + 0.5
    cv2.imwrite(str(path), (image * 255).astype(np.uint8))
    return path


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line the command printed (checked to be one ``darkir: error:`` line, no traceback)."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("darkir: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _argparse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """argparse's message for a refused flag value (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# convert


@pytest.fixture
def weights(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    return Path(shutil.copy(tiny_checkpoint, tmp_path / "w.pt"))


def test_convert_never_writes_over_its_input(weights, tmp_path, capsys, monkeypatch):
    before = weights.read_bytes()
    os.link(weights, tmp_path / "hard.pt")
    (tmp_path / "soft.pt").symlink_to(weights)
    monkeypatch.chdir(tmp_path)
    for output in ("w.pt", str(weights), "hard.pt", "soft.pt"):
        assert main(["convert", str(weights), "-o", output, "--overwrite"]) == 2
        assert f"-o {output} is the input {weights}; write to another file" in _error(capsys)
    assert weights.read_bytes() == before


def test_convert_refuses_an_existing_file_unless_overwrite(weights, tmp_path, capsys):
    other = tmp_path / "other.pt"
    other.write_bytes(b"someone's checkpoint")
    assert main(["convert", str(weights), "-o", str(other)]) == 2
    assert f"-o {other} exists; pass --overwrite" in _error(capsys)
    assert other.read_bytes() == b"someone's checkpoint"
    assert main(["convert", str(weights), "-o", str(other), "--overwrite"]) == 0
    assert read_checkpoint(other)[1] == read_checkpoint(weights)[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt", "w.pt"]  # no temporary file left


def test_convert_and_csv_writers_remove_what_killed_runs_left_beside_their_output(weights, tmp_path, capsys):
    """A `convert` killed while it wrote left ``.m.pt.<pid>.tmp`` (a checkpoint's size) for ever, and a `metrics
    --csv` its ``.darkir-part`` file: their reruns now remove a killed process's temporary files (a live one's stay)."""
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    out = tmp_path / "out"
    out.mkdir()
    left = [out / f".m.pt.{killed.pid}.tmp", out / f".t.{socket.gethostname()}-{killed.pid}.darkir-part.csv"]
    live = out / ".m.pt.1.tmp"  # pid 1 runs as long as the machine
    runs = [out / f".m.yml.{killed.pid}.tmp", out / f".m_step500.pt.{killed.pid}.tmp"]  # a training run's: not its
    for path in (*left, live, *runs):
        path.write_bytes(b"half a file")
    assert main(["convert", str(weights), "-o", str(out / "m.pt")]) == 0
    assert f"removed 1 temporary file(s) that a killed run left: {left[0]}" in capsys.readouterr().err
    _photo(tmp_path / "pred" / "a.png")
    assert main(["metrics", str(tmp_path / "pred"), "-q", "--csv", str(out / "t.csv")]) == 0
    assert not any(path.exists() for path in left) and live.exists() and all(path.exists() for path in runs)


def test_convert_checks_the_suffix_and_folder_before_reading_weights(tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")  # the output is refused before this is read
    photo = _photo(tmp_path / "photo.png")
    before = photo.read_bytes()
    for output in (photo, tmp_path / "new.bin"):
        assert main(["convert", str(broken), "-o", str(output), "--overwrite"]) == 2
        assert f"-o {output}: a checkpoint is written to a .safetensors, .pt or .pth file" in _error(capsys)
    assert photo.read_bytes() == before and not (tmp_path / "new.bin").exists()
    (tmp_path / "folder.pt").mkdir()
    assert main(["convert", str(broken), "-o", str(tmp_path / "folder.pt")]) == 2
    assert f"-o {tmp_path / 'folder.pt'} is a folder" in _error(capsys)


# split


def test_split_refuses_a_dataset_image_and_an_existing_manifest(tmp_path, capsys):
    root = make_lolblur(tmp_path / "set", scenes=5, frames=2)
    image = root / "low_blur_noise" / "0000" / "0000.png"
    before = image.read_bytes()
    assert main(["split", str(root), "-o", str(image), "--counts", "4,2,2", "--overwrite"]) == 2
    assert f"-o {image}: a split manifest is written to a .json file" in _error(capsys)
    assert image.read_bytes() == before
    manifest = tmp_path / "split.json"
    manifest.write_text("{}")
    assert main(["split", str(root), "-o", str(manifest), "--counts", "4,2,2"]) == 2
    assert f"-o {manifest} exists; pass --overwrite" in _error(capsys)
    assert manifest.read_text() == "{}"
    assert main(["split", str(root), "-o", str(manifest), "--counts", "4,2,2", "--overwrite"]) == 0
    assert json.loads(manifest.read_text())["counts"] == {"train": 4, "val": 2, "test": 2}
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert main(["split", str(root), "-o", str(folder)]) == 2
    assert f"-o {folder} is a folder" in _error(capsys)


def test_split_reports_a_split_the_scenes_cannot_fill(tmp_path, capsys):
    root = make_lolblur(tmp_path / "set", scenes=5, frames=2)
    manifest = tmp_path / "split.json"
    assert main(["split", str(root), "-o", str(manifest), "--counts", "3,3,4"]) == 2  # train and val take 4 each
    assert "too few pairs for test 2 of 4" in _error(capsys)
    assert not manifest.exists()


def test_split_tries_further_shuffles_of_the_scenes_before_it_refuses(tmp_path, capsys):
    """Scenes of 10, 1, 1 and 1 pairs into 2, 1 and 10: seed 0's shuffle gave train the 10-pair scene and was
    refused ("ask for fewer pairs"), though the split exists (seed 3 found it)."""
    for scene, frames in enumerate((10, 1, 1, 1)):
        for frame in range(frames):
            for side in ("low_blur_noise", "high_sharp_scaled"):
                _photo(tmp_path / "set" / side / f"s{scene}" / f"{frame}.png", seed=scene * 20 + frame)
    manifest = tmp_path / "split.json"
    assert main(["split", str(tmp_path / "set"), "-o", str(manifest), "--counts", "2,1,10"]) == 0
    splits = json.loads(manifest.read_text())["splits"]
    assert [len(splits[name]) for name in ("train", "val", "test")] == [2, 1, 10]


@pytest.mark.parametrize("counts", ["0,0,0", "4,0,2", "4,2", "4,2,2,1", "a,b,c", "-1,2,2"])
def test_split_counts_must_be_three_whole_numbers_of_at_least_1(tmp_path, counts, capsys):
    err = _argparse_error(["split", str(tmp_path), "-o", str(tmp_path / "s.json"), f"--counts={counts}"], capsys)
    assert f"argument --counts: expected three whole numbers of at least 1, train,val,test; got {counts!r}" in err


def test_split_write_is_atomic(tmp_path, capsys, monkeypatch):
    root = make_lolblur(tmp_path / "set", scenes=5, frames=2)
    manifest = tmp_path / "split.json"
    manifest.write_text("previous")

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("darkir.outputs.os.fsync", fail)
    assert main(["split", str(root), "-o", str(manifest), "--counts", "4,2,2", "--overwrite"]) == 2
    assert "No space left on device" in _error(capsys)
    assert manifest.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "split.json"]


# synth

SMALL = ["--per-photo", "1", "--size", "32", "--val-photos", "1", "--test-photos", "1", "-q"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    for index in range(4):
        _photo(folder / f"p{index}.png", seed=index)
    return folder


def test_synth_refuses_a_non_empty_folder(photos, tmp_path, capsys):
    output = tmp_path / "set"
    _photo(output / "mine.png")
    before = _listing(output)
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
    assert f"output folder {output} is not empty (it holds 'mine.png'); choose a new folder" in _error(capsys)
    assert _listing(output) == before
    (tmp_path / "afile").write_bytes(b"x")
    assert main(["synth", "--source", str(photos), "-o", str(tmp_path / "afile"), *SMALL]) == 2
    assert f"output folder {tmp_path / 'afile'} is a file" in _error(capsys)
    assert (tmp_path / "afile").read_bytes() == b"x"


def test_synth_refuses_an_output_in_or_around_a_photo_folder(photos, tmp_path, capsys):
    before = _listing(photos)
    for output in (photos, photos / "synth"):
        assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
        assert f"output folder {output} is inside the photo folder {photos}" in _error(capsys)
    assert main(["synth", "--source", str(photos), "-o", str(tmp_path), *SMALL]) == 2
    assert f"photo folder {photos} is inside the output folder {tmp_path}" in _error(capsys)
    assert _listing(photos) == before


def test_synth_refuses_a_synth_set_as_photos_or_as_the_folder_around_its_output(photos, tmp_path, capsys):
    """A synth set given as --source was read as 536 clean photos, crops of one photo landing in two splits; a set
    written inside another set went without a word."""
    made = tmp_path / "set"
    assert main(["synth", "--source", str(photos), "-o", str(made), *SMALL]) == 0
    before = _listing(made)
    mixed = tmp_path / "mixed"  # photos beside a copy of the set
    shutil.copytree(photos, mixed)
    shutil.copytree(made, mixed / "set")
    for source, found in ((made, made), (made / "train", made), (mixed, mixed / "set")):
        assert main(["synth", "--source", str(source), "-o", str(tmp_path / "again"), *SMALL]) == 2
        assert f"{source}: its images include the darkir synth set {found} (it holds synth.json)" in _error(capsys)
    inside = made / "train" / "more"
    assert main(["synth", "--source", str(photos), "-o", str(inside), *SMALL]) == 2
    assert f"output folder {inside} is inside the darkir synth set {made}; choose one outside it" in _error(capsys)
    assert _listing(made) == before and not (tmp_path / "again").exists()


@pytest.mark.parametrize("command", ["synth", "split"])
def test_a_seed_numpy_would_read_as_two_numbers_is_refused(tmp_path, capsys, command):
    """--seed 4294967296 drew the same degradations as --seed 0 (numpy splits it into two 32-bit words)."""
    with pytest.raises(SystemExit):
        main([command, "--seed", str(2**32)])
    assert f"argument --seed: expected a seed from 0 to {2**32 - 1}, got '{2**32}'" in capsys.readouterr().err


def test_synth_writes_a_new_or_empty_folder_and_a_failed_run_leaves_nothing(photos, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["synth", "--source", str(photos), "-o", str(empty), *SMALL]) == 0
    assert sorted(p.name for p in empty.iterdir()) == ["synth.json", "test", "train", "val"]
    assert len(list(empty.rglob("*.png"))) == 8
    (photos / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # fails after others are written
    for output in (tmp_path / "new", tmp_path / "empty2"):
        if output.name == "empty2":
            output.mkdir()
        assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
        assert "zz_broken.png" in _error(capsys)
    assert not (tmp_path / "new").exists() and list((tmp_path / "empty2").iterdir()) == []
    (photos / "zz_broken.png").unlink()


def test_synth_that_fails_while_moving_its_set_into_place_leaves_none_of_it(photos, tmp_path, capsys, monkeypatch):
    """Another run's train/ appearing while the set was moved into place: the run said "nothing was kept" and left
    its test/ beside the other run's train/, a set of two runs whose photos may cross splits."""
    import darkir.data.synth as synth

    output = tmp_path / "out"
    write = synth._write_pairs

    def another_run_meanwhile(*args: object, **kwargs: object) -> object:
        written = write(*args, **kwargs)
        (output / "train" / "other_run").mkdir(parents=True)
        return written

    monkeypatch.setattr(synth, "_write_pairs", another_run_meanwhile)
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
    assert "nothing was kept" in _error(capsys)
    assert sorted(str(path.relative_to(output)) for path in output.rglob("*")) == ["train", "train/other_run"]


def test_synth_on_a_full_disk_names_its_output_not_a_file_of_the_hidden_set_it_removed(
    photos, tmp_path, capsys, monkeypatch
):
    import darkir.data.synth as synth
    from darkir.outputs import DiskFullError

    def full(path: Path, *args: object, **kwargs: object) -> None:
        raise DiskFullError(f"{path}: No space left on device; nothing replaced")

    monkeypatch.setattr(synth, "write_image", full)
    output = tmp_path / "out"
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
    error = _error(capsys)
    assert f"cannot write the set in {output}: no space left on its disk; nothing was kept" in error
    assert ".darkir-part" not in error and not output.exists()


def test_synth_names_every_photo_smaller_than_the_size_before_any_work(photos, tmp_path, capsys, monkeypatch):
    """The first one was found when its turn came, after every photo before it had been synthesized, and the others
    one run later each."""
    from darkir.data import synth

    monkeypatch.setattr(synth, "degrade", lambda *args: pytest.fail("a pair was made before the sizes were checked"))
    source = tmp_path / "with_small"
    shutil.copytree(photos, source)
    _photo(source / "zz_tiny.png", seed=9, size=(20, 24))
    _photo(source / "zz_tiny2.png", seed=10, size=(30, 30))
    assert main(["synth", "--source", str(source), "-o", str(tmp_path / "new"), *SMALL]) == 2
    error = _error(capsys)
    assert "2 photo(s) smaller than --size 32: " in error and "zz_tiny.png (24x20)" in error
    assert "zz_tiny2.png (30x30)" in error and not (tmp_path / "new").exists()


def test_synth_clears_what_a_killed_run_left_but_not_a_live_runs_folder(photos, tmp_path, capsys):
    host = socket.gethostname()
    output = tmp_path / "set"
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    (output / f".darkir-part-{host}-{killed.pid}" / "train").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 0
    assert f"removed {output / f'.darkir-part-{host}-{killed.pid}'}" in capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == ["synth.json", "test", "train", "val"]
    live = tmp_path / "busy"
    (live / f".darkir-part-{host}-{os.getpid()}").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(live), *SMALL]) == 2
    assert f"holds '.darkir-part-{host}-{os.getpid()}', the unfinished set of another darkir synth run" in _error(
        capsys
    )
    assert (live / f".darkir-part-{host}-{os.getpid()}").is_dir()
    # a shared folder: another machine's run, whose process this one cannot see, is left alone
    shared = tmp_path / "shared"
    (shared / f".darkir-part-elsewhere-{killed.pid}" / "train").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(shared), *SMALL]) == 2
    assert "holds '.darkir-part-elsewhere-" in _error(capsys)
    assert (shared / f".darkir-part-elsewhere-{killed.pid}" / "train").is_dir()
    # a darkir before the host was in the name (.darkir-part-<pid>): named as such, with what to do, and kept
    older = tmp_path / "older"
    (older / f".darkir-part-{killed.pid}" / "train").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(older), *SMALL]) == 2
    message = _error(capsys)
    assert f"holds '.darkir-part-{killed.pid}', the unfinished set of another darkir synth run" in message
    assert "killed under an older darkir); delete it if no run writes there" in message
    assert (older / f".darkir-part-{killed.pid}" / "train").is_dir()


def test_synth_clears_a_killed_runs_folder_whose_pid_is_another_process_now(photos, tmp_path, capsys):
    """A container's entry point has the same pid at every start: the folder a killed synth left there was named by
    host and pid only, looked like the live run's (the pid was alive) and stopped every rerun. Named by the process's
    start too, it is told apart; a live run's folder is kept."""
    from darkir.outputs import owner_tag, process_start

    host, pid = socket.gethostname(), os.getpid()
    output = tmp_path / "set"
    reused = f".darkir-part-{host}-{pid}@{process_start(pid) + 1}"
    (output / reused / "train").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 0
    assert f"removed {output / reused}" in capsys.readouterr().err
    live = tmp_path / "busy"
    (live / f".darkir-part-{owner_tag()}").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(live), *SMALL]) == 2
    assert "the unfinished set of another darkir synth run" in _error(capsys)


def test_synth_clears_another_containers_or_machines_folder_once_untouched_for_a_day(
    photos, tmp_path, capsys, monkeypatch
):
    """A restarted container has a new pid namespace: the folder its killed synth left (named with the old one's)
    was kept for ever, and every rerun refused. Like restore's temporary files, another container's or machine's
    folder goes once nothing was written in it for a day; a fresh one, maybe a live run's, is kept."""
    from darkir.outputs import FOREIGN_PART_AGE_S

    output = tmp_path / "set"
    stages = [f".darkir-part-{socket.gethostname()}-1@5n1", ".darkir-part-elsewhere-12@7"]
    for stage in stages:
        (output / stage / "train" / "low").mkdir(parents=True)
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
    assert "the unfinished set of another darkir synth run" in _error(capsys)
    later = time.time() + FOREIGN_PART_AGE_S + 60
    monkeypatch.setattr("darkir.outputs.time.time", lambda: later)
    (output / stages[1] / "train" / "low" / "new.png").write_bytes(b"written now")  # (in a day's time: still live)
    os.utime(output / stages[1] / "train" / "low", (later, later))
    assert main(["synth", "--source", str(photos), "-o", str(output), *SMALL]) == 2
    assert f"removed {output / stages[0]}" in capsys.readouterr().err
    assert not (output / stages[0]).exists() and (output / stages[1]).is_dir()


@pytest.mark.parametrize(
    ("flag", "value", "wanted"),
    [
        ("--per-photo", "0", "at least 1"),
        ("--size", "0", "at least 1"),
        ("--val-photos", "-1", "at least 0"),
        ("--test-photos", "-2", "at least 0"),
        ("--seed", "-1", "at least 0"),
    ],
)
def test_synth_flag_values_are_checked(photos, tmp_path, flag, value, wanted, capsys):
    err = _argparse_error(["synth", "--source", str(photos), "-o", str(tmp_path / "set"), f"{flag}={value}"], capsys)
    assert f"argument {flag}: expected a whole number of {wanted}, got {value!r}" in err
    assert not (tmp_path / "set").exists()


def test_a_photo_under_two_names_or_copied_is_taken_once(tmp_path):
    """A hard link (same file, two names) and a byte-identical copy in another source were taken as two photos, so
    one could be held out for testing while its twin trained."""
    import os

    one, two = tmp_path / "one", tmp_path / "two"
    a, b = _photo(one / "a.png", 0), _photo(one / "b.png", 1)
    os.link(a, one / "a_hard.png")
    (two / "c.png").parent.mkdir()
    (two / "c.png").write_bytes(b.read_bytes())
    _photo(two / "d.png", 2)
    with pytest.warns(
        DarkIRWarning, match=r"left out 1 photo\(s\), copies of others: .*two/c\.png \(a copy of .*one/b\.png\)"
    ):
        names = resolve_sources([str(one), str(two)])
    assert names == {"a": a, "b": b, "d": two / "d.png"}


def test_synth_keeps_every_photo_whose_names_collide(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    files = [
        _photo(one / "a" / "x.png", 0),
        _photo(one / "a_x.png", 1),  # same name as a/x.png
        _photo(one / "y.jpg", 2),
        _photo(one / "y.png", 3),  # same stem
        _photo(one / "y-2.png", 4),  # the name the second y would get
        _photo(two / "y.png", 5),  # same name in another source
        _photo(two / "z.png", 6),
    ]
    names = resolve_sources([str(one), str(two), str(one)])  # a folder given twice is read once
    assert names == {
        "a_x": files[0],
        "a_x-2": files[1],
        "y": files[2],
        "y-3": files[3],
        "y-2": files[4],
        "y-4": files[5],
        "z": files[6],
    }
    assert resolve_sources([str(one), str(two)]) == names  # deterministic
    output = tmp_path / "set"
    assert main(["synth", "--source", str(one), "--source", str(two), "-o", str(output), *SMALL]) == 0
    assert capsys.readouterr().out.startswith("7 photos -> ")
    record = json.loads((output / "synth.json").read_text())
    assert sorted(pair["source"] for pair in record["pairs"]) == sorted(str(f) for f in files)
    assert len(list(output.rglob("*.png"))) == 14


# train


def test_train_max_steps_must_not_be_negative(tmp_path, capsys):
    err = _argparse_error(["train", "-p", str(tmp_path / "x.yml"), "--max-steps=-1"], capsys)
    assert "argument --max-steps: expected a whole number of at least 0, got '-1'" in err


# threads


@pytest.mark.parametrize("command", ["restore", "video"])
def test_threads_beyond_the_limit_are_refused(tmp_path, capsys, command):
    """Tens of thousands of threads made OpenMP fail to start them and the process crash (a segfault); a runner of
    one CPU still takes --threads 8."""
    from darkir.cli.common import thread_count
    from darkir.runtime import thread_limit

    too_many = thread_limit() + 1
    err = _argparse_error(
        [command, str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), f"--threads={too_many}"], capsys
    )
    assert f"argument --threads: {too_many} threads are too many for " in err and f"at most {too_many - 1}" in err
    assert thread_count("8") == 8 and thread_limit() >= 64


def test_compare_refuses_more_resamples_than_it_can_hold(tmp_path, capsys):
    """10^12 resamples were taken, and failed after all the scoring: "MemoryError: Unable to allocate 29.1 TiB"."""
    err = _argparse_error(
        ["compare", "--data", str(tmp_path), "-o", str(tmp_path / "r"), "--resamples", "1e12"], capsys
    )
    assert "argument --resamples" in err
    err = _argparse_error(
        ["compare", "--data", str(tmp_path), "-o", str(tmp_path / "r"), "--resamples", "100001"], capsys
    )
    assert "argument --resamples: 100001 resamples are more than 100,000" in err


def test_synth_records_each_pairs_photo_by_a_path_that_resolves_anywhere(photos, tmp_path, monkeypatch):
    """``--source photos`` run from its parent folder recorded ``photos/p0.png``: from anywhere else (or beside the
    set) that path named nothing."""
    monkeypatch.chdir(photos.parent)
    assert main(["synth", "--source", photos.name, "-o", str(tmp_path / "set"), *SMALL]) == 0
    record = json.loads((tmp_path / "set" / "synth.json").read_text())
    assert {pair["source"] for pair in record["pairs"]} == {str(photo) for photo in photos.iterdir()}


def test_a_failed_write_into_a_new_folder_leaves_no_folder(tmp_path, monkeypatch):
    """`convert -o new/m.safetensors`, `metrics --csv new/t.csv`, `split -o new/s.json`: the folder was made before
    the write, and stayed, empty, where the write failed (a full disk, a failed check)."""
    from darkir.errors import CheckpointError
    from darkir.eval import reports
    from darkir.outputs import DiskFullError, parent_made
    from darkir.replacing import replace_file

    def fail(tmp: str) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(CheckpointError, match="no space left on device"):
        replace_file(tmp_path / "a" / "b" / "m.safetensors", fail)

    def full(*args: object, **kwargs: object) -> None:
        raise DiskFullError("no room")

    monkeypatch.setattr(reports, "write_atomic", full)
    with pytest.raises(DiskFullError):
        reports.write_csv_rows(tmp_path / "c" / "t.csv", [["name", "psnr"]])
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(OSError, match="File name too long"), parent_made(tmp_path / "e" / ("x" * 300) / "t.csv"):
        pass  # the folders were made part of the way
    assert sorted(os.listdir(tmp_path)) == []
    # a folder that existed, or that holds a file by the time the write fails, is kept
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt), parent_made(tmp_path / "kept" / "new" / "x.json"):
        (tmp_path / "kept" / "new" / "other.txt").write_text("someone's")
        raise KeyboardInterrupt
    assert (tmp_path / "kept" / "new" / "other.txt").read_text() == "someone's"
    # and a write that succeeds keeps the folders it made
    replace_file(tmp_path / "d" / "e" / "m.txt", lambda tmp: Path(tmp).write_text("ok"))
    assert (tmp_path / "d" / "e" / "m.txt").read_text() == "ok"
