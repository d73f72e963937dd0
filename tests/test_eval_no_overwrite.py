"""Evaluation commands never write over or among their inputs: --csv files, test-unpaired's -o, compare's reports."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

import darkir.eval.unpaired
from darkir.cli import main


def _png(path: Path, seed: int, shape: tuple[int, int] = (48, 64), scale: float = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (np.random.default_rng(seed).random((*shape, 3)) * scale).astype(np.uint8))
    return path


def _paired(root: Path, names: tuple[str, ...] = ("a", "b")) -> Path:
    for seed, name in enumerate(names):
        _png(root / "low" / f"{name}.png", seed, scale=40)
        _png(root / "high" / f"{name}.png", seed + 10)
    return root


def _digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative name -> sha256): a change, an addition or a removal shows."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line of error the last command printed."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("darkir: error: "), err
    return lines[0]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command loads weights or scores an image."""

    import darkir.eval.compare  # noqa: F401  (it binds evaluate as it loads: loaded later, it would keep `fail`)

    def fail(*args: object, **kwargs: object) -> None:
        pytest.fail("work began before the output was checked")

    for target in (
        "darkir.cli.evaluate.restorer_from_args",
        "darkir.cli.compare.trained_model",
        "darkir.eval.paired.evaluate",
        "darkir.eval.noreference.score_folder",
    ):
        monkeypatch.setattr(target, fail)


# 1. --csv of metrics and test: a .csv, never among the inputs, an existing file only with --overwrite, atomic.


def test_metrics_csv_keeps_an_existing_file_unless_overwrite(tmp_path, capsys):
    data = _paired(tmp_path / "set")
    results = tmp_path / "results.csv"
    results.write_text("keep me\n")
    args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(results)]
    assert main(args) == 2
    assert f"--csv {results} exists; pass --overwrite" in _error(capsys)
    assert results.read_text() == "keep me\n"
    assert main([*args, "--overwrite"]) == 0
    assert results.read_text().startswith("image,method,psnr")


@pytest.mark.skipif(not Path("/proc/self").is_dir() or os.geteuid() != 0, reason="needs Linux's /proc, as root")
def test_a_csv_folder_no_file_can_be_made_in_is_refused_before_any_work(tmp_path, capsys, no_work):
    """/proc passes the permission bits' check for root; the CSV failed only once every image had been scored."""
    data = _paired(tmp_path / "set")
    for target in ("/proc/scores.csv", "/proc/new/scores.csv"):
        args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", target]
        assert main(args) == 2
        assert "output folder /proc is not writable" in _error(capsys)


