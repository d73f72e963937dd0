"""A run's files never replace one another, the options file given, or data: save paths that would are refused
before any work, ``--restart`` backs up only the run's own files, and a resume to a length already reached is refused
with the checkpoint left as it was.

Each test trains a tiny model on a tiny synthetic set through ``darkir.cli.main``, a few steps at most.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from darkir.checkpoint import read_checkpoint
from darkir.cli import main
from tests.conftest import REPO, tiny_run_overrides

OPTIONS = REPO / "options" / "train" / "tiny_csf.yml"


@pytest.fixture(scope="module")
def data(tiny_synth_set: Path) -> Path:
    return tiny_synth_set


def _train(data: Path, run: Path, *extra: str, options: Path = OPTIONS) -> int:
    """``darkir train`` on the tiny run; ``extra``: more overrides and flags."""
    return main(["train", "-p", str(options), *tiny_run_overrides(data, run), "-q", *extra])


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by its path relative to it."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error(err: str) -> str:
    """The single ``darkir: error:`` line of ``err``."""
    lines = [line for line in err.strip().splitlines() if line.startswith("darkir: error:")]
    assert len(lines) == 1, err
    return lines[0]


# 2 and 2b. A checkpoint that another file of the run would replace is refused before any work.
@pytest.mark.parametrize(
    ("setting", "key", "words"),
    [
        ("save.best={run}/last.yml", "save.best", "ends in .yml"),
        ("save.path={run}/model.yml", "save.path", "ends in .yml"),
        ("save.path={run}/model.YAML", "save.path", "ends in .YAML"),
        ("save.best={run}/last.pth", "save.best", "would be both the best checkpoint's options file and the last"),
        ("save.best={run}/last_logs/train.jsonl", "save.best", "is in the log folder"),
        ("save.best={run}/last_logs/best.pt", "save.best", "is in the log folder"),
        ("save.best={run}/last_step000001.pt", "save.best", "is named like a step snapshot of save.path"),
        ("save.best={run}/last_step000002.yml", "save.best", "ends in .yml"),
        ("save.best={run}/last_step000002.pth", "save.best", "is named like a step snapshot of save.path"),
    ],
)
def test_files_of_the_run_that_would_replace_one_another_are_refused(data, tmp_path, capsys, setting, key, words):
    run = tmp_path / "run"
    run.mkdir()
    assert _train(data, run, setting.format(run=run), "train.keep_every_steps=1", "--max-steps", "2") == 2
    error = _one_error(capsys.readouterr().err)
    assert f": {key}: " in error and words in error and "nothing was trained or written" in error
    assert not any(run.iterdir())


def test_a_log_file_name_in_a_given_log_dir_is_refused(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(data, run, f"train.log_dir={run}", f"save.best={run}/train.jsonl") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.best: {run}/train.jsonl (the best checkpoint) is in the log folder {run}" in error
    assert not run.exists() or not any(run.iterdir())


def test_a_home_folder_in_save_paths_and_log_dir_is_the_users_as_test_reads_it(data, tmp_path, monkeypatch, capsys):
    """``save.path: ~/run/m.pt`` trained into a folder named ``~`` in the current folder, where ``darkir test`` and
    ``restore`` (which expand ``~``) then found nothing; a user removing that folder with ``rm -rf ~`` would lose
    their home."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    paths = ["save.path=~/run/m.pt", "save.best=~/run/best.pt", "train.log_dir=~/logs"]
    assert _train(data, tmp_path, *paths) == 0
    assert not (here / "~").exists()
    assert {"m.pt", "m.yml", "best.pt", "best.yml"} <= {p.name for p in (home / "run").iterdir()}
    assert any((home / "logs").iterdir())
    capsys.readouterr()
    assert main(["test", "-p", str(home / "run" / "m.yml"), "--data", str(data / "val"), "--no-lpips", "-q"]) == 0
    assert "PSNR" in capsys.readouterr().out


