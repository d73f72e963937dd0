"""Training safety: the earlier-run guard with ``network.resume_training``, save paths checked before any step, the
last checkpoint saved before the best one and before reporting a data error, and resumes that refuse another network
or follow a new length honestly.

Each test trains a tiny model on a tiny synthetic set (four training pairs, two validation pairs) through
``darkir.cli.main`` or :class:`Trainer`, so that it stays fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darkir.checkpoint import CheckpointError, read_checkpoint
from darkir.cli import main
from darkir.errors import DarkIRError
from darkir.options import load_options
from darkir.train.runfiles import hold_run
from darkir.train.trainer import Trainer
from tests.conftest import REPO, tiny_run_overrides

OPTIONS = REPO / "options" / "train" / "tiny_csf.yml"


@pytest.fixture(scope="module")
def data(tiny_synth_set: Path) -> Path:
    return tiny_synth_set


def _train(data: Path, run: Path, *extra: str, validate: bool = True) -> int:
    """``darkir train`` on the tiny run; ``extra``: more overrides and flags (overrides may follow flags)."""
    return main(["train", "-p", str(OPTIONS), *tiny_run_overrides(data, run, validate=validate), "-q", *extra])


def _contents(run: Path) -> dict[str, bytes]:
    """Every file under ``run`` but the logs, by its path relative to ``run``."""
    return {
        str(path.relative_to(run)): path.read_bytes()
        for path in sorted(run.rglob("*"))
        if path.is_file() and "last_logs" not in path.parts
    }


def _one_error(err: str) -> str:
    """The single ``darkir: error:`` line of ``err``."""
    lines = [line for line in err.strip().splitlines() if line.startswith("darkir: error:")]
    assert len(lines) == 1, err
    return lines[0]


# 1. network.resume_training: continues only from a last checkpoint; otherwise the earlier-run guard applies.
def test_resume_training_with_restart_backs_the_earlier_run_up(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run) == 0
    before = _contents(run)
    assert _train(data, run, "network.resume_training=true", "--restart") == 0
    assert "the earlier run's files were moved to" in capsys.readouterr().err
    (backup,) = run.glob("backup-*")
    assert {name: (backup / name).read_bytes() for name in before} == before
    assert read_checkpoint(run / "last.pt")[2]["step"] == 2 and (run / "best.pt").is_file()


def test_a_rank_left_in_the_environment_of_a_lone_run_changes_nothing(data, tmp_path, capsys, monkeypatch):
    """With RANK=1 and no WORLD_SIZE the run trained alone, as rank 0, but skipped the main process's checks, lock
    and backup: --restart wrote over the earlier run, its log mixed with the new one's."""
    run = tmp_path / "run"
    assert _train(data, run) == 0
    before = _contents(run)
    monkeypatch.setenv("RANK", "1")
    assert _train(data, run, "--restart") == 0
    assert "the earlier run's files were moved to" in capsys.readouterr().err
    (backup,) = run.glob("backup-*")
    assert {name: (backup / name).read_bytes() for name in before} == before


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK is not set: run under torchrun, or unset WORLD_SIZE"),
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' in the environment is not a whole number"),
        ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x' in the environment is not a whole number"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not a rank of a group of WORLD_SIZE=2 processes"),
    ],
)
def test_torchrun_variables_that_cannot_be_are_one_error_naming_them(
    data, tmp_path, capsys, monkeypatch, environment, message
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _train(data, tmp_path / "run") == 2
    assert message in _one_error(capsys.readouterr().err)


def test_resume_training_continues_from_the_last_checkpoint(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2", "network.resume_training=true", "--max-steps", "1") == 0
    assert "continuing" not in capsys.readouterr().err  # nothing to continue: a new run
    assert read_checkpoint(run / "last.pt")[2]["step"] == 1 and not (run / "best.pt").exists()
    assert _train(data, run, "train.epochs=2", "network.resume_training=true") == 0
    assert f"network.resume_training: continuing the run in {run / 'last.pt'}" in capsys.readouterr().err
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4 and not list(run.glob("backup-*"))
    assert read_checkpoint(run / "best.pt")[2]["step"] in (2, 4)


def test_a_checkpoint_that_is_a_link_is_refused_naming_the_file_it_leads_to(data, tmp_path, capsys):
    """A last.pt moved to another disk and linked back was replaced by a plain file on --resume: the disk it was
    moved to kept the stale checkpoint, and the run's folder filled up again."""
    run, store = tmp_path / "run", tmp_path / "store"
    assert _train(data, run, "train.epochs=2", "network.resume_training=true", "--max-steps", "1") == 0
    store.mkdir()
    (run / "last.pt").rename(store / "moved.pt")
    (run / "last.pt").symlink_to(store / "moved.pt")
    moved = (store / "moved.pt").read_bytes()
    capsys.readouterr()
    assert _train(data, run, "train.epochs=2", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.path: {run / 'last.pt'} is a link to {store / 'moved.pt'}; set save.path to the file it leads to" in (
        error
    )
    assert (run / "last.pt").is_symlink() and (store / "moved.pt").read_bytes() == moved
    assert _train(data, run, "train.epochs=2", "--resume", f"save.path={store / 'moved.pt'}") == 0


def test_resume_training_without_a_last_checkpoint_keeps_the_earlier_best(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run) == 0
    (run / "last.pt").unlink()
    before = _contents(run)
    capsys.readouterr()
    assert _train(data, run, "network.resume_training=true") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"{run / 'best.pt'} holds an earlier run" in error and "--restart to start over" in error
    assert "network.resume_training continues only from save.path's last checkpoint" in error
    assert _contents(run) == before and not (run / "last.pt").exists()


def test_resume_training_with_init_from_is_a_new_run_under_the_guard(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run) == 0
    weights = shutil.copy(run / "last.pt", tmp_path / "weights.pt")
    before = _contents(run)
    capsys.readouterr()
    assert _train(data, run, "network.resume_training=true", "--init-from", str(weights)) == 2
    error = _one_error(capsys.readouterr().err)
    assert "holds an earlier run" in error and "does not apply with --init-from" in error
    assert _contents(run) == before
    assert _train(data, run, "network.resume_training=true", "--init-from", str(weights), "--restart") == 0
    (backup,) = run.glob("backup-*")
    assert {name: (backup / name).read_bytes() for name in before} == before


def test_an_official_training_checkpoint_is_not_resumed_but_starts_a_new_schedule(data, tmp_path, capsys):
    # The official save_checkpoint layout: DDP-prefixed weights, optimizer and scheduler states darkir cannot continue,
    # and the epoch's loss as a numpy float.
    import numpy as np

    assert _train(data, tmp_path / "ours") == 0
    weights = read_checkpoint(tmp_path / "ours" / "last.pt")[0]
    run = tmp_path / "official"
    run.mkdir()
    official = {
        "epoch": 4,
        "model_state_dict": {f"module.{k}": v for k, v in weights.items()},
        "optimizer_state_dict": {"state": {}, "param_groups": []},
        "loss": np.mean([0.1, 0.2]),
        "scheduler_state_dict": {"last_epoch": 4},
    }
    torch.save(official, run / "last.pt")
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert _train(data, run, "network.resume_training=true") == 2
    error = _one_error(capsys.readouterr().err)
    assert "an official DarkIR training checkpoint" in error and f"--init-from {run / 'last.pt'}" in error
    assert (run / "last.pt").read_bytes() == before
    assert _train(data, tmp_path / "new", "--init-from", str(run / "last.pt")) == 0
    assert read_checkpoint(tmp_path / "new" / "last.pt")[2]["step"] == 2


# 2 and 4. Every save path is checked before any work: one line naming the key, exit 2, nothing written.
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("save.best={file}/best.pt", "save.best: {file} is a file, not a folder"),
        ("save.path={file}/sub/last.pt", "save.path: {file} is a file, not a folder"),
        ("save.path=/proc/darkir-no-such/last.pt", "save.path: cannot write in /proc/darkir-no-such"),
        ("save.path={run}", "save.path: {run} is a folder, not a file"),
        ("train.log_dir={file}", "train.log_dir: {file} is a file, not a folder"),
        ("save.best={run}/last.pt", "save.best: {run}/last.pt is save.path's file too"),
    ],
)
def test_bad_save_paths_are_refused_before_any_step(data, tmp_path, capsys, where, message):
    run, file = tmp_path / "run", tmp_path / "a_file"
    (run / "keep").mkdir(parents=True)
    (run / "keep" / "precious.pt").write_bytes(b"an earlier run's file")
    file.write_bytes(b"not a folder")
    setting = where.format(run=run, file=file)
    assert _train(data, run, setting, "--restart") == 2
    error = _one_error(capsys.readouterr().err)
    assert message.format(run=run, file=file) in error and "nothing was trained or written" in error
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("a_file"),
        Path("run"),
        Path("run/keep"),
        Path("run/keep/precious.pt"),
    ]
    assert file.read_bytes() == b"not a folder"


