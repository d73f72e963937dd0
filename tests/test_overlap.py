"""restore_files with overlap: the next image read and the last one written in their own threads (the default on
CUDA) gives the same outputs and report as one file at a time, and loses nothing when a file or the run fails."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from darkir.infer import Restorer
from darkir.infer.files import restore_files
from darkir.infer.jobs import plan_jobs
from darkir.models.factory import load_model
from darkir.outputs import Claim
from tests.test_reliability import _photo


@pytest.fixture(scope="module")
def restorer(tiny_checkpoint):
    return Restorer(load_model(tiny_checkpoint), device="cpu", tile=0, precision="fp32")


def batch(folder: Path) -> Path:
    """Five photos, one corrupt file among them, and one output that exists already."""
    for index in range(5):
        _photo(folder / "in" / f"{index}.png", seed=index)
    (folder / "in" / "2b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "out").mkdir()
    (folder / "out" / "4.png").write_bytes(b"kept")
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "darkir" in p.name)


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("darkir-read", "darkir-write")]


def run(restorer: Restorer, folder: Path, overlap: bool, **kwargs):
    jobs, problems = plan_jobs([str(folder / "in")], folder / "out", "")
    assert not problems
    return restore_files(restorer, jobs, progress=False, overlap=overlap, **kwargs)


def test_overlap_gives_the_same_files_and_report(tmp_path, restorer):
    one = run(restorer, batch(tmp_path / "one"), overlap=False)
    other = run(restorer, batch(tmp_path / "other"), overlap=True)
    names = sorted(p.name for p in (tmp_path / "one" / "out").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "other" / "out").iterdir()) == [f"{i}.png" for i in range(5)]
    for name in names:
        assert (tmp_path / "one" / "out" / name).read_bytes() == (tmp_path / "other" / "out" / name).read_bytes()
    assert [p.name for p in other.done] == [p.name for p in one.done] == ["0.png", "1.png", "2.png", "3.png"]
    assert [p.name for p in other.skipped] == [p.name for p in one.skipped] == ["4.png"]
    assert [(p.name, m.replace("other", "one")) for p, m in other.failed] == [(p.name, m) for p, m in one.failed]
    assert [p.name for p, _ in other.failed] == ["2b.png"]
    assert (tmp_path / "other" / "out" / "4.png").read_bytes() == b"kept"
    assert not leftovers(tmp_path / "other" / "out") and not stage_threads()


def test_overlap_skips_an_output_another_run_holds(tmp_path, restorer):
    folder = batch(tmp_path)
    held = Claim(folder / "out" / "1.png")  # as another run writing it would
    try:
        report = run(restorer, folder, overlap=True)
    finally:
        held.release()
    assert [p.name for p in report.busy] == ["1.png"] and not (folder / "out" / "1.png").exists()
    assert [p.name for p in report.done] == ["0.png", "2.png", "3.png"]


def test_an_interrupt_while_restoring_lets_go_of_every_claim(tmp_path, restorer, monkeypatch):
    folder = batch(tmp_path)
    restore, calls = restorer.restore_array, []

    def interrupted(rgb):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return restore(rgb)

    monkeypatch.setattr(restorer, "restore_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(restorer, folder, overlap=True)
    out = folder / "out"
    assert sorted(p.name for p in out.iterdir()) in (["0.png", "4.png"], ["4.png"])  # the first written whole, or not
    assert not leftovers(out) and not stage_threads()
    monkeypatch.undo()
    again = run(restorer, folder, overlap=True)  # nothing is still claimed in this process
    assert not again.busy and not again.failed[1:] and len(again.done) + len(again.skipped) == 5


def test_a_failed_write_is_that_files_failure(tmp_path, restorer, monkeypatch):
    from darkir.infer import files

    folder = batch(tmp_path)
    write = files.write_image

    def full_disk(path, image, **kwargs):
        if Path(path).name == "1.png":
            raise OSError(28, "No space left on device")
        assert threading.current_thread().name == "darkir-write"
        return write(path, image, **kwargs)

    monkeypatch.setattr(files, "write_image", full_disk)
    report = run(restorer, folder, overlap=True)
    assert ("1.png", f"{folder / 'out' / '1.png'}: No space left on device") in [(p.name, m) for p, m in report.failed]
    assert [p.name for p in report.done] == ["0.png", "2.png", "3.png"]
    assert not leftovers(folder / "out") and not stage_threads()


def test_overlap_is_the_default_on_cuda_only(tmp_path, restorer, monkeypatch):
    import copy

    import torch

    from darkir.infer import files, pipeline

    used = []

    class Counted(pipeline.Prefetch):
        def __init__(self, *args, **kwargs):
            used.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(files, "Prefetch", Counted)
    run(restorer, batch(tmp_path / "cpu"), overlap=None)
    assert not used
    on_cuda = copy.copy(restorer)
    on_cuda.device = torch.device("cuda")
    monkeypatch.setattr(on_cuda, "restore_array", lambda rgb: rgb)  # nothing to run on a device that is not there
    report = run(on_cuda, batch(tmp_path / "cuda"), overlap=None)
    assert used and len(report.done) == 4


def test_the_overlap_benchmark_runs_and_checks_its_outputs():
    import subprocess
    import sys

    from tests.conftest import REPO

    command = [sys.executable, str(REPO / "benchmarks" / "folder_overlap.py"), "--images", "3", "--size", "64x48"]
    done = subprocess.run([*command, "--device-ms", "0,5", "--repeats", "1"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 0 ms") or line.startswith("| 5 ms")]
    assert len(rows) == 2 and all(row.endswith("x |") for row in rows)