def test_a_resume_with_another_batch_size_saves_the_batch_the_run_keeps(data, tmp_path, capsys):
    """The run keeps its samples per step; the options saved beside the checkpoint said the batch given instead, so
    a run made again from them would have taken another batch."""
    import yaml

    run = tmp_path / "run"
    assert _train(data, run, "--max-steps", "1") == 0
    assert _train(data, run, "--resume", "datasets.train.batch_size_train=4") == 0
    assert "2 per process (not datasets.train.batch_size_train 4" in capsys.readouterr().out
    saved = yaml.safe_load((run / "last.yml").read_text())
    assert saved["datasets"]["train"]["batch_size_train"] == 2
    _, _, payload = read_checkpoint(run / "last.pt")
    assert payload["global_batch"] == 2 and payload["options"]["datasets"]["train"]["batch_size_train"] == 2


# 3. The options file given is never written over nor moved into a backup.
def _own_options(folder: Path) -> Path:
    """A copy of the tiny options with a comment of the user's, as ``folder/model.yml``."""
    folder.mkdir(parents=True)
    options = folder / "model.yml"
    options.write_text(OPTIONS.read_text() + "# MY NOTES: keep this file!\n")
    return options


def test_an_options_file_beside_a_checkpoint_of_its_name_is_refused(data, tmp_path, capsys):
    exp = tmp_path / "exp"
    options = _own_options(exp)
    before = options.read_bytes()
    code = main(["train", "-p", str(options), *tiny_run_overrides(data, exp), f"save.path={exp / 'model.pt'}", "-q"])
    error = _one_error(capsys.readouterr().err)
    assert code == 2 and f"save.path: the run would write the last checkpoint's options file over {options}" in error
    assert f"e.g. {exp / 'model_run.pt'}" in error and "nothing was trained or written" in error
    assert options.read_bytes() == before and sorted(p.name for p in exp.iterdir()) == ["model.yml"]


def test_restart_never_moves_the_options_file_given(data, tmp_path, capsys):
    run = tmp_path / "run"
    options = _own_options(run / "last_logs")  # the options file in the run's default log folder
    before = options.read_bytes()
    args = ["train", "-p", str(options), *tiny_run_overrides(data, run), "-q"]
    assert main(args) == 0 and main([*args, "--restart"]) == 0
    assert options.read_bytes() == before
    (backup,) = (run / "last_logs").glob("backup-*")
    assert (backup / "train.jsonl").is_file() and not (backup / "model.yml").exists()
    assert len((run / "last_logs" / "train.jsonl").read_text().splitlines()) >= 1


# 4. train.log_dir: never a data folder; --restart backs up only the run's own log files there.
@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("{data}/train", "is datasets.train.train_path"),
        ("{data}", "holds datasets.train.train_path"),
        ("{data}/val/x", "lies in datasets.val.test_path"),
    ],
)
def test_a_log_dir_that_is_holds_or_lies_in_data_is_refused(data, tmp_path, capsys, where, key):
    before = _files(data)
    assert _train(data, tmp_path / "run", f"train.log_dir={where.format(data=data)}", "--restart") == 2
    error = _one_error(capsys.readouterr().err)
    assert "train.log_dir: " in error and key in error and "give the logs a folder of their own" in error
    assert _files(data) == before and not (tmp_path / "run").exists()


def test_restart_backs_up_only_the_runs_log_files_in_a_given_log_dir(data, tmp_path, capsys):
    run, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    (logs / "notes.txt").write_text("another run's notes")
    (logs / "other").mkdir()
    assert _train(data, run, f"train.log_dir={logs}") == 0
    first = (logs / "train.jsonl").read_bytes()
    events = sorted(p.name for p in logs.glob("events.out.tfevents.*"))
    assert _train(data, run, f"train.log_dir={logs}", "--restart") == 0
    (backup,) = logs.glob("backup-*")
    assert sorted(p.name for p in backup.iterdir()) == sorted(["train.jsonl", *events])
    assert (backup / "train.jsonl").read_bytes() == first
    assert (logs / "notes.txt").read_text() == "another run's notes" and (logs / "other").is_dir()


