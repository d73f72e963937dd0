"""Nothing lost in training: --restart backups, one run per save.path, full disks, killed runs, overrides anywhere.

Each test is a case of the "Nothing lost" issue found by outside testing; they run ``darkir train`` through
``darkir.cli.main`` on a tiny model and a tiny synthetic set (two steps per epoch) so that they stay fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from darkir.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from darkir.cli import main
from darkir.models.factory import build_model
from darkir.options import load_options
from darkir.train.runfiles import log_lock_path, run_lock_path
from darkir.train.trainer import Trainer
from tests.conftest import REPO, TINY, randomize, tmpfs

OPTIONS = REPO / "options" / "train" / "tiny_csf.yml"


@pytest.fixture(scope="module")
def data(tiny_synth_set: Path) -> Path:
    return tiny_synth_set


def _overrides(data: Path, last: Path, best: Path, *extra: str) -> list[str]:
    return [
        f"datasets.train.train_path={data / 'train'}",
        f"datasets.val.test_path={data / 'val'}",
        f"save.path={last}",
        f"save.best={best}",
        "datasets.train.batch_size_train=2",
        "datasets.train.cropsize=32",
        "train.epochs=1",
        *extra,
    ]


def _args(data: Path, last: Path, best: Path, *extra: str) -> list[str]:
    """``darkir train`` on the tiny set: two steps, one validation, ``last`` and ``best`` saved."""
    return ["train", "-p", str(OPTIONS), *_overrides(data, last, best, *extra), "-q"]


def _fill(disk: Path) -> None:
    """Take every free byte of ``disk``."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):  # the write that finds the disk full
            while os.write(fd, bytes(65536)):
                pass
    finally:
        os.close(fd)


def _backups(root: Path) -> dict[str, bytes]:
    """The files in the backup folders under ``root``, by their path relative to it with ``backup-<time>`` written
    ``backup``."""
    found = {}
    for path in root.rglob("backup-*/*"):
        if path.is_file():
            relative = path.relative_to(root)
            found[str(relative.parent.parent / "backup" / relative.name)] = path.read_bytes()
    return found


# 1. --restart keeps every file, also when save.path and save.best share a name in two folders.
def test_restart_keeps_last_and_best_that_share_a_file_name(data, tmp_path, capsys):
    run = tmp_path / "models"
    args = _args(data, run / "tiny.pt", run / "bests" / "tiny.pt")  # the shipped LOLBlur.yml layout
    assert main(args) == 0
    before = {name: (run / name).read_bytes() for name in ("tiny.pt", "tiny.yml", "bests/tiny.pt", "bests/tiny.yml")}
    assert main([*args, "--restart"]) == 0
    kept = _backups(run)
    assert {name: kept.get(str(Path(name).parent / "backup" / Path(name).name)) for name in before} == before
    assert (next(run.glob("backup-*")) / "tiny_logs" / "train.jsonl").is_file()
    assert "the earlier run's files were moved to" in capsys.readouterr().err


def test_a_log_left_by_a_run_without_checkpoints_is_not_added_to(data, tmp_path, capsys):
    """A run that failed (a full disk) or was killed before its first checkpoint left ``<stem>_logs/train.jsonl``;
    the same command run again appended its records there, two runs' step and validation records mixed."""
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt")
    (run / "last_logs").mkdir(parents=True)
    (run / "last_logs" / "train.jsonl").write_text('{"kind": "train", "step": 1}\n')
    assert main(args) == 2
    assert f"but {run / 'last_logs' / 'train.jsonl'} holds an earlier run's log" in capsys.readouterr().err
    assert (run / "last_logs" / "train.jsonl").read_text() == '{"kind": "train", "step": 1}\n'
    assert main([*args, "--restart"]) == 0
    assert (next(run.glob("backup-*")) / "last_logs" / "train.jsonl").read_text() == '{"kind": "train", "step": 1}\n'
    assert '"step": 1}' not in (run / "last_logs" / "train.jsonl").read_text()