def test_a_stopped_run_leaves_no_empty_csv_folder(tmp_path, capsys, monkeypatch):
    """``--csv out/t.csv`` made ``out/`` before any work: a run stopped (Ctrl-C) before it wrote the file left the
    empty folder behind. It is made as the file is written; a folder that could not be is still refused at once."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("darkir.eval.paired.evaluate", interrupted)
    data = _paired(tmp_path / "set")
    target = tmp_path / "out" / "sub" / "t.csv"
    assert main(["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(target)]) == 130
    assert not (tmp_path / "out").exists() and "interrupted" in capsys.readouterr().err
    (tmp_path / "file").write_text("not a folder")
    args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(tmp_path / "file/t.csv")]
    assert main(args) == 2
    assert "is a file" in _error(capsys)


def test_no_reference_metrics_csv_keeps_an_existing_file_unless_overwrite(tmp_path, capsys):
    data = _paired(tmp_path / "set")
    results = tmp_path / "niqe.csv"
    results.write_text("keep me\n")
    args = ["metrics", str(data / "low"), "-q", "--csv", str(results)]
    assert main(args) == 2
    assert "exists; pass --overwrite" in _error(capsys)
    assert results.read_text() == "keep me\n"
    assert main([*args, "--overwrite"]) == 0
    assert results.read_text().startswith("image,niqe,brightness,noise")


def test_test_csv_keeps_an_existing_file_unless_overwrite(tmp_path, capsys, tiny_checkpoint, monkeypatch):
    data = _paired(tmp_path / "set")
    results = tmp_path / "t.csv"
    results.write_text("keep me\n")
    args = ["test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "--save", "0", "-q"]
    with monkeypatch.context() as patch:
        patch.setattr("darkir.cli.evaluate.restorer_from_args", lambda *a, **k: pytest.fail("weights loaded"))
        assert main([*args, "--csv", str(results)]) == 2
    assert "exists; pass --overwrite" in _error(capsys)
    assert results.read_text() == "keep me\n"
    assert main([*args, "--csv", str(results), "--overwrite"]) == 0
    assert results.read_text().startswith("image,method,psnr")


@pytest.mark.parametrize(
    "command, csv, message",
    [
        (["metrics", "{low}", "{high}"], "{high}/a.png", "written to a .csv file"),
        (["metrics", "{low}", "{high}"], "{high}/scores.csv", "is inside the input folder"),
        (["metrics", "{low}", "{high}"], "{low}/sub/scores.csv", "is inside the input folder"),
        (["metrics", "{low}"], "{low}/a.png", "written to a .csv file"),
        (["metrics", "{low}"], "{low}/niqe.csv", "is inside the input folder"),
        (["test", "--data", "{set}"], "{set}/low/a.png", "written to a .csv file"),
        (["test", "--data", "{set}"], "{set}/scores.csv", "is inside the input folder"),
        (["test", "--data", "{set}/manifest.json"], "{set}/high/scores.csv", "is inside the input folder"),
        (["test", "--data", "{set}/manifest.json"], "{set}/scores.csv", "is inside the input folder"),  # its root
        (["test", "--data", "{set}"], "{weights}", "written to a .csv file"),
    ],
)
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_csv_is_never_written_over_or_among_the_inputs(
    tmp_path, capsys, tiny_checkpoint, no_work, command, csv, message, overwrite
):
    data = _paired(tmp_path / "set")
    manifest = {"root": ".", "splits": {"test": [["low/a.png", "high/a.png"], ["low/b.png", "high/b.png"]]}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    names = {"set": data, "low": data / "low", "high": data / "high", "weights": tiny_checkpoint}
    argv = [part.format(**names) for part in command]
    if argv[0] == "test":
        argv += ["--weights", str(tiny_checkpoint), "--save", "0"]
    before, weights = _digests(data), tiny_checkpoint.read_bytes()
    assert main([*argv, "--no-lpips", "-q", "--csv", csv.format(**names), *overwrite]) == 2
    assert message in _error(capsys)
    assert _digests(data) == before and tiny_checkpoint.read_bytes() == weights


def test_a_manifests_root_is_data_whatever_the_working_folder(tmp_path, capsys, tiny_checkpoint, no_work, monkeypatch):
    """The set's root a manifest lists its images under was data only where the working folder lay outside it: run
    from inside it (``cd set; darkir split .``), ``--csv scores.csv`` was written among the images (found in
    review)."""
    data = _paired(tmp_path / "set")
    manifest = {"root": "set", "splits": {"test": [["low/a.png", "high/a.png"], ["low/b.png", "high/b.png"]]}}
    (tmp_path / "split.json").write_text(json.dumps(manifest))
    before = _digests(data)
    monkeypatch.chdir(data)
    argv = ["test", "--data", "../split.json", "--weights", str(tiny_checkpoint), "--save", "0", "--no-lpips", "-q"]
    assert main([*argv, "--csv", "scores.csv"]) == 2
    assert f"--csv scores.csv is inside the input folder {data}" in _error(capsys)
    assert _digests(data) == before


def test_a_failed_csv_write_leaves_the_old_file(tmp_path, capsys, monkeypatch):
    data = _paired(tmp_path / "set")
    results = tmp_path / "results.csv"
    results.write_text("the old scores\n")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(results), "--overwrite"]
    assert main(args) == 2
    assert "No space left on device; nothing replaced" in capsys.readouterr().err
    assert results.read_text() == "the old scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "set"]  # no temporary file left


def test_scores_a_full_disk_keeps_from_their_csv_are_kept_in_the_temporary_folder(tmp_path, capsys, monkeypatch):
    """A --csv the disk filled up under at the end of a run had lost every per-image score the run computed."""
    import tempfile

    data, written = _paired(tmp_path / "set"), tmp_path / "written.csv"
    args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv"]
    assert main([*args, str(written)]) == 0
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("darkir.eval.reports.write_atomic", _full_disk)
    capsys.readouterr()
    assert main([*args, str(tmp_path / "results.csv")]) == 2
    [kept] = (tmp_path / "tmp").glob("darkir-unwritten-*/results.csv")
    assert f"No space left on device; nothing replaced; the rows are kept in {kept} instead" in _error(capsys)
    assert _rows(kept, "seconds") == _rows(written, "seconds")
    assert not (tmp_path / "results.csv").exists()


def test_a_csv_neither_its_folder_nor_the_temporary_folder_takes_is_said_to_be_lost(tmp_path, capsys, monkeypatch):
    import tempfile

    data = _paired(tmp_path / "set")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))
    monkeypatch.setattr("darkir.eval.reports.write_atomic", _full_disk)
    args = ["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(tmp_path / "a.csv")]
    assert main(args) == 2
    assert "the rows could not be kept in the temporary folder either: No such file or directory" in _error(capsys)


def test_rows_whose_folder_cannot_be_made_are_kept_in_the_temporary_folder(tmp_path):
    import tempfile

    from darkir.eval.reports import write_csv_rows
    from darkir.outputs import OutputError

    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(
        OutputError,
        match=r"cannot make its folder .*a_file \(a file is in the way\); the rows are kept in .*/scores.csv instead",
    ):
        write_csv_rows(tmp_path / "a_file" / "scores.csv", [["image", "psnr"], ["a.png", "20.5"]])
    [kept] = Path(tempfile.gettempdir()).glob("darkir-unwritten-*/scores.csv")
    assert kept.read_text().splitlines() == ["image,psnr", "a.png,20.5"]


def _full_disk(target: Path, *args: object, **kwargs: object) -> Path:
    import darkir.outputs

    raise darkir.outputs.DiskFullError(f"{target}: No space left on device; nothing replaced")


def _rows(path: Path, *dropped: str) -> list[dict[str, str]]:
    """The rows of the CSV file ``path``, less the ``dropped`` columns (timings, which differ from run to run)."""
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if k not in dropped} for row in csv.DictReader(handle)]


# 2. test-unpaired: an -o inside the data folder never replaces nor silently drops the user's photos.


def _photos(root: Path) -> Path:
    _png(root / "a.png", 0, scale=60)
    _png(root / "night" / "a.png", 1, shape=(64, 96), scale=60)  # the user's own photo, not an earlier result
    _png(root / "night" / "b.png", 2, shape=(64, 96), scale=60)
    return root


def test_test_unpaired_refuses_an_output_folder_inside_the_data_holding_photos(
    tmp_path, capsys, tiny_checkpoint, no_work
):
    photos = _photos(tmp_path / "photos")
    before = _digests(photos)
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-q"]
    assert main([*args, "-o", str(photos / "night")]) == 2
    line = _error(capsys)
    assert f"-o {photos / 'night'} is inside the data folder {photos}" in line
    assert "night/a.png, night/b.png" in line and "would be replaced" in line
    assert _digests(photos) == before  # nothing replaced, nothing added


def test_test_unpaired_reruns_into_its_results_inside_the_data_and_names_what_it_leaves_out(
    tmp_path, capsys, tiny_checkpoint
):
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    _png(photos / "b.png", 1, scale=60)
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(photos / "out"), "-q"]
    assert main(args) == 0
    assert "warning" not in capsys.readouterr().err  # a new output folder: nothing left out
    inputs = {name: (photos / name).read_bytes() for name in ("a.png", "b.png")}
    assert main(args) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert warnings == [
        f"darkir: warning: left out 2 images inside the output folder {photos / 'out'} (results of an earlier run, "
        "not inputs): out/a.png, out/b.png"
    ]
    assert "input (2 images)" in captured.out
    assert all((photos / name).read_bytes() == data for name, data in inputs.items())
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["a.png", "b.png", "stats.csv"]


def test_test_unpaired_keeps_a_stats_csv_it_did_not_write(tmp_path, capsys, tiny_checkpoint, no_work):
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    out = tmp_path / "out"
    out.mkdir()
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(out), "-q"]
    for notes in ("my own notes\n", "image\n" + "a" * 200000 + ".png\n"):  # the second: a field csv will not read
        (out / "stats.csv").write_text(notes)
        assert main(args) == 2
        assert "was not written by darkir test-unpaired" in _error(capsys)
        assert (out / "stats.csv").read_text() == notes and sorted(p.name for p in out.iterdir()) == ["stats.csv"]


def test_test_unpaired_refuses_an_outside_folder_holding_files_of_the_outputs_names(
    tmp_path, capsys, tiny_checkpoint, no_work
):
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    _png(photos / "b.png", 1, scale=60)
    mine = tmp_path / "mywork"
    _png(mine / "a.png", 5, shape=(10, 10))  # the user's own image, of an output's name
    before = _digests(mine)
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(mine), "-q"]
    assert main(args) == 2
    line = _error(capsys)
    assert f"-o {mine} holds 1 image of the outputs' names (a.png)" in line and "would be replaced" in line
    assert _digests(mine) == before  # nothing replaced, nothing added


def test_test_unpaired_replaces_only_the_images_an_earlier_run_in_the_folder_wrote(tmp_path, capsys, tiny_checkpoint):
    """A folder of an earlier run (it holds that run's stats.csv) may also hold the user's own files: one of an
    output's name that the earlier run did not list is refused, not replaced."""
    first, second = tmp_path / "first", tmp_path / "second"
    _png(first / "a.png", 0, scale=60)
    _png(second / "b.png", 1, scale=60)
    out = tmp_path / "out"
    _png(out / "b.png", 5, shape=(10, 10))  # the user's own image, of the second run's output name
    mine = (out / "b.png").read_bytes()
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "-o", str(out), "-q"]
    assert main([*args, "--data", str(first)]) == 0  # no clash: a.png is written, out becomes an earlier run's
    capsys.readouterr()
    assert main([*args, "--data", str(second)]) == 2
    line = _error(capsys)
    assert f"-o {out} holds 1 image of the outputs' names (b.png)" in line and "does not list them" in line
    assert (out / "b.png").read_bytes() == mine


