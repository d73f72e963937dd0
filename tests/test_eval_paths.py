"""Paths of the evaluation and tool commands: test's triplets never land among the inputs nor over the user's files,
empty paths and names are errors, bounded whole numbers, unknown model names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from darkir.cli import main


def _png(path: Path, seed: int, bits: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if bits == 16:  # RGB (Pillow writes 16-bit gray only)
        cv2.imwrite(str(path), rng.integers(0, 65535, (48, 64, 3), dtype=np.uint16))
    else:
        Image.fromarray(rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _data(root: Path) -> Path:
    """A paired folder whose images are named like test's triplets (16-bit references)."""
    for seed, name in enumerate(("00000_output.png", "00001_output.png")):
        _png(root / "input" / name, seed)
        _png(root / "gt" / name, seed + 10, bits=16)
    return root


def _digests(root: Path) -> dict[str, str]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _test(weights: Path, data: Path, *extra: str) -> list[str]:
    return ["test", "--weights", str(weights), "--data", str(data), "--no-lpips", "-q", *extra]


@pytest.mark.parametrize("where", ["gt", "input", ".", "gt/sub"])
def test_results_dir_among_the_inputs_is_refused(tmp_path, tiny_checkpoint, capsys, where):
    data = _data(tmp_path / "data")
    before = _digests(tmp_path)
    results = data / where
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--overwrite")) == 2
    err = _error(capsys)
    assert f"--results-dir {results}" in err and "input folder" in err and "outside the inputs" in err
    assert _digests(tmp_path) == before and not (data / "gt" / "sub").exists()


def test_results_dir_keeps_files_an_earlier_run_did_not_write(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    mine = _png(tmp_path / "mine" / "00000_output.png", 3, bits=16)
    digest = hashlib.sha256(mine.read_bytes()).hexdigest()
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(mine.parent))) == 2
    err = _error(capsys)
    assert "00000_output.png" in err and "--overwrite" in err
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in mine.parent.iterdir()) == ["00000_output.png"]
    # --save 0 writes no triplets, so nothing there is at stake
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(mine.parent), "--save", "0")) == 0
    assert hashlib.sha256(mine.read_bytes()).hexdigest() == digest
    # --overwrite replaces them
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(mine.parent), "--overwrite")) == 0
    assert hashlib.sha256(mine.read_bytes()).hexdigest() != digest


def test_results_dir_of_an_earlier_run_is_reused(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    before = _digests(data)
    results = tmp_path / "results"
    for _ in range(2):
        assert main(_test(tiny_checkpoint, data, "--results-dir", str(results))) == 0
        assert "2 input/output/gt triplets" in capsys.readouterr().out
    names = sorted(p.name for p in results.iterdir())
    assert names == [f"0000{i}_{s}.png" for i in range(2) for s in ("gt", "input", "output")] + ["triplets.txt"]
    note = (results / "triplets.txt").read_text().splitlines()
    assert note[0].startswith("darkir test:") and note[1].startswith("00000 ") and len(note) == 3
    assert _digests(data) == before


def test_a_name_with_a_newline_cannot_make_the_note_list_a_file_of_the_users(tmp_path, tiny_checkpoint):
    """A pair named "a<newline>00005 b.png" was written over two lines of the note, the second read back as triplet
    5: a rerun then removed the user's own 00005_input.png as an earlier run's triplet."""
    data = tmp_path / "data"
    for side, seed in (("input", 0), ("gt", 10)):
        _png(data / side / "a\n00005 b.png", seed)
    results = tmp_path / "results"
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results))) == 0
    assert len((results / "triplets.txt").read_text().splitlines()) == 2  # the header and one triplet
    mine = _png(results / "00005_input.png", 4)
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results))) == 0
    assert mine.is_file()