@pytest.mark.parametrize("key", ["save.path", "save.best"])
def test_a_file_that_is_no_checkpoint_at_a_save_path_is_named_and_never_moved(data, tmp_path, capsys, key):
    """A text file at save.path was "an earlier run" to resume or restart: --restart moved the user's file away."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    last, best = (run / "notes.txt", run / "best.pt") if key == "save.path" else (run / "last.pt", run / "notes.txt")
    for flags in ([], ["--restart"]):
        assert main([*_args(data, last, best), *flags]) == 2
        err = capsys.readouterr().err
        assert f"{key}: {run / 'notes.txt'} exists and holds no checkpoint (not a PyTorch weights file)" in err
        assert sorted(path.name for path in run.iterdir()) == ["notes.txt"]


def test_a_file_of_the_users_at_save_best_beside_a_run_is_not_moved_by_restart(data, tmp_path, capsys):
    """Only the first existing checkpoint path was looked at: with a real last checkpoint, --restart moved a text file
    at save.best into the backup as the run's best checkpoint."""
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt")
    assert main(args) == 0
    (run / "best.pt").write_text("mine\n")
    assert main([*args, "--restart"]) == 2
    assert f"save.best: {run / 'best.pt'} exists and holds no checkpoint" in capsys.readouterr().err
    assert (run / "best.pt").read_text() == "mine\n" and not list(run.glob("backup-*"))


# 2. One run per save.path: a second one stops in one line naming the first; a killed run's lock is taken over.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from darkir.train.runfiles import hold_run
    with hold_run(Path(sys.argv[1]), lock=Path(sys.argv[2]) if len(sys.argv) > 2 else None):
        print("holding", flush=True)
        time.sleep(120)
    """
)


@contextlib.contextmanager
def _held(last: Path, *lock: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the run lock of ``last`` (or the ``lock`` file given; killed with SIGKILL at the end,
    as a crash would)."""
    command = [sys.executable, "-c", _HOLDER, str(last), *map(str, lock)]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_a_second_run_on_the_same_save_path_is_refused(data, tmp_path, capsys):
    last = tmp_path / "run" / "last.pt"
    args = _args(data, last, tmp_path / "run" / "best.pt")
    with _held(last) as holder:
        assert main(args) == 2
        assert main([*args, "--restart"]) == 2
        err = capsys.readouterr().err
        assert err.count(f"another training run (pid {holder.pid} on ") == 2 and len(err.strip().splitlines()) == 2
        assert not last.exists() and not (tmp_path / "run" / "last_logs").exists()


@pytest.mark.parametrize("which", ["last", "best"])
def test_a_run_of_an_older_darkir_still_going_is_not_trained_over(data, tmp_path, capsys, which):
    """darkir before a2907f9 locked a run as .<name>.darkir-run (.last.pt.darkir-run): upgraded while such a run went
    on, darkir took its own lock, and a --restart moved the running run's files aside while it wrote on, or two runs
    wrote one checkpoint. The older name is held too; a killed older run's lock file is taken over and removed."""
    from darkir.train.runfiles import legacy_lock_path

    run = tmp_path / "run"
    last, best = run / "last.pt", run / "best.pt"
    target = last if which == "last" else best
    with _held(target, legacy_lock_path(target)) as holder:
        assert main(_args(data, last, best)) == 2
        assert main([*_args(data, last, best), "--restart"]) == 2
        err = capsys.readouterr().err
    assert err.count(f"another training run (pid {holder.pid} on ") == 2
    assert not last.exists() and legacy_lock_path(target).is_file()  # SIGKILLed: its lock file stays behind
    assert main(_args(data, last, best)) == 0
    assert last.is_file() and not legacy_lock_path(target).exists()


def test_a_killed_runs_lock_is_stale_and_taken_over(data, tmp_path):
    last = tmp_path / "run" / "last.pt"
    with _held(last):
        pass  # SIGKILLed: its lock file stays behind
    assert run_lock_path(last).is_file()
    assert main(_args(data, last, tmp_path / "run" / "best.pt")) == 0
    assert last.is_file() and not run_lock_path(last).exists()