def test_test_unpaired_names_the_earlier_runs_results_it_removes(tmp_path, capsys, tiny_checkpoint):
    """The official DICM, LIME... options share one results folder: a run on the second set removes the first set's
    restored images (so that none is taken for its own), and says so, naming them; a rerun of one set removes none."""
    first, second = tmp_path / "first", tmp_path / "second"
    _png(first / "a.png", 0, scale=60)
    _png(first / "c.png", 2, scale=60)
    _png(second / "b.png", 1, scale=60)
    out = tmp_path / "out"
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "-o", str(out), "-q"]
    assert main([*args, "--data", str(first)]) == 0
    assert main([*args, "--data", str(first)]) == 0
    assert "removed" not in capsys.readouterr().err
    assert main([*args, "--data", str(second)]) == 0
    err = capsys.readouterr().err
    assert f"darkir: removed 2 images of the earlier run in {out} that this run did not restore (a.png, c.png)" in err
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "stats.csv"]


def test_test_unpaired_that_fails_before_restoring_leaves_no_mark(tmp_path, capsys):
    """A run that stops before its first image (here: weights that do not exist) leaves the folder as it was: no
    stats.csv that would make it pass for an earlier run's, whose files of the outputs' names may be replaced."""
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    out = tmp_path / "out"
    args = ["test-unpaired", "--weights", str(tmp_path / "missing.pt"), "--data", str(photos), "-o", str(out), "-q"]
    assert main(args) == 2
    assert "missing.pt" in _error(capsys)
    assert not (out / "stats.csv").exists()


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
@pytest.mark.parametrize("earlier", [True, False], ids=["earlier-run", "new-folder"])
def test_test_unpaired_whose_first_image_cannot_be_written_keeps_the_earlier_stats(
    tmp_path, capsys, tiny_checkpoint, monkeypatch, earlier, links
):
    """On a full disk, the rerun failed on its first image ("nothing replaced") but had already replaced the earlier
    run's stats.csv with its list of names, every score gone."""
    from darkir.outputs import OutputError

    photos = tmp_path / "photos"
    for seed, name in enumerate("ab"):
        _png(photos / f"{name}.png", seed, scale=60)
    out = tmp_path / "res"
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(out), "-q"]
    if earlier:
        assert main(args) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()} if earlier else {}

    def disk_full(path: Path, *rest: object, **kwargs: object) -> None:
        raise OutputError(f"{path}: No space left on device; nothing replaced")

    monkeypatch.setattr("darkir.eval.unpaired.write_image", disk_full)
    if not links:  # a file system without hard links: the earlier stats.csv was deleted

        def no_link(*args: object) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr("darkir.eval.unpaired.os.link", no_link)
    capsys.readouterr()
    assert main(args) == 2
    assert "No space left on device; nothing replaced" in _error(capsys)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.parametrize("inside", [True, False], ids=["inside-the-data", "outside"])