# 2. At the end of an epoch the last checkpoint comes first: a failure to write the best one loses no training.
def test_a_failing_best_checkpoint_keeps_the_epoch_in_the_last_one(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    save = Trainer.save

    def best_fails(self: Trainer, path: Path | None = None) -> Path:
        if path == self.best_path:
            raise CheckpointError(f"no space left on device writing {path}; the previous one is kept")
        return save(self, path)

    monkeypatch.setattr(Trainer, "save", best_fails)
    assert _train(data, run, "train.epochs=2") == 2
    error = _one_error(capsys.readouterr().err)
    assert error.startswith(f"darkir: error: save.best: no space left on device writing {run / 'best.pt'}")
    assert f"the last checkpoint {run / 'last.pt'} holds step 2, pass --resume" in error
    state = read_checkpoint(run / "last.pt")[2]
    assert (state["step"], state["epoch"], state["epoch_step"]) == (2, 1, 0) and not (run / "best.pt").exists()
    assert state["best_psnr"] is None  # no best recorded that no file holds: the resumed run saves its next one
    monkeypatch.undo()
    assert _train(data, run, "train.epochs=2", "--resume") == 0
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4 and (run / "best.pt").is_file()


# 3. An unreadable training image part-way through an epoch: the last checkpoint is saved at the last completed
# step, the error names the file, and once the file is repaired the run resumes exactly.
def _truncate(path: Path) -> bytes:
    """Cut ``path`` to half its size (its header stays readable); returns its bytes before."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


def _copy_with_input_of_step(data: Path, tmp_path: Path, settings: tuple[str, ...], step: int) -> tuple[Path, Path]:
    """A copy of the set ``data`` (``tmp_path / "copy"``) and the input of its first pair that a run of batch 1 with
    ``settings`` reads for ``step`` (1, 2, ...) of the first epoch."""
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    trainer = Trainer(load_options(OPTIONS, tiny_run_overrides(copy, tmp_path / "probe", *settings, validate=False)))
    trainer.sampler.set_epoch(0)
    return copy, trainer.train_set.pairs[list(trainer.sampler)[step - 1][0]].low


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_mid_epoch_saves_the_last_checkpoint_and_names_it(data, tmp_path, capsys, workers):
    settings = ("train.epochs=2", "datasets.train.batch_size_train=1", f"datasets.train.n_workers={workers}")
    assert _train(data, tmp_path / "straight", *settings, validate=False) == 0
    copy, third = _copy_with_input_of_step(data, tmp_path, settings, 3)
    whole = _truncate(third)
    run = tmp_path / "run"
    capsys.readouterr()
    assert _train(copy, run, *settings, validate=False) == 2
    error = _one_error(capsys.readouterr().err)
    assert error.startswith(f"darkir: error: loading the training batch of step 3: {third}: cannot decode image")
    assert f"the last checkpoint {run / 'last.pt'} holds step 2" in error and "--resume" in error
    state = read_checkpoint(run / "last.pt")[2]
    assert (state["step"], state["epoch"], state["epoch_step"]) == (2, 0, 2)
    third.write_bytes(whole)
    assert _train(copy, run, *settings, "--resume", validate=False) == 0
    a, _, _ = read_checkpoint(tmp_path / "straight" / "last.pt")
    b, _, resumed = read_checkpoint(run / "last.pt")
    assert resumed["step"] == 8 and all(torch.equal(a[key], b[key]) for key in a)


def test_an_image_that_fails_the_first_step_leaves_no_checkpoint_so_a_plain_rerun_trains(data, tmp_path, capsys):
    """A damaged image read by step 1 left a step-0 checkpoint (nothing trained), so the same command, once the file
    was repaired, was refused as an earlier run asking for --resume or --restart."""
    settings = ("datasets.train.batch_size_train=1",)
    copy, first = _copy_with_input_of_step(data, tmp_path, settings, 1)
    whole = _truncate(first)
    run = tmp_path / "run"
    capsys.readouterr()
    assert _train(copy, run, *settings, validate=False) == 2
    error = _one_error(capsys.readouterr().err)
    assert error.startswith(f"darkir: error: loading the training batch of step 1: {first}: cannot decode image")
    assert "nothing was trained or saved" in error and "--resume" not in error
    assert not list(run.glob("*.pt"))
    first.write_bytes(whole)
    assert _train(copy, run, *settings, validate=False) == 0
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4


def test_a_save_path_without_a_suffix_trains(data, tmp_path):
    """A save.path without a suffix (runs/exp1) was refused as "another training run (pid <its own>) is using this
    save.path": its lock and an older darkir's lock are one file, which the run took twice."""
    run = tmp_path / "run"
    assert main(["train", "-p", str(OPTIONS), *tiny_run_overrides(data, run), f"save.path={run / 'model'}", "-q"]) == 0
    assert read_checkpoint(run / "model")[2]["step"] == 2 and (run / "best.pt").is_file()


def test_a_second_sigterm_does_not_abort_but_a_second_ctrl_c_does():
    """A batch system signals every process of a job and torchrun passes its own SIGTERM on: each worker got two at
    once, and the second aborted the save the first had asked for."""
    import os
    import signal

    import torch

    from darkir.train.ddp import Context
    from darkir.train.stopping import StopOnInterrupt

    with StopOnInterrupt(Context(0, 1, torch.device("cpu"))) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested()
    with StopOnInterrupt(Context(0, 1, torch.device("cpu"))), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_a_forked_worker_leaves_the_stop_to_the_run_and_still_ends_on_sigterm():
    """Data loader workers fork with the run's handler: each told a terminal's Ctrl-C again, and (as a first fix had
    it) one that ignored SIGTERM outlived torch's terminate() of a worker that does not stop."""
    import multiprocessing
    import os
    import signal
    import time

    import torch

    from darkir.train.ddp import Context
    from darkir.train.stopping import StopOnInterrupt

    with StopOnInterrupt(Context(0, 1, torch.device("cpu"))) as stop:
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
        worker.start()
        time.sleep(0.5)  # (started, its handlers inherited)
        os.kill(worker.pid, signal.SIGINT)
        worker.join(1)
        assert worker.is_alive() and not stop.flag  # the worker leaves the stop to the run, which was not asked
        worker.terminate()
        worker.join(5)
    assert worker.exitcode == -signal.SIGTERM


def test_a_lost_terminal_stops_training_after_its_step_and_saves():
    """SIGHUP (an ssh session lost, the terminal closed) killed a training run without saving its last steps: it asks
    for a stop after the step, as SIGTERM does; under nohup (ignored) it stays ignored."""
    import os
    import signal

    import torch

    from darkir.train.ddp import Context
    from darkir.train.stopping import StopOnInterrupt

    def outer(signum: int, frame: object) -> None:
        raise AssertionError("SIGHUP was not taken over")  # (SIG_DFL would end the test run)

    previous = signal.signal(signal.SIGHUP, outer)
    try:
        with StopOnInterrupt(Context(0, 1, torch.device("cpu"))) as stop:
            os.kill(os.getpid(), signal.SIGHUP)
            assert stop.requested()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with StopOnInterrupt(Context(0, 1, torch.device("cpu"))) as stop:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.requested()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_loader_error_that_names_no_file_names_the_batch(data, tmp_path, monkeypatch):
    trainer = Trainer(load_options(OPTIONS, tiny_run_overrides(data, tmp_path, "datasets.train.batch_size_train=1")))
    trainer.sampler.set_epoch(0)
    second = list(trainer.sampler)[1][0]
    getitem = type(trainer.train_set).__getitem__

    def fails_once(self: object, index: int) -> dict:
        if index == second:
            raise RuntimeError("stack expects each tensor to be equal size")
        return getitem(self, index)

    monkeypatch.setattr(type(trainer.train_set), "__getitem__", fails_once)
    with pytest.raises(DarkIRError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert message.startswith("loading the training batch of step 2: RuntimeError: stack expects each tensor")
    assert f"(the batch's inputs: {trainer.train_set.pairs[second].low})" in message
    assert read_checkpoint(tmp_path / "last.pt")[2]["step"] == 1


def test_data_loader_workers_that_cannot_start_are_one_error_saying_what_to_change(data, tmp_path, monkeypatch, capsys):
    """Under ``ulimit -n 16`` the workers could not start: "OSError: Too many open files", exit 1, and a traceback
    of torch's cleaning up."""
    import errno

    from torch.utils.data import DataLoader

    def no_more_files(loader: DataLoader) -> None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(DataLoader, "__iter__", no_more_files)
    assert _train(data, tmp_path / "run", "datasets.train.n_workers=1") == 2
    assert "starting 1 data loader workers (raise ulimit -n and -u, or set datasets.train.n_workers=0): OSError: " in (
        _one_error(capsys.readouterr().err)
    )


def test_an_unreadable_validation_image_keeps_the_epoch(data, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    bad = sorted((copy / "val").rglob("*.png"))[0]
    _truncate(bad)
    run = tmp_path / "run"
    assert _train(copy, run) == 2
    error = _one_error(capsys.readouterr().err)
    assert error.startswith(f"darkir: error: validating after epoch 1: {bad}: cannot decode image")
    assert read_checkpoint(run / "last.pt")[2]["step"] == 2 and not (run / "best.pt").exists()


# 5. --resume refuses another network, naming each key that differs.
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["network.width=16"], ["network.width: 8 in the checkpoint, 16 in the options"]),
        (
            ["network.dilations=[1,2,3]", "network.use_csf=false"],
            [
                "network.dilations: [1, 4, 9] in the checkpoint, [1, 2, 3] in the options",
                "network.use_csf: True in the checkpoint, False in the options",
            ],
        ),
        (["train.enhance=true"], ["train.enhance: False in the checkpoint, True in the options"]),
    ],
)
def test_resume_refuses_another_network(data, tmp_path, capsys, change, named):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2", "--max-steps", "1", validate=False) == 0
    before = _contents(run)
    capsys.readouterr()
    assert _train(data, run, "train.epochs=2", *change, "--resume", validate=False) == 2
    error = _one_error(capsys.readouterr().err)
    assert "cannot resume this run with other settings than it was trained with" in error
    assert all(item in error for item in named) and "the checkpoint was left as it was" in error
    assert _contents(run) == before