def test_a_run_whose_save_path_is_named_like_its_log_holds_both(data, tmp_path):
    """save.path run/train.pt with train.log_dir run: the two locks were one file, and the run refused itself."""
    run = tmp_path / "run"
    assert main(_args(data, run / "train.pt", run / "best.pt", f"train.log_dir={run}")) == 0
    assert (run / "train.pt").is_file() and (run / "train.jsonl").is_file()


def test_a_run_on_a_save_path_of_the_same_stem_is_refused(data, tmp_path, capsys):
    """run/m.pth writes run/m.yml and run/m_logs, as run/m.pt does: while one runs, the other stops."""
    run = tmp_path / "run"
    with _held(run / "m.pt") as holder:
        assert main(_args(data, run / "m.pth", run / "best.pt")) == 2
        err = capsys.readouterr().err
    assert f"{run / 'm.pth'}: another training run (pid {holder.pid} on " in err and "this save.path" in err
    assert not (run / "m.pth").exists() and not (run / "m_logs").exists() and not (run / "m.yml").exists()


def test_a_run_on_a_train_log_dir_in_use_is_refused(data, tmp_path, capsys):
    logs = tmp_path / "logs"
    with _held(logs / "train.jsonl", log_lock_path(logs / "train.jsonl")) as holder:
        assert main(_args(data, tmp_path / "b" / "last.pt", tmp_path / "b" / "best.pt", f"train.log_dir={logs}")) == 2
        err = capsys.readouterr().err
    assert f"another training run (pid {holder.pid} on " in err and "is using this train.log_dir" in err
    assert not (logs / "train.jsonl").exists() and not (tmp_path / "b" / "last.pt").exists()


def test_only_the_main_process_of_torchrun_takes_the_lock(data, tmp_path, monkeypatch, capsys):
    last = tmp_path / "run" / "last.pt"
    monkeypatch.setattr("darkir.train.ddp.is_main_process", lambda: False)  # rank 1 of a torchrun job
    with _held(last):
        assert main(_args(data, last, tmp_path / "run" / "best.pt")) == 0
    assert "stopped at step" not in capsys.readouterr().out  # the main process says where the run ended


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_the_main_process_of_torchrun_warns_of_the_sets(data, tmp_path, monkeypatch, capsys, rank):
    """Each process of a torchrun job printed the same warnings about the sets (here validation on the training
    folder): once for every process."""
    last = tmp_path / "run" / "last.pt"
    monkeypatch.setattr("darkir.train.ddp.is_main_process", lambda: rank == "0")  # that rank of a torchrun job
    overrides = _overrides(data, last, tmp_path / "run" / "best.pt", f"datasets.val.test_path={data / 'train'}")
    assert main(["train", "-p", str(OPTIONS), *overrides, "-q"]) == 0
    assert ("validation pairs are training pairs too" in capsys.readouterr().err) == (rank == "0")


# 4. Full disks: a log that cannot be written never stops training; option files and checkpoints are written
# atomically and a full disk is named as such.
def test_a_failing_training_log_warns_once_and_the_checkpoint_is_saved(data, tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "logs", "64k") as disk:
        if disk is None:  # no mounting here: the JSONL writer reports the full disk
            monkeypatch.setattr("darkir.train.runlog.append_line", _no_space)
        else:
            _fill(disk)
        last = tmp_path / "run" / "last.pt"
        code = main(_args(data, last, tmp_path / "run" / "best.pt", f"train.log_dir={tmp_path / 'logs'}"))
    err = capsys.readouterr().err
    assert code == 0 and err.count("cannot write the training log") == 1 and "No space left on device" in err
    assert read_checkpoint(last)[2]["step"] == 2 and (tmp_path / "run" / "last.yml").stat().st_size > 0