def test_test_unpaired_reruns_into_the_folder_of_an_interrupted_run(
    tmp_path, capsys, tiny_checkpoint, monkeypatch, inside
):
    photos = tmp_path / "photos"
    for seed, name in enumerate("abc"):
        _png(photos / f"{name}.png", seed, scale=60)
    out = (photos if inside else tmp_path) / "res"
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(out), "-q"]
    write = darkir.eval.unpaired.write_image
    written: list[Path] = []

    def interrupted_after_one(path: Path, *rest: object, **kwargs: object) -> None:
        if written:
            raise KeyboardInterrupt
        written.append(path)
        write(path, *rest, **kwargs)

    monkeypatch.setattr("darkir.eval.unpaired.write_image", interrupted_after_one)
    assert main(args) == 130  # Ctrl-C
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "stats.csv"]  # one result, marked as the run's
    monkeypatch.undo()
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "input (3 images)" in captured.out and ("left out 1 image" in captured.err) == inside
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "stats.csv"]
    assert (out / "stats.csv").read_text().count("\n") == 4  # the header and three images


# 3. compare: the report goes outside the data, and replaces only an earlier report.


def _compare(weights: Path, data: Path, output: Path, *extra: str) -> list[str]:
    return [
        "compare", "--weights", str(weights), "--data", str(data), "-o", str(output), "--no-lpips", "-q",
        "--resamples", "1000", "--size", "32", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("where", ["low", "high", "", "low/report"])
def test_compare_refuses_a_report_folder_in_the_data(tmp_path, capsys, tiny_checkpoint, no_work, where):
    data = _paired(tmp_path / "set", ("grid", "street"))
    before = _digests(data)
    output = data / where if where else data
    assert main(_compare(tiny_checkpoint, data, output)) == 2
    assert f"-o {output} is inside the input folder" in _error(capsys)
    assert _digests(data) == before


def test_compare_unpaired_refuses_a_report_folder_in_the_data(tmp_path, capsys, tiny_checkpoint, no_work):
    dark = tmp_path / "dark"
    _png(dark / "report.png", 0, scale=40)
    _png(dark / "grid.png", 1, scale=40)
    before = _digests(dark)
    assert main(_compare(tiny_checkpoint, dark, dark, "--unpaired")) == 2
    assert "is inside the input folder" in _error(capsys)
    assert _digests(dark) == before


def test_compare_keeps_files_named_like_its_report_in_another_folder(tmp_path, capsys, tiny_checkpoint, no_work):
    data = _paired(tmp_path / "set")
    folder = tmp_path / "album"
    _png(folder / "grid.png", 5)
    (folder / "report.md").write_text("# my report\n")
    before = _digests(folder)
    assert main(_compare(tiny_checkpoint, data, folder)) == 2
    line = _error(capsys)
    assert f"-o {folder} holds report.md, grid.png but no earlier darkir compare report" in line
    assert _digests(folder) == before


def test_compare_reruns_into_its_own_report_and_keeps_other_files(tmp_path, tiny_checkpoint):
    data = _paired(tmp_path / "set")
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("mine\n")
    assert main(_compare(tiny_checkpoint, data, report)) == 0
    first = json.loads((report / "summary.json").read_text())
    assert main(_compare(tiny_checkpoint, data, report)) == 0
    assert json.loads((report / "summary.json").read_text())["methods"].keys() == first["methods"].keys()
    assert (report / "notes.txt").read_text() == "mine\n"
    names = {"grid.png", "notes.txt", "per_image.csv", "psnr_diff_hist.png", "report.md", "summary.json"}
    assert {p.name for p in report.iterdir()} == names  # no temporary or lock file left


def test_compare_unpaired_over_a_paired_report_leaves_none_of_its_pictures(tmp_path, tiny_checkpoint):
    """An unpaired report replacing a paired one removes the paired report's pictures, which it does not write (they
    would be read as the new report's), and nothing else."""
    data = _paired(tmp_path / "set")
    report = tmp_path / "report"
    assert main(_compare(tiny_checkpoint, data, report)) == 0
    assert (report / "grid.png").is_file() and (report / "psnr_diff_hist.png").is_file()
    (report / "notes.txt").write_text("mine\n")
    assert main(_compare(tiny_checkpoint, data / "low", report, "--unpaired")) == 0
    assert {p.name for p in report.iterdir()} == {"notes.txt", "per_image.csv", "report.md", "summary.json"}
    assert (report / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("stop_at", ["grid.png", "report.md"])
def test_compare_stopped_while_writing_leaves_no_file_of_the_report_it_replaces(
    tmp_path, tiny_checkpoint, monkeypatch, stop_at
):
    """A run stopped (Ctrl-C, SIGTERM) while writing its report over an earlier one leaves files of one run only:
    never the earlier report.md or grid.png beside the new summary.json."""
    import darkir.eval.reports as reports_module

    report = tmp_path / "report"
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "one", ("a",)), report)) == 0
    earlier = {name: (report / name).read_bytes() for name in ("report.md", "grid.png", "per_image.csv")}
    commit = reports_module.commit

    def stop(tmp: Path, target: Path, overwrite: bool) -> None:
        if target.name == stop_at:
            raise KeyboardInterrupt
        commit(tmp, target, overwrite)

    monkeypatch.setattr(reports_module, "commit", stop)
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "two", ("b", "c", "d")), report)) == 130
    assert json.loads((report / "summary.json").read_text())["images"] == 3
    for name, content in earlier.items():
        assert not (report / name).exists() or (report / name).read_bytes() != content, name