# 6. A new train.epochs on --resume: the cosine schedule of the new length from this step on, said in one line.
def test_more_epochs_on_resume_follow_the_new_cosine_schedule(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, validate=False) == 0
    capsys.readouterr()
    options = load_options(OPTIONS, tiny_run_overrides(data, run, "train.epochs=3", validate=False))
    trainer = Trainer(options, progress=False)
    assert trainer.resume() and trainer.step == 2
    assert "train.epochs 1 -> 3: the cosine schedule now runs 6 steps (was 2)" in capsys.readouterr().err
    lr0, eta_min = options.train.lr_initial, options.train.eta_min

    def cosine(step: int) -> float:
        return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * step / 6)) / 2

    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cosine(2), rel=1e-12)
    result = trainer.fit(max_steps=5)
    assert result.steps == 5 and trainer.scheduler.T_max == 6
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cosine(5), rel=1e-9)
    assert read_checkpoint(run / "last.pt")[2]["scheduler"]["T_max"] == 6


def test_a_killed_runs_lock_dies_with_it_though_its_forked_workers_live_on(tmp_path):
    """Data loader workers, forked while the run held its save.path, held the lock seconds after the run was killed:
    a retry was refused, naming a process that was gone."""
    import signal
    import subprocess
    import sys

    script = f"""
import os, sys, time
from pathlib import Path
from darkir.train.runfiles import hold_run
with hold_run(Path({str(tmp_path / "last.pt")!r})):
    if os.fork() == 0:
        print(os.getpid(), flush=True)  # forked (and through the fork's hooks)
        time.sleep(60)
        os._exit(0)
    time.sleep(60)
"""
    import darkir

    env = {**os.environ, "PYTHONPATH": str(Path(darkir.__file__).parents[1])}  # the darkir under test
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    worker = int(run.stdout.readline())
    try:
        run.kill()
        run.wait()
        with hold_run(tmp_path / "last.pt"):  # the worker still runs
            os.kill(worker, 0)  # (raises if it is gone)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