def test_a_run_without_tensorboard_says_once_where_its_log_is(data, tmp_path, monkeypatch, capsys):
    """Without the train extra, TensorBoard's scalars were left out without a word."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it raises ImportError
    last = tmp_path / "run" / "last.pt"
    assert main(_args(data, last, tmp_path / "run" / "best.pt")) == 0
    err = capsys.readouterr().err
    assert err.count("no TensorBoard logs (pip install 'darkir[train]' for them)") == 1
    assert f"the run's log is {tmp_path / 'run' / 'last_logs' / 'train.jsonl'}" in err
    assert not list((tmp_path / "run" / "last_logs").glob("events.out.tfevents.*"))


def test_a_run_in_a_folder_named_in_another_encoding_trains_without_tensorboard(data, tmp_path, capfdbinary):
    """A folder named in Latin-1 bytes (Python's surrogate escapes) was refused as an override ("unacceptable
    character"), and given otherwise, ended the run at its first log record: TensorBoard's file layer encodes paths
    as UTF-8 and raised UnicodeEncodeError."""
    run = tmp_path / os.fsdecode(b"caf\xe9")
    assert main(_args(data, run / "last.pt", run / "best.pt")) == 0
    err = capfdbinary.readouterr().err.decode(errors="replace")
    assert err.count("no TensorBoard logs: TensorBoard cannot write in") == 1 and "is not UTF-8 text" in err
    assert read_checkpoint(run / "last.pt")[2]["step"] == 2 and (run / "last_logs" / "train.jsonl").stat().st_size


def test_validation_images_under_the_ssim_window_log_no_nan(data, tmp_path, capsys):
    """8x8 validation pairs: numpy's "Mean of empty slice" was printed, "SSIM nan" said and train.jsonl held NaN,
    which JSON readers refuse."""
    import json

    import cv2
    import numpy as np

    small = tmp_path / "small"
    for side, level in (("low", 20), ("high", 120)):
        (small / side).mkdir(parents=True)
        cv2.imwrite(str(small / side / "a.png"), np.full((8, 8, 3), level, np.uint8))
    last = tmp_path / "run" / "last.pt"
    assert main(_args(data, last, tmp_path / "run" / "best.pt", f"datasets.val.test_path={small}")) == 0
    captured = capsys.readouterr()
    assert "Mean of empty slice" not in captured.err and "SSIM n/a (images under 11 px)" in captured.out
    records = [json.loads(line) for line in (tmp_path / "run" / "last_logs" / "train.jsonl").read_text().splitlines()]
    validations = [record for record in records if record["kind"] == "val"]
    assert validations and all(record["ssim"] is None and record["psnr"] > 0 for record in validations)


def test_a_mean_over_some_validation_images_says_how_many(data, tmp_path, capsys):
    """An 8x8 pair beside a larger one: training printed "SSIM 0.41" over one of the two, where ``darkir test`` says
    "(1 of 2 images)"."""
    import cv2
    import numpy as np

    mixed = tmp_path / "mixed"
    for side, level in (("low", 20), ("high", 120)):
        (mixed / side).mkdir(parents=True)
        cv2.imwrite(str(mixed / side / "a.png"), np.full((8, 8, 3), level, np.uint8))
        synthesized = {"low": "low_blur_noise", "high": "high_sharp_scaled"}[side]
        shutil.copy(sorted((data / "val" / synthesized).rglob("*.png"))[0], mixed / side / "b.png")
    last = tmp_path / "run" / "last.pt"
    assert main(_args(data, last, tmp_path / "run" / "best.pt", f"datasets.val.test_path={mixed}")) == 0
    assert re.search(r"val PSNR [0-9.]+ dB, SSIM [0-9.]+ \(1 of 2 images\)", capsys.readouterr().out)


def test_validation_restores_within_the_memory_budget_as_darkir_test_does(data, tmp_path, monkeypatch, capsys):
    """Validation ran each image whole, whatever its size: a 2400x1600 photo took 7 GB at width 32, ran the machine
    out of memory, and every resumed run validated it again, first; ``darkir test`` scored it in tiles."""
    import darkir.infer.memory
    import darkir.infer.restorer

    large = _large_pair(tmp_path / "large")
    monkeypatch.setattr(darkir.infer.memory, "DEFAULT_CAP", 40e6)  # room for 192 px tiles, not the whole image
    tiled = []
    real = darkir.infer.restorer.restore_in_tiles
    monkeypatch.setattr(darkir.infer.restorer, "restore_in_tiles", lambda *a, **k: tiled.append(1) or real(*a, **k))
    last = tmp_path / "run" / "last.pt"
    assert main(_args(data, last, tmp_path / "run" / "best.pt", f"datasets.val.test_path={large}")) == 0
    trained = re.search(r"val PSNR ([0-9.]+) dB, SSIM ([0-9.]+)", capsys.readouterr().out).groups()
    assert tiled
    assert main(["test", "--weights", str(last), "--data", str(large), "--no-lpips", "--save", "0", "-q"]) == 0
    assert re.search(rf"PSNR {trained[0]} dB, SSIM {trained[1]}", capsys.readouterr().out)


def _large_pair(root: Path) -> Path:
    """A 400x300 validation pair in ``root``."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for side, level in (("low", 30), ("high", 120)):
        (root / side).mkdir(parents=True)
        image = np.clip(rng.normal(level, 20, (300, 400, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / side / "a.png"), image)
    return root


def test_validation_takes_its_memory_budget_from_train_val_max_memory(data, tmp_path, monkeypatch, capsys):
    """Validation's messages said "raise max_memory", which training does not take: its budget is
    ``train.val_max_memory``, named by its warnings and errors, and scores as ``darkir test --max-memory``."""
    import darkir.infer.memory

    large = _large_pair(tmp_path / "large")
    monkeypatch.setattr(darkir.infer.memory, "resident_memory", lambda: 10**9)  # a process of 1 GB
    last, best = tmp_path / "run" / "last.pt", tmp_path / "run" / "best.pt"
    val = f"datasets.val.test_path={large}"
    assert main(_args(data, last, best, val, "train.val_max_memory=1.04GB")) == 0
    captured = capsys.readouterr()
    assert "change the result's tone" in captured.err and "raise train.val_max_memory" in captured.err
    assert "--max-memory" not in captured.err
    trained = re.search(r"val PSNR ([0-9.]+) dB, SSIM ([0-9.]+)", captured.out).groups()
    test = ["test", "--weights", str(last), "--data", str(large), "--max-memory", "1.04GB", "--no-lpips", "--save", "0"]
    assert main([*test, "-q"]) == 0
    assert re.search(rf"PSNR {trained[0]} dB, SSIM {trained[1]}", capsys.readouterr().out)
    again = tmp_path / "again"
    assert main(_args(data, again / "last.pt", again / "best.pt", val, "train.val_max_memory=1.02GB")) == 2
    err = capsys.readouterr().err
    assert "does not fit train.val_max_memory 1.02 GB" in err and err.count("raise train.val_max_memory") == 1
    assert "--max" not in err


def _no_space(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_options_file_is_replaced_atomically(tmp_path, monkeypatch):
    from darkir.replacing import save_text

    target = tmp_path / "last.yml"
    target.write_text("previous: options\n")
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(
        CheckpointError, match=re.escape(f"no space left on device writing {target}; the previous one is kept")
    ):
        save_text(target, "new: options\n")
    assert target.read_text() == "previous: options\n" and [p.name for p in tmp_path.iterdir()] == ["last.yml"]


def test_a_full_disk_while_saving_a_checkpoint_is_named_and_keeps_the_previous_one(tmp_path, monkeypatch):
    model = randomize(build_model("darkir-csf-w32", **TINY), seed=1)
    with tmpfs(tmp_path / "disk", "2m") as disk:
        folder = disk if disk is not None else tmp_path
        path = save_checkpoint(folder / "last.pt", model, step=1, optimizer=torch.zeros(200_000))
        before = path.read_bytes()
        if disk is None:  # torch.save's own report of a full disk, on a disk left with no free space

            def failing_save(obj: object, name: str) -> None:
                Path(name).write_bytes(b"partial")
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

            monkeypatch.setattr(torch, "save", failing_save)
            monkeypatch.setattr("shutil.disk_usage", lambda folder: SimpleNamespace(total=1 << 30, free=0))
        else:
            _fill(disk)
        with pytest.raises(CheckpointError) as caught:
            save_checkpoint(path, model, step=2, optimizer=torch.zeros(200_000))
        assert str(caught.value) == f"no space left on device writing {path}; the previous one is kept"
        assert path.read_bytes() == before
        assert {p.name for p in folder.iterdir()} - {"filler"} == {"last.pt"}


def test_a_full_disk_while_saving_safetensors_is_named_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """safetensors reports a full disk as a SafetensorError, which was neither caught nor named: `darkir convert` ended
    in "darkir: error: SafetensorError: ... (run with --debug for the traceback)", exit code 1."""
    from safetensors import SafetensorError

    model = randomize(build_model("darkir-csf-w32", **TINY), seed=1)
    with tmpfs(tmp_path / "disk", "2m") as disk:
        folder = disk if disk is not None else tmp_path
        path = save_checkpoint(folder / "model.safetensors", model)
        before = path.read_bytes()
        if disk is None:

            def failing_save(tensors: object, filename: str, metadata: object = None) -> None:
                Path(filename).write_bytes(b"partial")
                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

            monkeypatch.setattr("safetensors.torch.save_file", failing_save)
        else:
            _fill(disk)
        with pytest.raises(CheckpointError) as caught:
            save_checkpoint(path, randomize(model, seed=2))
        assert str(caught.value) == f"no space left on device writing {path}; the previous one is kept"
        assert path.read_bytes() == before
        assert {p.name for p in folder.iterdir()} - {"filler"} == {"model.safetensors"}


def test_a_nearly_full_disk_never_leaves_an_empty_options_file(data, tmp_path):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs here (atomic option files are tested above)")
        trainer = Trainer(load_options(OPTIONS, _overrides(data, disk / "last.pt", disk / "best.pt")), progress=False)
        size = trainer.save(tmp_path / "probe" / "last.pt").stat().st_size
        (disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(disk).free - -(-size // 4096) * 4096))
        with pytest.raises(CheckpointError, match=re.escape(f"no space left on device writing {disk / 'last.yml'}")):
            trainer.save()  # room for the checkpoint, not for its options file
        assert read_checkpoint(disk / "last.pt")[2]["step"] == 0
        assert {p.name for p in disk.iterdir()} == {"filler", "last.pt"}


# 5. --restart moves nothing until everything is checked, and moves all or nothing.
def test_restart_with_a_config_mistake_leaves_the_run_resumable(data, tmp_path, capsys):
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt", "train.epochs=2")
    assert main([*args, "--max-steps", "1"]) == 0
    before = (run / "last.pt").read_bytes()
    mistake = _args(data, run / "last.pt", run / "best.pt", "train.epochs=2", "datasets.train.train_path=./nope")
    assert main([*mistake, "--restart"]) == 2
    assert "datasets.train.train_path: path not found" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before and not list(run.glob("backup-*"))
    assert main([*args, "--resume"]) == 0
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4


def test_restart_with_best_on_another_file_system(data, tmp_path, capsys):
    with tmpfs(tmp_path / "other", "8m") as other:
        if other is None:
            pytest.skip("cannot mount a tmpfs here (the all-or-nothing move is tested below)")
        args = _args(data, tmp_path / "run" / "last.pt", other / "best.pt")
        assert main(args) == 0
        before = {path: path.read_bytes() for path in (tmp_path / "run" / "last.pt", other / "best.pt")}
        assert main([*args, "--restart"]) == 0, capsys.readouterr().err
        kept = {**_backups(tmp_path / "run"), **_backups(other)}
        assert kept["backup/last.pt"] == before[tmp_path / "run" / "last.pt"]
        assert kept["backup/best.pt"] == before[other / "best.pt"]


def test_a_move_that_fails_half_way_undoes_the_others(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "bests" / "best.pt")
    assert main(args) == 0
    files = sorted(p for p in run.rglob("*") if p.is_file() and "last_logs" not in p.parts)
    before = {path: path.read_bytes() for path in files}
    rename = os.rename

    def cross_device(src: str | Path, dst: str | Path) -> None:
        if Path(src).name == "best.pt":
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(os, "replace", cross_device)
    assert main([*args, "--restart"]) == 2
    err = capsys.readouterr().err.strip()
    assert "Invalid cross-device link; the earlier run was left as it was" in err and len(err.splitlines()) == 1
    assert {path: path.read_bytes() for path in files} == before
    assert (run / "last_logs" / "train.jsonl").is_file() and not list(run.rglob("backup-*"))


# 8. Temporary files a killed run left are recognised by their dead writer and removed; others are kept.
def test_temporary_files_of_a_killed_run_are_removed(data, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "bests").mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = [run / f".last.pt.{gone.pid}.tmp", run / f".last_step000010.yml.{gone.pid}.tmp"]
        stale.append(run / "bests" / f".best.pt.{gone.pid}.tmp")
        kept = [run / f".last.pt.{living.pid}.tmp", run / f".other.pt.{gone.pid}.tmp"]
        for path in stale + kept:
            path.write_bytes(b"partial checkpoint")
        assert main(_args(data, run / "last.pt", run / "bests" / "best.pt")) == 0
    finally:
        living.kill()
        living.wait()
    assert "removed 3 temporary file(s) that a killed run left" in capsys.readouterr().err
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


# Overrides may follow any flag.
def test_overrides_are_accepted_after_flags(data, tmp_path, capsys):
    overrides = _overrides(data, tmp_path / "run" / "last.pt", tmp_path / "run" / "best.pt")
    assert main(["train", "-p", str(OPTIONS), *overrides[:3], "-q", *overrides[3:], "--max-steps", "1"]) == 0
    assert "stopped at step 1" in capsys.readouterr().out and (tmp_path / "run" / "last.pt").is_file()


@pytest.mark.parametrize("which", ["save.path", "save.best", "snapshot"])
def test_an_anchor_that_is_one_of_the_runs_own_checkpoints_is_refused(data, tmp_path, capsys, which):
    """train.anchor on save.path (say, fine-tuning a run's own weights with --restart --init-from): the run would
    replace its anchor as it trains, and a resumed run would anchor to another model. Refused before any work."""
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt")
    assert main(args) == 0
    anchor = {"save.path": run / "last.pt", "save.best": run / "best.pt", "snapshot": run / "last_step000002.pt"}[which]
    if not anchor.exists():
        shutil.copy(run / "last.pt", anchor)
    before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    capsys.readouterr()
    assert main([*args, "--restart", "--init-from", str(anchor), f"train.anchor={anchor}"]) == 2
    err = capsys.readouterr().err
    assert f"train.anchor: {anchor} is " in err and "nothing was trained or written" in err
    assert {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()} == before
    assert not list(run.glob("backup-*"))


def test_a_save_path_whose_step_snapshots_names_are_too_long_is_refused_before_training(data, tmp_path, capsys):
    run = tmp_path / "run"
    last = run / f"{'m' * 235}.pt"  # fits, as does its temporary file; its snapshots' temporary files do not
    assert main(_args(data, last, run / "best.pt", "train.keep_every_steps=1")) == 2
    err = capsys.readouterr().err
    assert f"save.path: {last}: the run writes files named like ." in err and "over the 255 its folder allows" in err
    assert not run.exists() or not any(run.iterdir())


def test_a_step_snapshot_that_cannot_be_written_saves_the_last_checkpoint_and_says_where_to_continue(
    data, tmp_path, monkeypatch
):
    import darkir.train.trainer

    write = darkir.train.trainer.save_checkpoint

    def no_snapshots(path, *args, **kwargs):
        if "_step" in Path(path).name:
            raise CheckpointError(f"cannot write {path}: No space left on device")
        return write(path, *args, **kwargs)

    monkeypatch.setattr(darkir.train.trainer, "save_checkpoint", no_snapshots)
    run = tmp_path / "run"
    options = load_options(OPTIONS, _overrides(data, run / "last.pt", run / "best.pt", "train.keep_every_steps=1"))
    with pytest.raises(
        CheckpointError, match=r"^train\.keep_every_steps: cannot write .*_step000001\.pt: No space"
    ) as e:
        Trainer(options, progress=False).fit()
    assert f"the last checkpoint {run / 'last.pt'} holds step 1, pass resume=True" in str(e.value)
    assert read_checkpoint(run / "last.pt")[2]["step"] == 1


def test_a_log_dir_lock_that_cannot_be_made_stops_no_run(tmp_path, monkeypatch):
    """The train.log_dir lock is not required: where its file cannot be made (a full disk) the run goes on, as it
    does when its log cannot be written; a checkpoint's lock is required."""
    from darkir.errors import DarkIRError
    from darkir.train.runfiles import hold_run

    monkeypatch.setattr("darkir.train.runfiles.take_lock", lambda lock: _no_space())
    ran = []
    with hold_run(tmp_path / "logs" / "train.jsonl", "train.log_dir", required=False):
        ran.append(True)
    assert ran == [True]
    with (
        pytest.raises(DarkIRError, match="cannot take this save.path for the run .*No space left on device"),
        hold_run(tmp_path / "last.pt"),
    ):
        pass


def test_an_error_while_training_comes_on_a_line_of_its_own_below_the_bar(data, tmp_path, monkeypatch, capsys):
    """The progress bar was left open when saving the best checkpoint failed: the error was printed on the bar's line
    (``...loss=0.36]darkir: error: ...``), and the bar drawn once more after it."""
    import darkir.train.trainer

    write = darkir.train.trainer.save_checkpoint

    def no_best(path, *args, **kwargs):
        if Path(path).name == "best.pt":
            raise CheckpointError(f"no space left on device writing {path}")
        return write(path, *args, **kwargs)

    monkeypatch.setattr(darkir.train.trainer, "save_checkpoint", no_best)
    run = tmp_path / "run"
    assert main(_args(data, run / "last.pt", run / "best.pt")[:-1]) == 2  # without -q: the bar is drawn
    err = capsys.readouterr().err
    assert "\ndarkir: error: " in err and "\rtraining" not in err[err.index("darkir: error: ") :]


def test_a_first_checkpoint_that_cannot_be_written_says_the_steps_are_lost(data, tmp_path, monkeypatch, capsys):
    """The run ended with "no space left on device writing .../last.pt" alone: nothing said that, with no earlier
    checkpoint, every step it had trained was gone (a later one says the previous checkpoint is kept)."""
    import darkir.train.trainer

    def full(path, *args, **kwargs):
        raise CheckpointError(f"no space left on device writing {path}")

    monkeypatch.setattr(darkir.train.trainer, "save_checkpoint", full)
    run = tmp_path / "run"
    assert main(_args(data, run / "last.pt", run / "best.pt")) == 2
    assert "the run has no checkpoint yet: its 2 step(s) are lost" in capsys.readouterr().err


def test_resuming_a_finished_run_says_it_has_finished(data, tmp_path, capsys):
    """``--resume`` of a run that had trained all its epochs printed only "stopped at step 2", as if it had trained."""
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt")
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    assert "has finished (2 steps, train.epochs 1): nothing is left to train" in capsys.readouterr().err
    assert main([*args[:-1], "train.epochs=2", "-q", "--resume"]) == 0
    assert "has finished" not in capsys.readouterr().err


def test_a_damaged_last_checkpoint_names_the_states_to_continue_from(data, tmp_path, capsys):
    """A cut-short last.pt was named as such, with no word of the best checkpoint and step snapshots beside it, full
    training states the run can continue from."""
    run = tmp_path / "run"
    args = _args(data, run / "last.pt", run / "best.pt", "train.keep_every_steps=1")
    assert main(args) == 0
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:1000])
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"to continue from an earlier step, copy {run / 'last_step000002.pt'} or {run / 'best.pt'} to " in err


def test_more_loader_workers_than_cpus_are_cut_to_the_cpus_with_one_line(data, tmp_path, monkeypatch, capsys):
    """The official files' n_workers: 4 on a 2-CPU machine printed torch's multi-line UserWarning, twice."""
    import os
    import warnings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)  # (runtime.usable_cpus reads it)
    last = tmp_path / "run" / "last.pt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(_args(data, last, tmp_path / "run" / "best.pt", "datasets.train.n_workers=3")) == 0
    err = capsys.readouterr().err
    assert err.count("datasets.train.n_workers 3 is more than the CPUs this run may use (1): using 1") == 1
    assert not [w for w in caught if "worker processes in total" in str(w.message)] and "UserWarning" not in err