def test_compare_stopped_while_making_its_pictures_keeps_the_earlier_report_whole(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """Ctrl-C in the slow part after scoring (matplotlib drawing the histogram) leaves the earlier report as it was:
    its files are removed only once the new ones are all made."""
    import darkir.eval.compare as compare_module

    report = tmp_path / "report"
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "one", ("a",)), report)) == 0
    earlier = {path.name: path.read_bytes() for path in report.iterdir()}

    def interrupted(*args: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "_histogram", interrupted)
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "two", ("b", "c", "d")), report)) == 130
    assert {path.name: path.read_bytes() for path in report.iterdir()} == earlier


def test_compare_interrupted_while_swapping_its_report_in_finishes_the_swap(tmp_path, tiny_checkpoint, monkeypatch):
    """Ctrl-C after the earlier report's files were removed threw the new ones away too: both reports were lost."""
    import darkir.eval.reports as reports_module

    report = tmp_path / "report"
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "one", ("a",)), report)) == 0
    earlier = {path.name: path.read_bytes() for path in report.iterdir()}
    commit, stopped = reports_module.commit, []

    def stop_once(tmp: Path, target: Path, overwrite: bool) -> None:
        if target.name == "per_image.csv" and not stopped:
            stopped.append(target)
            raise KeyboardInterrupt
        commit(tmp, target, overwrite)

    monkeypatch.setattr(reports_module, "commit", stop_once)
    assert main(_compare(tiny_checkpoint, _paired(tmp_path / "two", ("b", "c", "d")), report)) == 130
    now = {path.name: path.read_bytes() for path in report.iterdir()}
    assert sorted(now) == sorted(earlier) and all(now[name] != earlier[name] for name in now)
    assert json.loads(now["summary.json"])["images"] == 3