def test_a_process_whose_group_never_fills_says_so_and_stops_on_sigterm(data, tmp_path):
    """With WORLD_SIZE 2 and no second process (a stale environment, a rank that never started), the run waited the
    whole 4-hour timeout in silence, and SIGTERM and Ctrl-C did nothing: darkir's handlers, in Python, wait for
    torch's wait to return."""
    import select
    import signal
    import socket
    import subprocess
    import sys
    import time

    import darkir

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ, "PYTHONPATH": str(Path(darkir.__file__).parents[1]), "WORLD_SIZE": "2", "RANK": "0",
        "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    }  # fmt: skip
    command = [sys.executable, "-m", "darkir", "train", "-p", str(OPTIONS), *tiny_run_overrides(data, tmp_path / "r")]
    run = subprocess.Popen([*command, "-q"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        waiting = f"darkir: process 0 of 2 is waiting for the others to join at 127.0.0.1:{port} (Ctrl-C stops it)"
        lines, deadline = [], time.monotonic() + 60
        while waiting not in lines and select.select([run.stderr], [], [], max(0, deadline - time.monotonic()))[0]:
            line = run.stderr.readline()
            if not line:  # it ended
                break
            lines.append(line.strip())
        assert waiting in lines, lines
        run.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert run.wait(timeout=30) == -signal.SIGTERM and time.monotonic() - start < 10
    finally:
        run.kill()


def test_a_forked_child_that_runs_on_into_its_parents_release_leaves_the_lock_alone(tmp_path):
    """A child forked while a claim was held, returning through its parent's release, removed the parent's lock file
    and closed its descriptor number a second time (then perhaps another file of the child's)."""
    from darkir.outputs import Claim, lock_path, take_lock

    claim, lock = Claim(tmp_path / "out.png"), lock_path(tmp_path / "out.png")
    child = os.fork()
    if child == 0:
        claim.release()
        os._exit(0)
    os.waitpid(child, 0)
    assert lock.exists() and take_lock(lock) is None  # the parent still holds it
    claim.release()
    assert not lock.exists()


def test_the_run_lock_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "a_file").write_bytes(b"not a folder")
    with (
        pytest.raises(DarkIRError, match="cannot take this save.path for the run .*; nothing was written"),
        hold_run(tmp_path / "a_file" / "last.pt"),
    ):
        pass
    assert (tmp_path / "a_file").read_bytes() == b"not a folder"


# 6. A run's checkpoints are its own: a resumed run, a second run and a new run never replace another run's.
def test_resuming_into_a_save_best_of_another_run_is_refused(data, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert _train(data, first) == 0
    assert _train(data, second) == 0
    theirs = (first / "last.pt").read_bytes()
    capsys.readouterr()
    assert _train(data, second, f"save.best={first / 'last.pt'}", "train.epochs=2", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.best: {first / 'last.pt'} holds a checkpoint of another run (save.path {first / 'last.pt'})" in error
    assert (first / "last.pt").read_bytes() == theirs
    assert read_checkpoint(second / "last.pt")[2]["step"] == 2  # not continued either
    assert _train(data, second, "train.epochs=2", "--resume") == 0  # its own save.best: continues


def test_a_second_run_on_a_save_best_in_use_stops_at_once(data, tmp_path, capsys):
    shared = tmp_path / "bests" / "best.pt"
    with hold_run(shared, "save.best"):
        assert _train(data, tmp_path / "run", f"save.best={shared}") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"{shared}: another training run (pid " in error and "is using this save.best" in error
    assert not (tmp_path / "run" / "last.pt").exists() and not shared.exists()


def test_a_new_run_does_not_replace_the_step_snapshots_of_a_killed_one(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, "train.keep_every_steps=1", validate=False) == 0
    (run / "last.pt").unlink()  # killed before its first last checkpoint: only snapshots are left
    (run / "last.yml").unlink()
    kept = {path.name: path.read_bytes() for path in run.glob("last_step*")}
    assert set(kept) == {"last_step000001.pt", "last_step000001.yml", "last_step000002.pt", "last_step000002.yml"}
    capsys.readouterr()
    assert _train(data, run, "train.seed=7", validate=False) == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.path: {run / 'last.pt'} does not exist, but 2 step snapshot(s) of an earlier run do" in error
    assert f"copy that one to {run / 'last.pt'} and pass --resume" in error
    assert {path.name: path.read_bytes() for path in run.glob("last_step*")} == kept
    assert _train(data, run, "train.seed=7", "--restart", validate=False) == 0  # backed up first
    backups = list(tmp_path.rglob("backup-*/last_step000002.pt"))
    assert len(backups) == 1 and backups[0].read_bytes() == kept["last_step000002.pt"]


def test_without_validation_the_last_checkpoint_is_saved_every_epoch(data, tmp_path, monkeypatch):
    saved = []
    save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, path=None: saved.append((self.epoch, path)) or save(self, path))
    assert _train(data, tmp_path / "run", "train.epochs=3", validate=False) == 0
    assert saved == [(1, None), (2, None), (3, None)]  # after epochs 1 and 2, and at the end


def _with_a_truncated_val_image(data: Path, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A copy of the set whose first validation image is cut short: (the copy, that image, its bytes before)."""
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    bad = sorted((copy / "val").rglob("*.png"))[0]
    return copy, bad, _truncate(bad)


def test_a_validation_that_failed_runs_first_when_the_run_resumes(data, tmp_path, capsys):
    copy, bad, whole = _with_a_truncated_val_image(data, tmp_path)
    run = tmp_path / "run"
    assert _train(copy, run, "train.epochs=2") == 2
    assert read_checkpoint(run / "last.pt")[2]["validation_due"] is True
    bad.write_bytes(whole)
    assert _train(copy, run, "train.epochs=2", "--resume") == 0
    log = (run / "last_logs" / "train.jsonl").read_text()
    validated = [line for line in log.splitlines() if '"kind": "val"' in line]
    assert len(validated) == 2 and '"epoch": 1' in validated[0] and '"epoch": 2' in validated[1]
    assert (run / "best.pt").is_file()


def test_a_stop_during_validation_ends_it_at_the_next_image_and_the_resumed_run_validates_first(
    data, tmp_path, monkeypatch, capsys
):
    """Ctrl-C during a validation waited for all of it (minutes on a large set) before the run stopped and saved."""
    import os
    import signal

    import darkir.train.validation

    run, scored = tmp_path / "run", []
    prepare = darkir.train.validation.prepare

    def stopped_at_the_first_image(*args: object, **kwargs: object) -> object:
        if not scored:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first validation image is restored
        scored.append(1)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(darkir.train.validation, "prepare", stopped_at_the_first_image)
    assert _train(data, run) == 130  # (interrupted)
    out, err = capsys.readouterr()
    assert len(scored) == 1 and "epoch 1: validation stopped; it runs first when the run resumes" in out
    assert "SIGINT: stopping after this validation image and saving" in err  # it said "after this step"
    payload = read_checkpoint(run / "last.pt")[2]
    assert payload["validation_due"] is True and payload["step"] == 2 and not (run / "best.pt").exists()
    monkeypatch.undo()
    assert _train(data, run, "--resume") == 0
    validated = [line for line in (run / "last_logs" / "train.jsonl").read_text().splitlines() if '"val"' in line]
    assert len(validated) == 1 and '"epoch": 1' in validated[0] and (run / "best.pt").is_file()


def test_a_full_disk_at_the_best_checkpoint_names_it_and_keeps_the_best_score_before(
    data, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    save = Trainer.save
    full = []

    def disk_fills_at_best(self: Trainer, path: Path | None = None) -> Path:
        if path == self.best_path or full:
            full.append(path)
            raise CheckpointError(f"no space left on device writing {path or self.last_path}; the previous one is kept")
        return save(self, path)

    monkeypatch.setattr(Trainer, "save", disk_fills_at_best)
    assert _train(data, run) == 2
    error = _one_error(capsys.readouterr().err)
    assert error.startswith(f"darkir: error: save.best: no space left on device writing {run / 'best.pt'}")
    assert read_checkpoint(run / "last.pt")[2]["best_psnr"] is None  # so a resumed run saves its next best


def test_a_due_validation_is_dropped_when_the_resumed_run_no_longer_validates(data, tmp_path, capsys):
    copy, bad, whole = _with_a_truncated_val_image(data, tmp_path)
    run = tmp_path / "run"
    assert _train(copy, run, "train.epochs=3") == 2
    assert _train(copy, run, "train.epochs=3", "datasets.val.test_path=null", "--resume", "--max-steps", "3") == 0
    assert read_checkpoint(run / "last.pt")[2]["validation_due"] is False
    bad.write_bytes(whole)
    assert _train(copy, run, "train.epochs=3", "--resume") == 0
    records = [json.loads(line) for line in (run / "last_logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [4, 6]  # at the ends of epochs 2 and 3, not at 3


def test_a_resumed_run_whose_best_checkpoint_is_gone_writes_one_again(data, tmp_path, capsys):
    """Resumed without its best.pt, the run kept its best score, so that validations scoring lower wrote none
    again: it ended without a best checkpoint, its summary saying "-> None"."""
    run, hard = tmp_path / "run", tmp_path / "hard"
    assert _train(data, run, "train.epochs=2", "--max-steps", "2") == 0
    first = read_checkpoint(run / "best.pt")[2]["best_psnr"]
    (run / "best.pt").unlink()
    shutil.copytree(data / "val", hard)
    for index, reference in enumerate(sorted(hard.rglob("high_sharp_scaled/**/*.png"))):  # none an output comes near
        noise = np.random.default_rng(index).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        cv2.imwrite(str(reference), noise)
    capsys.readouterr()
    assert _train(data, run, "train.epochs=2", "--resume", f"datasets.val.test_path={hard}") == 0
    out, err = capsys.readouterr()
    assert f"save.best {run / 'best.pt'} holds no checkpoint (deleted, or save.best renamed): the run's best" in err
    assert f"validation so far ({first:.2f} dB) is not there" in err and "chosen on the earlier" not in err
    assert f"-> {run / 'best.pt'}" in out and read_checkpoint(run / "best.pt")[2]["best_psnr"] < first


def test_a_run_resumed_without_its_validation_set_says_so(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2", "--max-steps", "2") == 0
    capsys.readouterr()
    assert _train(data, run, "train.epochs=2", "--resume", "datasets.val.test_path=null") == 0
    err = capsys.readouterr().err
    assert f"--resume continues {run / 'last.pt'} without a validation set (none is set now): no best" in err
    assert f"{run / 'best.pt'} keeps its best checkpoint" in err


def test_a_run_that_never_validated_is_not_said_to_have_a_best_checkpoint_when_resumed_with_validation(
    data, tmp_path, capsys
):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2", "--max-steps", "2", validate=False) == 0
    capsys.readouterr()
    assert _train(data, run, "train.epochs=2", "--resume") == 0
    err = capsys.readouterr().err
    assert "validates the run" in err and "it has no best checkpoint yet, so its next validation writes one" in err
    assert "chosen on the earlier" not in err and (run / "best.pt").is_file()


def test_max_steps_a_resumed_run_has_passed_says_no_step_is_taken(data, tmp_path, capsys):
    """``--resume --max-steps 1`` on a run at step 2 ended at once, exit 0, without a word."""
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=3", "--max-steps", "2") == 0
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert _train(data, run, "train.epochs=3", "--resume", "--max-steps", "1") == 0
    assert "--max-steps 1 (steps in all, not more steps): the run is at step 2 already" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == before


def test_another_run_named_like_a_step_snapshot_is_not_one(data, tmp_path):
    run = tmp_path / "run"
    assert _train(data, run, f"save.path={run / 'last_step2.pt'}", f"save.best={run / 'best2.pt'}") == 0
    theirs = (run / "last_step2.pt").read_bytes()
    assert _train(data, run) == 0  # last.pt: a new run beside it, not refused
    assert (run / "last_step2.pt").read_bytes() == theirs


def test_resume_takes_the_higher_best_score_of_its_best_checkpoint(data, tmp_path):
    from darkir.checkpoint import save_checkpoint
    from darkir.models.config import ModelConfig
    from darkir.models.factory import create_model

    run = tmp_path / "run"
    assert _train(data, run) == 0
    best = read_checkpoint(run / "best.pt")[2]["best_psnr"]
    state_dict, config, payload = read_checkpoint(run / "last.pt")
    model = create_model(ModelConfig(**config))
    model.load_state_dict(state_dict)
    save_checkpoint(run / "last.pt", model, **{**payload, "best_psnr": None})  # stopped before the last save
    trainer = Trainer(load_options(OPTIONS, tiny_run_overrides(data, run, "train.epochs=2")))
    assert trainer.resume() and trainer.best_psnr == best


def test_resume_with_only_step_snapshots_names_the_newest(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, "train.keep_every_steps=1", validate=False) == 0
    (run / "last.pt").unlink()
    capsys.readouterr()
    assert _train(data, run, "--resume", validate=False) == 2
    error = _one_error(capsys.readouterr().err)
    newest = run / "last_step000002.pt"
    assert f"nothing to resume, {run / 'last.pt'} does not exist (its newest step snapshot is {newest}" in error


def test_a_run_that_lost_its_last_checkpoint_is_told_its_best_one_continues_it(data, tmp_path, capsys):
    """A run killed as it wrote its first last checkpoint (an older darkir wrote the best one first) was pointed at
    --restart only, which backs up what it trained; its best checkpoint holds a state to continue from."""
    run = tmp_path / "run"
    assert _train(data, run) == 0
    (run / "last.pt").unlink()
    capsys.readouterr()
    assert _train(data, run) == 2
    error = _one_error(capsys.readouterr().err)
    assert f"if it is this run's, copy it to {run / 'last.pt'} and pass --resume" in error
    assert _train(data, run, "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"(its best checkpoint {run / 'best.pt'} holds the run's state at its best step: copy it there" in error


def test_a_missing_run_is_not_pointed_at_the_best_checkpoint_of_another_run_sharing_save_best(data, tmp_path, capsys):
    """--resume of a save.path that never existed offered the best checkpoint of another run (whose last checkpoint
    is there) sharing its save.best: "copy it there to continue from it" would have forked that run."""
    run = tmp_path / "run"
    assert _train(data, run) == 0
    capsys.readouterr()
    assert _train(data, run, f"save.path={run / 'none.pt'}", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"nothing to resume, {run / 'none.pt'} does not exist" in error and "best checkpoint" not in error


def test_a_damaged_last_checkpoint_is_not_pointed_at_the_best_checkpoint_of_another_run(data, tmp_path, capsys):
    """A --resume that could not read its cut-short last checkpoint offered any file at save.best to copy over it,
    the best checkpoint of another run sharing that save.best included, which would fork that run."""
    run = tmp_path / "run"
    assert _train(data, run) == 0  # the run of run/last.pt, whose best is run/best.pt
    assert _train(data, run, f"save.path={run / 'other.pt'}", f"save.best={run / 'other_best.pt'}") == 0
    (run / "other.pt").write_bytes((run / "other.pt").read_bytes()[:1000])
    capsys.readouterr()
    assert _train(data, run, f"save.path={run / 'other.pt'}", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"{run / 'other.pt'}" in error and "to continue from an earlier step" not in error


def test_official_weights_as_save_path_are_told_apart_from_a_run(data, tmp_path, capsys):
    """An official file's save.path (the weights its training code fine-tuned, writing to save.new) was "holds an
    earlier run; pass --resume ... or --restart", and --restart moved the weights away and trained from random ones."""
    import torch

    run = tmp_path / "run"
    assert _train(data, run) == 0
    official = tmp_path / "official" / "pretrained.pt"
    official.parent.mkdir()
    torch.save({"params": read_checkpoint(run / "last.pt")[0]}, official)
    capsys.readouterr()
    for extra in ((), ("--init-from", str(official))):
        assert _train(data, run, f"save.path={official}", "save.new=./models/new.pt", *extra) == 2
        error = _one_error(capsys.readouterr().err)
        assert f"save.path: {official} holds weights, not a darkir training run" in error
        assert f"pass --init-from={official} and give save.path another file" in error and "save.new" in error
    assert official.is_file() and _train(data, run / "tuned", "--init-from", str(official)) == 0


def test_a_run_resumed_mid_epoch_on_a_smaller_set_trains_every_epoch_it_has_left(data, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    run = tmp_path / "run"
    settings = ("train.epochs=2", "datasets.train.batch_size_train=1")
    assert _train(copy, run, *settings, "--max-steps", "3") == 0  # 3 steps of the first epoch's 4
    for half in (copy / "train").glob("*/photo2"):
        shutil.rmtree(half)  # 2 pairs left: 2 steps an epoch, so the first epoch is done
    assert _train(copy, run, *settings, "--resume") == 0
    state = read_checkpoint(run / "last.pt")[2]
    assert (state["step"], state["epoch"], state["epoch_step"]) == (5, 2, 0)  # the second epoch whole
    records = [json.loads(line) for line in (run / "last_logs" / "train.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [1, 2]  # and the last validation


def test_resume_takes_a_folder_written_otherwise_for_the_same_folder(tmp_path, monkeypatch):
    """The same folder with a trailing slash, under ``~`` or as its absolute path was "other training data" and
    "another set" on --resume (a new best then had to beat a score on "another set")."""
    from darkir.train.resume import data_changes, validation_changes

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    stored = {"datasets": {"train": {"train_path": "./data/train"}, "val": {"test_path": "data/val"}}}
    for train, val in (("./data/train/", "data/val/"), ("~/data/train", str(tmp_path / "data" / "val"))):
        options = {"datasets": {"train": {"train_path": train}, "val": {"test_path": val}}}
        assert data_changes(tmp_path / "last.pt", options, stored, 10) is None
        assert validation_changes(tmp_path / "last.pt", options, stored, 20.0) is None
    other = {"datasets": {"train": {"train_path": "./data/other"}, "val": {"test_path": "data/val"}}}
    assert "datasets.train.train_path ./data/train -> ./data/other" in data_changes(tmp_path / "l.pt", other, stored, 1)
