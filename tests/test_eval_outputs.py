"""Evaluation commands never touch their inputs and check where they write before any work."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from darkir.cli import main
from tests.conftest import TINY


def _images(folder: Path, count: int = 2, size: tuple[int, int] = (40, 56)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"img{i}.png"), (rng.random((*size, 3)) * 60).astype(np.uint8))
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_test_unpaired_refuses_to_write_into_its_data_folder(tmp_path, tiny_checkpoint, capsys):
    data = _images(tmp_path / "dark")
    before = _digests(data)
    assert main(["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(data), "-o", str(data), "-q"]) == 2
    assert "inside the output folder" in capsys.readouterr().err
    assert _digests(data) == before  # the user's images are untouched, nothing added


def test_test_unpaired_refuses_a_paired_set_whose_references_it_would_restore(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "lol"
    _images(data / "low")
    _images(data / "high")
    weights = ["--weights", str(tiny_checkpoint)]
    assert main(["test-unpaired", *weights, "--data", str(data), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert f"pass --data {data / 'low'}, or score the pairs with darkir test" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    options = tmp_path / "All_LOL.yml"
    options.write_text(yaml.safe_dump({"datasets": {"name": "All_LOL", "val": {"test_path": str(tmp_path)}}}))
    assert main(["test-unpaired", *weights, "-p", str(options), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "datasets.name All_LOL names paired test sets" in capsys.readouterr().err
    assert main(["test-unpaired", *weights, "--data", str(data / "low"), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert "input (2 images)" in capsys.readouterr().out
    (data / "high" / "img1.png").rename(data / "high" / "other.png")  # low/ and high/ that do not pair: restored
    assert main(["test-unpaired", *weights, "--data", str(data), "-o", str(tmp_path / "out2"), "-q"]) == 0
    assert "input (4 images)" in capsys.readouterr().out


def test_test_unpaired_output_inside_the_data_folder_is_not_read_back_as_input(tmp_path, tiny_checkpoint, capsys):
    data = _images(tmp_path / "dark")
    out = data / "restored"
    for _ in range(2):
        assert (
            main(["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(data), "-o", str(out), "-q"]) == 0
        )
    assert "input (2 images)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "stats.csv"]


def test_test_unpaired_writes_to_the_options_results_dir(tmp_path, tiny_checkpoint, monkeypatch):
    data = _images(tmp_path / "dark")
    options = tmp_path / "test.yml"
    network = {"name": "darkir-csf-w32", "use_csf": True, **TINY}
    options.write_text(
        yaml.safe_dump(
            {"datasets": {"val": {"test_path": str(data)}}, "network": network, "save": {"results_dir": "mine"}}
        )
    )
    monkeypatch.chdir(tmp_path)
    assert main(["test-unpaired", "--weights", str(tiny_checkpoint), "-p", str(options), "-q"]) == 0
    assert (tmp_path / "mine" / "img0.png").is_file() and not (tmp_path / "images").exists()


@pytest.mark.parametrize(
    "command, message",
    [
        (["test", "--csv", "{out}"], "is a folder"),
        (["test", "--csv", "{file}/x.csv"], "is a file"),
        (["compare", "-o", "{file}", "--no-lpips"], "is a file"),
        (["test-unpaired", "-o", "{file}"], "is a file"),
    ],
)
def test_a_bad_output_path_fails_in_one_line_before_any_work(
    tmp_path, tiny_checkpoint, monkeypatch, capsys, command, message
):
    data = tmp_path / "set"
    _images(data / "low")
    _images(data / "high")
    (tmp_path / "out").mkdir()
    (tmp_path / "afile").write_text("keep me")
    monkeypatch.setattr("darkir.cli.common.restorer_from_args", lambda *a, **k: pytest.fail("work began"))
    monkeypatch.setattr("darkir.cli.evaluate.restorer_from_args", lambda *a, **k: pytest.fail("work began"))
    argv = [part.format(out=tmp_path / "out", file=tmp_path / "afile") for part in command]
    data_arg = str(data / "low") if command[0] == "test-unpaired" else str(data)
    assert main([*argv, "--weights", str(tiny_checkpoint), "--data", data_arg, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("darkir: error:") and message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "afile").read_text() == "keep me"


def test_metrics_names_the_outputs_folder_given_as_dot(tmp_path, monkeypatch, capsys):
    pred, gt = _images(tmp_path / "restored"), _images(tmp_path / "gt")
    monkeypatch.chdir(pred)
    assert main(["metrics", ".", str(gt), "--csv", str(tmp_path / "m.csv"), "-q"]) == 0
    assert capsys.readouterr().out.startswith("restored:")
    assert (tmp_path / "m.csv").read_text().splitlines()[1].split(",")[1] == "restored"


def test_test_unpaired_leaves_out_the_results_of_runs_into_other_folders_of_the_data(tmp_path, tiny_checkpoint, capsys):
    """Results written by an earlier run into another folder inside the data (-o dark/r1, then -o dark/r2) are
    restored images, not inputs: they are left out, named in one warning, not scored as new inputs."""
    data = _images(tmp_path / "dark")
    weights = ["--weights", str(tiny_checkpoint), "--data", str(data), "-q"]
    assert main(["test-unpaired", *weights, "-o", str(data / "r1")]) == 0
    capsys.readouterr()
    assert main(["test-unpaired", *weights, "-o", str(data / "r2")]) == 0
    captured = capsys.readouterr()
    assert "input (2 images)" in captured.out
    assert (
        f"darkir: warning: left out 2 images in results folders of earlier runs inside the data ({data / 'r1'}), "
        "not inputs: r1/img0.png, r1/img1.png" in captured.err
    )
    assert sorted(p.name for p in (data / "r2").iterdir()) == ["img0.png", "img1.png", "stats.csv"]


def test_test_unpaired_into_an_earlier_runs_folder_removes_that_runs_other_outputs(tmp_path, tiny_checkpoint):
    """Rerun into the folder of a run over more images, the earlier outputs this run does not write again (another
    model's, of other inputs) are removed: the folder holds this run's results only; files of the user's stay."""
    out = tmp_path / "out"
    weights = ["--weights", str(tiny_checkpoint), "-o", str(out), "-q"]
    assert main(["test-unpaired", "--data", str(_images(tmp_path / "three", count=3)), *weights]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["test-unpaired", "--data", str(_images(tmp_path / "one", count=1)), *weights]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "notes.txt", "stats.csv"]


def test_compare_unpaired_refuses_a_paired_set_whose_references_it_would_restore(tmp_path, tiny_checkpoint, capsys):
    data = tmp_path / "lol"
    _images(data / "low")
    _images(data / "high")
    args = ["compare", "--weights", str(tiny_checkpoint), "--data", str(data), "--unpaired", "-o", str(tmp_path / "c")]
    assert main([*args, "--no-lpips", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{data} is a paired set (low/ + high/): compare --unpaired would restore its references as inputs" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("results", ["scores.csv", "scores.csv/sets"])
def test_test_refuses_a_csv_where_its_triplets_go_before_any_work(
    tmp_path, tiny_checkpoint, monkeypatch, capsys, results
):
    data = tmp_path / "set"
    _images(data / "low")
    _images(data / "high")
    monkeypatch.setattr("darkir.cli.evaluate.restorer_from_args", lambda *a, **k: pytest.fail("work began"))
    csv, triplets = tmp_path / "scores.csv", tmp_path / results
    argv = ["test", "--data", str(data), "--csv", str(csv), "--results-dir", str(triplets), "--save", "2"]
    assert main([*argv, "--weights", str(tiny_checkpoint), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"darkir: error: --csv {csv} is where the triplets go (--results-dir {triplets}) or a folder above" in err
    assert not csv.exists()