@pytest.mark.parametrize("unpaired", [False, True])
def test_compare_that_cannot_write_its_report_keeps_the_earlier_report_whole(
    tmp_path, tiny_checkpoint, monkeypatch, capsys, unpaired
):
    """On a full disk, compare removed the earlier report, wrote part of the new one and said "nothing replaced"."""
    import darkir.outputs

    report, extra = tmp_path / "report", ("--unpaired",) if unpaired else ()
    first, second = _paired(tmp_path / "one", ("a",)), _paired(tmp_path / "two", ("b", "c", "d"))
    assert main(_compare(tiny_checkpoint, first / "low" if unpaired else first, report, *extra)) == 0
    earlier = {path.name: path.read_bytes() for path in report.iterdir()}
    stage = darkir.outputs.stage

    def disk_full(target: Path, *args: object, **kwargs: object) -> Path:
        if target.name == "report.md":
            raise darkir.outputs.OutputError(f"{target}: No space left on device; nothing replaced")
        return stage(target, *args, **kwargs)

    monkeypatch.setattr("darkir.eval.reports.stage", disk_full)
    capsys.readouterr()
    assert main(_compare(tiny_checkpoint, second / "low" if unpaired else second, report, *extra)) == 2
    assert f"{report / 'report.md'}: No space left on device; nothing replaced" in _error(capsys)
    assert {path.name: path.read_bytes() for path in report.iterdir()} == earlier


def test_a_report_compare_cannot_write_is_kept_in_the_temporary_folder(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    import tempfile

    import darkir.outputs

    data, report = _paired(tmp_path / "set", ("a", "b", "c")), tmp_path / "report"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    commit = darkir.outputs.commit

    def disk_full(tmp: Path, target: Path, overwrite: bool) -> None:
        if target.name == "report.md":  # after summary.json and the rest went in
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        commit(tmp, target, overwrite)

    monkeypatch.setattr("darkir.eval.reports.commit", disk_full)
    assert main(_compare(tiny_checkpoint, data, report)) == 2
    [kept] = (tmp_path / "tmp").glob("darkir-unwritten-*")
    assert f"the report is not complete; the report's files are kept in {kept} instead" in _error(capsys)
    assert sorted(path.name for path in kept.iterdir()) == sorted(darkir.eval.reports.REPORT_FILES)
    assert json.loads((kept / "summary.json").read_text())["images"] == 3


@pytest.mark.parametrize("command", ["compare", "compare --unpaired", "test-unpaired"])
def test_a_start_that_fails_on_the_weights_makes_no_output_folder(tmp_path, capsys, command):
    data = _paired(tmp_path / "set")
    output = tmp_path / "new" / "out"
    missing = tmp_path / "missing.pt"
    if command == "test-unpaired":
        args = ["test-unpaired", "--weights", str(missing), "--data", str(data / "low"), "-o", str(output), "-q"]
    else:
        args = _compare(missing, data / "low" if "unpaired" in command else data, output, *command.split()[1:])
    assert main(args) == 2
    assert "missing.pt" in _error(capsys)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["compare", "test-unpaired", "restore", "video"])