# 5. No checkpoint of the run in a data folder (--restart would move an image named like it and write over it), and
# no options file of the user's silently replaced by a checkpoint's.
@pytest.mark.parametrize(
    ("setting", "key", "where"),
    [
        ("save.path={data}/train/low_blur_noise/ck.pt", "save.path", "lies in datasets.train.train_path"),
        ("save.best={data}/val/high_sharp_scaled/{name}", "save.best", "lies in datasets.val.test_path"),
        ("save.path={data}/val/last.pt", "save.path", "lies in datasets.val.test_path"),
    ],
)
def test_a_checkpoint_in_a_data_folder_is_refused(data, tmp_path, capsys, setting, key, where):
    own = tmp_path / "data"
    shutil.copytree(data, own)
    name = next((own / "val" / "high_sharp_scaled").iterdir()).name  # an image, as a --restart would find it
    before = _files(own)
    assert _train(own, tmp_path / "run", setting.format(data=own, name=name), "--restart") == 2
    error = _one_error(capsys.readouterr().err)
    assert f": {key}: " in error and where in error and "give the checkpoints a folder of their own" in error
    assert _files(own) == before and not (tmp_path / "run").exists()


def test_an_options_file_of_the_users_beside_a_new_checkpoint_is_refused(data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    mine = run / "best.yml"
    mine.write_text("my: precious\n")
    assert _train(data, run) == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.best: {mine} exists, but not the checkpoint {run / 'best.pt'}" in error
    assert sorted(p.name for p in run.iterdir()) == ["best.yml"] and mine.read_text() == "my: precious\n"
    assert _train(data, run, "--restart") == 0
    (backup,) = run.glob("backup-*")
    assert (backup / "best.yml").read_text() == "my: precious\n"
    assert (run / "last.pt").is_file() and (run / "best.yml").read_text() != "my: precious\n"


@pytest.mark.parametrize("where", ["a listed folder", "the set's root"])
def test_a_checkpoint_in_a_folder_of_a_split_manifest_is_refused(data, tmp_path, capsys, where):
    """A manifest names its images' folders only inside it: a checkpoint among them was written there. So was one in
    the set's root (above its ``low_blur_noise/`` and ``high_sharp_scaled/``), as were reports and triplets of darkir
    test and compare given the manifest (found by an outside test)."""
    own = tmp_path / "data"
    shutil.copytree(data / "train", own)
    lows = sorted((own / "low_blur_noise").rglob("*.png"))
    names = [str(low.relative_to(own)) for low in lows]
    entries = [[name, name.replace("low_blur_noise", "high_sharp_scaled")] for name in names]
    manifest = tmp_path / "split.json"
    manifest.write_text(json.dumps({"root": str(own), "splits": {"train": entries}}))
    folder = lows[0].parent if where == "a listed folder" else own
    before = _files(own)
    capsys.readouterr()
    overrides = [f"datasets.train.train_path={manifest}", f"save.path={folder / 'm.pt'}"]
    assert _train(data, tmp_path / "run", *overrides, "datasets.val.test_path=null") == 2
    assert f"lies in a folder datasets.train.train_path lists ({folder})" in _one_error(capsys.readouterr().err)
    assert _files(own) == before


def test_a_run_refused_after_taking_its_folder_leaves_no_folder_it_made(tmp_path, capsys):
    """A run refused for its data (read once the run's lock is taken) left the folders of save.path made."""
    (tmp_path / "empty").mkdir()
    run = tmp_path / "new" / "deep"
    overrides = [f"datasets.train.train_path={tmp_path / 'empty'}", "datasets.val.test_path=null"]
    assert main(["train", "-p", str(OPTIONS), *overrides, f"save.path={run / 'last.pt'}", "-q"]) == 2
    assert "no known paired layout" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


# 6. A resume to a length the run has already reached: refused, the checkpoint left byte for byte.
@pytest.mark.parametrize("epochs", [1, 2])
def test_a_resume_shorter_than_the_steps_done_is_refused(data, tmp_path, capsys, epochs):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=3", "--max-steps", "4") == 0
    before = _files(run)
    capsys.readouterr()
    assert _train(data, run, f"train.epochs={epochs}", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"train.epochs: the run in {run / 'last.pt'} has done 4 steps (2 epochs)" in error
    said = "1 epoch" if epochs == 1 else f"{epochs} epochs"  # ("1 epochs" before)
    assert f"{said} of 2 steps make {2 * epochs}" in error and "set train.epochs to 3 or more" in error
    assert _files(run) == before
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4


def test_a_finished_run_resumed_with_fewer_epochs_is_refused(data, tmp_path, capsys):
    """A run that finished its 2 epochs, resumed with train.epochs=1, was taken: its checkpoint and options were
    rewritten to say 1 epoch after 2 were trained."""
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2") == 0
    before = _files(run)
    capsys.readouterr()
    assert _train(data, run, "train.epochs=1", "--resume") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"train.epochs: the run in {run / 'last.pt'} has done 4 steps (2 epochs)" in error
    assert "set train.epochs to 3 or more" in error
    assert _files(run) == before


def test_resuming_a_finished_run_writes_nothing(data, tmp_path, capsys):
    """A finished run resumed with its own settings has nothing to train: its checkpoint and options were rewritten
    (the same contents, other bytes), now they are left as they are."""
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=2") == 0
    before = {name: data for name, data in _files(run).items() if not name.endswith("train.jsonl")}
    assert _train(data, run, "train.epochs=2", "--resume") == 0
    assert {name: data for name, data in _files(run).items() if not name.endswith("train.jsonl")} == before


def test_a_longer_resume_still_continues(data, tmp_path):
    run = tmp_path / "run"
    assert _train(data, run, "train.epochs=3", "--max-steps", "2") == 0
    assert _train(data, run, "train.epochs=2", "--resume") == 0
    assert read_checkpoint(run / "last.pt")[2]["step"] == 4
    shutil.rmtree(run)


def test_restart_leaves_other_runs_whose_names_start_like_a_snapshot(data, tmp_path, capsys):
    run = tmp_path / "run"
    other = run / "last_step2_finetune.pt"  # another run's checkpoint, not a step snapshot of last.pt
    other.parent.mkdir()
    other.write_bytes(b"another run")
    assert _train(data, run, "train.keep_every_steps=1") == 0
    assert (run / "last_step000001.pt").is_file()
    assert _train(data, run, "--restart") == 0
    assert other.read_bytes() == b"another run"
    backups = [p.name for p in run.glob("backup-*/*")]
    assert "last_step000001.pt" in backups and "last_step2_finetune.pt" not in backups


def test_a_best_checkpoint_alone_is_named_as_save_best(data, tmp_path, capsys):
    shared = tmp_path / "shared_best.pt"
    assert _train(data, tmp_path / "a", f"save.best={shared}") == 0
    before = shared.read_bytes()
    capsys.readouterr()
    assert _train(data, tmp_path / "b", f"save.best={shared}") == 2
    error = _one_error(capsys.readouterr().err)
    assert f"save.best: {shared} holds an earlier run's best checkpoint" in error and "is gone" not in error
    assert "give this run its own save.best" in error and shared.read_bytes() == before


def test_an_existing_folder_with_a_dot_is_a_save_best_folder(data, tmp_path):
    folder = tmp_path / "best.d"
    folder.mkdir()
    assert _train(data, tmp_path / "run", f"save.best={folder}") == 0
    assert (folder / "last_best.pt").is_file()