def test_fewer_triplets_than_an_earlier_run_leave_none_of_its_own(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    results = tmp_path / "results"
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--save", "2")) == 0
    mine = _png(results / "00002_output.png", 4)  # the user's file: no note lists it
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--save", "1")) == 0
    names = sorted(p.name for p in results.iterdir())
    assert names == ["00000_gt.png", "00000_input.png", "00000_output.png", "00002_output.png", "triplets.txt"]
    assert mine.is_file() and len((results / "triplets.txt").read_text().splitlines()) == 2


def test_a_pair_that_cannot_be_read_leaves_no_earlier_triplet_in_its_place(tmp_path, tiny_checkpoint, capsys):
    """Rerun on a set whose second input cannot be decoded (its header still reads), triplet 1 of the earlier run is
    removed and the note lists only the triplets written: none of the earlier run's is taken for this one's."""
    results = tmp_path / "results"
    assert main(_test(tiny_checkpoint, _data(tmp_path / "data"), "--results-dir", str(results), "--save", "2")) == 0
    second = _data(tmp_path / "second")
    broken = second / "input" / "00001_output.png"
    broken.write_bytes(broken.read_bytes()[:120])
    capsys.readouterr()
    assert main(_test(tiny_checkpoint, second, "--results-dir", str(results), "--save", "2")) == 1
    assert "1 input/output/gt triplets of the first 2 pairs" in capsys.readouterr().out
    assert sorted(p.name for p in results.iterdir()) == [f"00000_{s}.png" for s in ("gt", "input", "output")] + [
        "triplets.txt"
    ]
    note = (results / "triplets.txt").read_text().splitlines()
    assert len(note) == 2 and note[1].startswith("00000 ") and str(second) in note[1]


def test_an_interrupted_rerun_leaves_a_note_that_lists_exactly_its_own_triplets(tmp_path, tiny_checkpoint, monkeypatch):
    """Interrupted on another set, the note already named every pair of the new run, and the earlier run's
    triplets stood under the new run's names; now every triplet the note lists is this run's, and no other is left."""
    import darkir.eval.paired

    results = tmp_path / "results"
    assert main(_test(tiny_checkpoint, _data(tmp_path / "first"), "--results-dir", str(results), "--save", "2")) == 0
    second = _data(tmp_path / "second")
    saved = darkir.eval.paired._save
    written = []

    def stop_at_the_second_triplet(path: Path, tensor, bit_depth: int) -> None:
        if path.name.startswith("00001_"):
            raise KeyboardInterrupt
        saved(path, tensor, bit_depth)
        written.append(path.name)

    monkeypatch.setattr(darkir.eval.paired, "_save", stop_at_the_second_triplet)
    assert main(_test(tiny_checkpoint, second, "--results-dir", str(results), "--save", "2")) == 130
    note = (results / "triplets.txt").read_text().splitlines()
    assert len(note) == 3 and all(str(second) in line for line in note[1:])  # 00001 listed: its files may not be
    assert sorted(p.name for p in results.iterdir()) == sorted([*written, "triplets.txt"])
    assert written == [f"00000_{s}.png" for s in ("input", "output", "gt")]


def test_a_triplet_a_full_disk_refuses_ends_the_triplets_not_the_scores(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """On a full disk the first triplet's output stopped the whole evaluation: no scores printed, no CSV written,
    and half a triplet left, listed in the note."""
    import darkir.eval.paired
    from darkir.outputs import DiskFullError

    data, results, table = _data(tmp_path / "data"), tmp_path / "results", tmp_path / "scores.csv"
    saved = darkir.eval.paired._save

    def full_at_the_first_output(path: Path, tensor, bit_depth: int) -> None:
        if path.name == "00000_output.png":
            raise DiskFullError(f"{path}: No space left on device; nothing replaced")
        saved(path, tensor, bit_depth)

    monkeypatch.setattr(darkir.eval.paired, "_save", full_at_the_first_output)
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--save", "2", "--csv", str(table))) == 0
    out, err = capsys.readouterr()
    assert "PSNR" in out and "0 input/output/gt triplets of the first 2 pairs" in out
    assert "00000_output.png: No space left on device; nothing replaced; no more triplets are saved" in err
    assert len(table.read_text().splitlines()) == 1 + len(list((data / "input").iterdir()))
    assert sorted(p.name for p in results.iterdir()) == ["triplets.txt"]
    assert len((results / "triplets.txt").read_text().splitlines()) == 1  # the header: no triplet listed


def test_a_note_unlocks_only_the_triplets_it_lists(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    results = tmp_path / "results"
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--save", "1")) == 0
    mine = _png(results / "00001_output.png", 4)  # the user's file, beside a note that lists triplet 0 only
    digest = hashlib.sha256(mine.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(results), "--save", "2")) == 2
    assert "00001_output.png" in _error(capsys) and hashlib.sha256(mine.read_bytes()).hexdigest() == digest


def test_a_foreign_triplets_note_is_not_taken_for_an_earlier_run(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "triplets.txt").write_text("my notes\n")
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(tmp_path / "res"))) == 2
    assert "triplets.txt" in _error(capsys)
    assert (tmp_path / "res" / "triplets.txt").read_text() == "my notes\n"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["test", "--save", "-1"], "--save"),
        (["complexity", "--size", "0"], "--size"),
        (["complexity", "--size", "-5"], "--size"),
        (["compare", "--data", "d", "-o", "r", "--resamples", "0"], "--resamples"),
    ],
)
def test_whole_number_flags_are_bounded(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def _empty_cases(weights: str, data: str, pred: str) -> list[tuple[list[str], str]]:
    test = ["test", "--weights", weights, "--data", data, "--no-lpips", "-q"]
    compare = ["compare", "--weights", weights, "--data", data, "-o", "report", "--no-lpips", "-q"]
    return [
        (["metrics", "", "", "--no-lpips", "-q"], "PRED is empty"),
        (["metrics", pred, "", "--no-lpips", "-q"], "GT is empty"),
        (["metrics", pred, "--csv", "", "-q"], "--csv is empty"),
        (["metrics", pred, pred, "--lpips-backbone", "", "-q"], "--lpips-backbone is empty"),
        (["test", "-p", "", "--data", data, "--no-lpips", "-q"], "-p is empty"),
        ([*test[:2], "  ", *test[3:]], "--weights is empty"),
        ([*test, "--csv", ""], "--csv is empty"),
        ([*test, "--results-dir", ""], "--results-dir is empty"),
        ([*test, "--split", ""], "--split is empty"),
        (["test", "--weights", weights, "--data", "", "-q"], "--data is empty"),
        (["test-unpaired", "--weights", weights, "--data", data, "-o", "", "-q"], "-o is empty"),
        ([*compare[:6], "", *compare[7:]], "-o is empty"),
        ([*compare, "--zero-dce", ""], "--zero-dce is empty"),
        ([*compare, "--weights", ""], "--weights is empty (the 2nd of 2)"),
        (["complexity", "-m", ""], "-m is empty"),
        (["complexity", "--weights", ""], "--weights is empty"),
        (["convert", "", "-o", "x.pt"], "CHECKPOINT is empty"),
        (["convert", weights, "-o", ""], "-o is empty"),
        (["export-onnx", "--weights", weights, "-o", ""], "-o is empty"),
    ]


def test_empty_paths_are_errors(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    data = _data(tmp_path / "data")
    pred = tmp_path / "pred"
    _png(pred / "00000_output.png", 5)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _digests(tmp_path)
    for argv, message in _empty_cases(str(tiny_checkpoint), str(data), str(pred)):
        assert main(argv) == 2, argv
        err = _error(capsys)
        assert err.startswith(f"darkir: error: {message}"), (argv, err)
        assert "unset variable" in err
    assert _digests(tmp_path) == before and not any(work.iterdir())


def test_complexity_names_an_unknown_model(capsys):
    assert main(["complexity", "-m", "nope"]) == 2
    err = _error(capsys)
    assert "-m nope: no model of that name" in err and "darkir-w32" in err and "weights not found" not in err


def test_split_with_a_folder_is_refused_not_ignored(tmp_path, tiny_checkpoint, capsys):
    data = _data(tmp_path / "data")
    assert main(_test(tiny_checkpoint, data, "--split", "val")) == 2
    assert _error(capsys) == f"darkir: error: --split val picks a split of a .json manifest, and {data} is not one"
    assert main(_test(tiny_checkpoint, data, "--results-dir", str(tmp_path / "results"))) == 0


def test_the_triplet_note_says_how_many_triplets_it_lists(tmp_path):
    """A run stopped after 138 of 300 triplets left a note saying "the first 300 pairs" above 138 lines."""
    from darkir.data.pairs import Pair
    from darkir.eval.paired import write_triplet_note

    pairs = [Pair(tmp_path / f"low/{i}.png", tmp_path / f"high/{i}.png", f"{i}.png") for i in range(5)]
    write_triplet_note(tmp_path / "results", "model", pairs, 4, saved=[0, 1])
    lines = (tmp_path / "results" / "triplets.txt").read_text().splitlines()
    assert lines[0].endswith("of model, 2 of the first 4 pairs (input, reference):") and len(lines) == 3


@pytest.mark.parametrize("command", ["test", "test-unpaired"])
def test_a_default_results_folder_the_user_cannot_write_names_the_flag_that_moves_it(
    tmp_path, tiny_checkpoint, monkeypatch, capsys, command
):
    """Run from a folder the user cannot write, test stopped on ./images/results_test, which it was not asked for,
    without saying that --results-dir or --save 0 avoids it (test-unpaired: -o)."""
    import os

    data, here = _data(tmp_path / "data"), tmp_path / "read-only"
    here.mkdir()
    monkeypatch.chdir(here)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != here and access(path, mode, **kw))
    unpaired = ["test-unpaired", "--data", str(data / "input"), "--weights", str(tiny_checkpoint), "-q"]
    assert main(_test(tiny_checkpoint, data) if command == "test" else unpaired) == 2
    error = _error(capsys)
    assert f"{here} is not writable; " in error
    wanted = "pass --results-dir DIR, or --save 0" if command == "test" else "the restored images go there: pass -o DIR"
    assert error.endswith(wanted)