@pytest.mark.parametrize("blocker", ["link to nothing", "file above"])
def test_an_unusable_output_folder_is_named_before_the_weights_load(
    tmp_path, capsys, monkeypatch, tiny_checkpoint, no_work, command, blocker
):
    data = _paired(tmp_path / "set")
    if blocker == "file above":
        (tmp_path / "afile").write_text("x")
        output, message = tmp_path / "afile" / "out", f"cannot create output folder {tmp_path / 'afile' / 'out'}"
    else:
        output = tmp_path / "out"
        output.symlink_to(tmp_path / "gone")
        message = f"output folder {output} is a link to {tmp_path / 'gone'}, which does not exist"
    args = {
        "compare": _compare(tiny_checkpoint, data, output),
        "test-unpaired": ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(data / "low"), "-o",
                          str(output), "-q"],
        "restore": ["restore", str(data / "low"), "-o", str(output), "--weights", str(tiny_checkpoint), "-q"],
        "video": ["video", str(data / "low" / "a.png"), "-o", str(output / "v.mp4"), "--weights",
                  str(tiny_checkpoint), "-q"],
    }[command]  # fmt: skip
    monkeypatch.setattr("darkir.cli.restore.restorer_from_args", lambda *a, **k: pytest.fail("weights loaded"))
    assert main(args) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "gone").exists()


def test_test_unpaired_names_an_output_that_is_one_of_the_images_as_a_file(tmp_path, capsys, tiny_checkpoint, no_work):
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    before = _digests(photos)
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-q"]
    assert main([*args, "-o", str(photos / "a.png")]) == 2
    assert _error(capsys) == f"darkir: error: output folder {photos / 'a.png'} is a file; choose a folder"
    assert _digests(photos) == before


def test_compare_unpaired_leaves_out_an_earlier_test_unpaired_runs_results_in_the_data(
    tmp_path, capsys, tiny_checkpoint
):
    """test-unpaired -o photos/res, then compare --unpaired --data photos scored the restored images as inputs too."""
    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    _png(photos / "b.png", 1, scale=60)
    weights = ["--weights", str(tiny_checkpoint), "-q"]
    assert main(["test-unpaired", *weights, "--data", str(photos), "-o", str(photos / "res")]) == 0
    capsys.readouterr()
    assert main(_compare(tiny_checkpoint, photos, tmp_path / "report", "--unpaired")) == 0
    assert "left out 2 images in results folders of earlier runs" in capsys.readouterr().err
    with open(tmp_path / "report" / "per_image.csv", newline="") as handle:
        assert sorted({row["image"] for row in csv.DictReader(handle)}) == ["a.png", "b.png"]


def test_test_unpaired_prints_control_characters_of_names_as_escapes(tmp_path, capsys, tiny_checkpoint):
    """The per-image lines and the removed-results note name files: ESC in a name reached the terminal raw."""
    first, second = tmp_path / "first", tmp_path / "second"
    _png(first / "a\x1b[2Jb.png", 0, scale=60)
    _png(second / "c.png", 1, scale=60)
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "-o", str(tmp_path / "out")]
    assert main([*args, "--data", str(first), "-q"]) == 0
    assert "a\\x1b[2Jb.png: NIQE" in capsys.readouterr().out
    assert main([*args, "--data", str(second), "-q"]) == 0
    captured = capsys.readouterr()
    assert "(a\\x1b[2Jb.png)" in captured.err and "\x1b" not in captured.err + captured.out


def test_metrics_names_references_without_an_output(tmp_path, capsys):
    """A reference without its output was left out of the means without a word (an output missing from a run
    passed unseen); outputs kept in a folder below the references are not references."""
    gt = tmp_path / "gt"
    for name in ("a", "b", "c"):
        _png(gt / f"{name}.png", 0)
    _png(gt / "out" / "a.png", 1)
    _png(gt / "out" / "c.png", 2)
    assert main(["metrics", str(gt / "out"), str(gt), "--no-lpips", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"darkir: note: not scored, as PRED has no output for them: 1 image of GT ({gt / 'b.png'})" in err
    assert "out/" not in err
    _png(gt / "out" / "b.png", 3)
    assert main(["metrics", str(gt / "out"), str(gt), "--no-lpips", "-q"]) == 0
    assert "not scored" not in capsys.readouterr().err


def test_metrics_gives_no_training_set_warnings(tmp_path, capsys):
    """A reference without an output is metrics' note, not the training sets' warning; a gray reference for a colour
    output is no "model trained on them" matter."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _png(pred / "a.png", 1)
    gt.mkdir()
    cv2.imwrite(str(gt / "a.png"), np.full((48, 64), 90, np.uint8))
    _png(gt / "b.png", 2)
    assert main(["metrics", str(pred), str(gt), "--no-lpips", "-q"]) == 0
    err = capsys.readouterr().err
    assert "not scored, as PRED has no output for them: 1 image of GT" in err
    assert "reference(s) without an input" not in err and "gray for colour inputs" not in err
    # ... but it is said, as darkir test says it (it was not said at all)
    assert f"1 reference(s) are gray for colour outputs ({gt / 'a.png'}): they score against gray" in err


@pytest.mark.parametrize("command", ["test", "compare"])
def test_set_warnings_come_only_once_the_run_is_not_refused(tmp_path, capsys, tiny_checkpoint, command):
    """``darkir test`` and ``compare`` printed the set's warnings (here a reference without an input), then the
    refusal of an output folder inside the data: a page of notes above the one line that mattered."""
    data = _paired(tmp_path / "set")
    _png(data / "high" / "c.png", 3)
    if command == "test":
        argv = ["test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "-q"]
        bad, good = ["--results-dir", str(data / "low" / "triplets")], ["--save", "0"]
    else:
        argv = ["compare", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "-q"]
        argv += ["--resamples", "1000", "--size", "32"]
        bad, good = ["-o", str(data / "high" / "report")], ["-o", str(tmp_path / "report")]
    assert main([*argv, *bad]) == 2
    _error(capsys)  # one line: the refusal alone
    assert main([*argv, *good]) == 0
    assert "left out 1 reference(s) without an input" in capsys.readouterr().err


def test_a_second_run_into_a_results_folder_another_run_is_writing_is_refused(tmp_path, capsys, tiny_checkpoint):
    """Two test-unpaired runs into one -o: the one that ended first removed the other's images as an earlier run's,
    and the other's stats.csv listed images that were gone; two `test --save` runs into one --results-dir left a
    note of eight triplets beside two of the other run's. The folder is held for the run; a second is refused, and
    what the first wrote is kept."""
    from darkir.eval.paired import TRIPLET_NOTE
    from darkir.outputs import claim

    photos = tmp_path / "photos"
    _png(photos / "a.png", 0, scale=60)
    out = tmp_path / "out"
    unpaired = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(photos), "-o", str(out), "-q"]
    assert main(unpaired) == 0
    before = _digests(out)
    with claim(out / "stats.csv"), pytest.MonkeyPatch.context() as patch:  # the other run (another process)
        patch.setattr("darkir.cli.evaluate.restorer_from_args", lambda *a, **k: pytest.fail("weights loaded"))
        assert main(unpaired) == 2  # before its work in progress there is read as an earlier run's results
    assert f"{out}: another darkir run is writing test-unpaired's results there" in _error(capsys)
    assert _digests(out) == before
    data = _paired(tmp_path / "set")
    triplets = tmp_path / "triplets"
    paired = ["test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "-q"]
    assert main([*paired, "--results-dir", str(triplets), "--save", "2"]) == 0
    before = _digests(triplets)
    with claim(triplets / TRIPLET_NOTE), pytest.MonkeyPatch.context() as patch:
        patch.setattr("darkir.cli.evaluate.restorer_from_args", lambda *a, **k: pytest.fail("weights loaded"))
        assert main([*paired, "--results-dir", str(triplets), "--save", "1"]) == 2
    assert f"{triplets}: another darkir run is writing test's triplets there" in _error(capsys)
    assert _digests(triplets) == before


def test_test_removes_what_a_killed_run_left_among_its_triplets(tmp_path, capsys, tiny_checkpoint):
    """A `test --save` killed while writing a triplet left its temporary file; no later run removed it."""
    import subprocess
    import sys

    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    triplets = tmp_path / "triplets"
    triplets.mkdir()
    left = triplets / f".00001_input.{socket.gethostname()}-{killed.pid}.darkir-part.png"
    left.write_bytes(b"half a png")
    data = _paired(tmp_path / "set")
    args = ["test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "-q", "--save", "2"]
    assert main([*args, "--results-dir", str(triplets)]) == 0
    assert not left.exists() and (triplets / "00001_input.png").is_file()
