"""Nothing lost, round two, for batches: hostile files, link loops, killed runs' leftovers, numbers that are not
numbers, and user mistakes that are one line with exit 2 (issue 25, items 3, 7, 8, 9 and 10)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from darkir.cli import main
from darkir.errors import DarkIRError, DarkIRWarning
from darkir.imageio import ImageReadError, read_image
from darkir.infer import Restorer
from darkir.infer.jobs import plan_jobs
from darkir.models.factory import load_model
from darkir.outputs import lock_path
from tests.test_reliability import _photo


def _restore(*args: str, weights: Path) -> int:
    return main(["restore", *args, "--weights", str(weights), "-q"])


def _png_bomb(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A ~70-byte PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def test_an_image_that_fits_no_plan_is_refused_from_its_header_before_decoding(tmp_path, tiny_checkpoint, capsys):
    """A small file of large dimensions was decoded (27 bytes a pixel) before the planner refused it: in a container
    with less memory than that, the kernel killed the batch. Its header now suffices; the rest is restored."""
    from darkir.hostmemory import resident_memory

    _photo(tmp_path / "in" / "a.png")
    _png_bomb(tmp_path / "in" / "b.png", 6000, 6000)  # 36 megapixels: under the pixel limit, over this budget
    out = tmp_path / "out"
    budget = str(resident_memory() + 600_000_000)  # what this process holds, and room for small images only
    assert _restore(str(tmp_path / "in"), "-o", str(out), "--max-memory", budget, weights=tiny_checkpoint) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'in' / 'b.png'}: a 6000x6000 image does not fit --max-memory " in err  # the flag's name
    assert "not decoded" in err and sorted(p.name for p in out.iterdir()) == ["a.png"]


@pytest.fixture(scope="module")
def tiny_restorer(tiny_checkpoint):
    return Restorer(load_model(tiny_checkpoint), device="cpu", tile=0, precision="fp32")


# 3. A decompression bomb is refused from its header, named, and the rest of the batch is restored.
def test_a_hostile_file_is_that_files_failure_only(tmp_path, tiny_checkpoint, capsys):
    _photo(tmp_path / "in" / "a.png")
    _png_bomb(tmp_path / "in" / "b.png")
    _photo(tmp_path / "in" / "c.png", seed=1)
    out = tmp_path / "out"
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 1
    err = capsys.readouterr().err
    assert "b.png" in err and "40000x40000" in err and "OpenCV" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    with pytest.raises(ImageReadError, match="megapixels"):
        read_image(tmp_path / "in" / "b.png")


def test_the_api_and_demo_name_the_hostile_file_without_opencv_words(tmp_path, tiny_checkpoint, tiny_restorer):
    from darkir.demo import DemoEngine

    bomb = _png_bomb(tmp_path / "bomb.png")
    with pytest.raises(DarkIRError, match=r"bomb\.png: its header claims"):
        tiny_restorer(str(bomb))
    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        with pytest.raises(DarkIRError, match=r"^bomb\.png is 40000x40000; the demo accepts up to") as caught:
            engine.restore_image(str(bomb), "tiny")
        assert "cv2" not in str(caught.value) and "OpenCV" not in str(caught.value)
    finally:
        engine.close()


# 7. An animated image is refused, never cut to its first frame without a word.
def test_an_animated_webp_is_refused_whole(tmp_path, tiny_checkpoint, capsys):
    frames = [PILImage.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    assert _restore(str(tmp_path / "anim.webp"), "-o", str(tmp_path / "out"), weights=tiny_checkpoint) == 1
    assert "animated" in capsys.readouterr().err and not (tmp_path / "out" / "anim.webp").exists()


# 7. Folder walks and recursive globs visit each real file once and end, whatever links they meet.
@pytest.mark.timeout(60)
def test_link_loops_end_and_each_file_is_planned_once(tmp_path):
    tree = tmp_path / "photos"
    _photo(tree / "a.png")
    _photo(tree / "sub" / "b.png")
    (tree / "sub" / "up").symlink_to(tree)  # two loops: back to the top and to itself
    (tree / "sub" / "self").symlink_to(tree / "sub")
    out = tmp_path / "out"
    for inputs in ([str(tree)], [f"{tree}/**/*.png"], [f"{tree}/**"]):
        jobs, problems = plan_jobs(inputs, out)
        assert sorted(os.path.realpath(job.source) for job in jobs) == sorted(
            os.path.realpath(p) for p in (tree / "a.png", tree / "sub" / "b.png")
        ), inputs
        assert problems == []
    jobs, _ = plan_jobs([f"{tree}/*/b.png", f"{tree}/s?b/[ab].png"], out)
    assert [job.source.name for job in jobs] == ["b.png"]


def test_a_link_beside_its_file_is_restored_under_the_files_name_and_said(tmp_path):
    """``best.png``, a link to ``photo.png`` in the same folder, sorted first and took the file's output, with no
    word: the file is restored under its own name, and a warning names the link."""
    photo = _photo(tmp_path / "in" / "photo.png")
    (tmp_path / "in" / "best.png").symlink_to("photo.png")
    with pytest.warns(DarkIRWarning, match=r"in/best\.png \(restored as .*in/photo\.png\)"):
        jobs, problems = plan_jobs([str(tmp_path / "in")], tmp_path / "out")
    assert [(job.source, job.target) for job in jobs] == [(photo, tmp_path / "out" / "photo.png")] and not problems


def test_a_glob_that_matches_folders_restores_them_as_a_shell_would(tmp_path):
    """``'shoot*'`` quoted (from Python, or a shell that does not expand it) matched no image where the same
    pattern expanded by the shell restores both folders."""
    _photo(tmp_path / "shoot1" / "a.png")
    _photo(tmp_path / "shoot2" / "sub" / "b.png")
    _photo(tmp_path / "shootx.png")
    (tmp_path / "shoot3").mkdir()  # no images: passed over, as files of other kinds are, not a failure
    (tmp_path / "shoot3" / "notes.txt").write_text("x")
    out = tmp_path / "out"
    jobs, problems = plan_jobs([str(tmp_path / "shoot*")], out)
    expanded, _ = plan_jobs([str(tmp_path / name) for name in ("shoot1", "shoot2", "shootx.png")], out)
    assert [job.source for job in jobs] == [job.source for job in expanded]
    assert sorted(job.target for job in jobs) == sorted(job.target for job in expanded)
    assert sorted(job.target for job in jobs) == [out / "a.png", out / "shootx.png", out / "sub" / "b.png"]
    assert problems == []


def test_a_double_star_glob_that_matches_folders_restores_them_as_bash_globstar_would(tmp_path):
    """``'p/**/night*'`` matched the files named night* only; bash (globstar) also gives the folders so named, at
    any depth, whose images are then restored as if each folder were given."""
    _photo(tmp_path / "p" / "a" / "night1" / "x.png")
    _photo(tmp_path / "p" / "b" / "deep" / "night2" / "sub" / "y.png")
    _photo(tmp_path / "p" / "c" / "night3.png")
    _photo(tmp_path / "p" / "c" / "day.png")
    out = tmp_path / "out"
    jobs, problems = plan_jobs([str(tmp_path / "p" / "**" / "night*")], out)
    given = [tmp_path / "p" / name for name in ("a/night1", "b/deep/night2", "c/night3.png")]
    expanded, _ = plan_jobs([str(path) for path in given], out)
    assert [(job.source, job.target) for job in jobs] == [(job.source, job.target) for job in expanded]
    assert sorted(job.target for job in jobs) == [out / "night3.png", out / "sub" / "y.png", out / "x.png"]
    assert problems == []
    jobs, problems = plan_jobs([str(tmp_path / "p" / "c" / "day.png" / "**")], out)  # a file is no folder to walk
    assert jobs == [] and len(problems) == 1


@pytest.mark.parametrize(
    ("names", "suffix"),
    [(("x.jpg", "x.png"), ".png"), (("b.JPG", "b.jpg"), ".jpg")],
    ids=["other-format", "suffix-case"],
)
def test_of_inputs_sharing_an_output_name_the_one_whose_own_name_it_is_is_restored(tmp_path, names, suffix):
    """``x.jpg`` and ``x.png`` under ``--format png`` (or ``clip.mkv`` beside ``clip.mp4``): the first by name took
    ``x.png``, and the input of that very name was the one refused; so did ``b.JPG`` beside ``b.jpg`` under
    ``--format jpg`` (its suffix differs only in case)."""
    refused, kept = names
    for name in names:
        _photo(tmp_path / "in" / name)
    out = tmp_path / "out"
    jobs, problems = plan_jobs([str(tmp_path / "in")], out, suffix=suffix)
    assert [(job.source.name, job.target) for job in jobs] == [(kept, out / kept)]
    assert problems == [
        (tmp_path / "in" / refused, f"same output name as {tmp_path / 'in' / kept}; restore it separately")
    ]


def test_a_cameras_upper_case_mp4_owns_its_output_and_transport_streams_are_videos(tmp_path):
    """A camera's ``CLIP.MP4`` beside ``CLIP.MOV`` lost its output to the .MOV (the own-name rule compared the case
    too); ``.ts``/``.mts`` camcorder files were "unsupported format" to ``darkir restore``, though ``darkir video``
    restores them."""
    packets = {"00001.MTS": bytes(4) + (b"\x47" + bytes(191)) * 2, "show.ts": (b"\x47" + bytes(187)) * 2}
    (tmp_path / "in").mkdir()
    for name in ("CLIP.MOV", "CLIP.MP4", "00001.MTS", "show.ts"):
        (tmp_path / "in" / name).write_bytes(packets.get(name, b""))
    (tmp_path / "in" / "app.ts").write_text("export const x = 1;\n")  # TypeScript: left out
    out = tmp_path / "out"
    jobs, problems = plan_jobs([str(tmp_path / "in")], out, videos=True)
    assert sorted((job.source.name, job.target.name) for job in jobs) == [
        ("00001.MTS", "00001.mp4"),
        ("CLIP.MP4", "CLIP.mp4"),
        ("show.ts", "show.mp4"),
    ]
    assert problems == [
        (tmp_path / "in" / "CLIP.MOV", f"same output name as {tmp_path / 'in' / 'CLIP.MP4'}; restore it separately")
    ]


def test_a_file_given_twice_is_restored_once_not_failed(tmp_path, tiny_checkpoint, capsys):
    photo = _photo(tmp_path / "in" / "a.png")
    assert _restore(str(photo), str(photo), "-o", str(tmp_path / "out"), weights=tiny_checkpoint) == 0
    assert "restored 1," in capsys.readouterr().out


def test_a_file_also_inside_a_given_folder_gets_the_folders_name_whatever_the_order(tmp_path):
    # colB/sub/y.png given alone and through colB: named sub/y.png either way, so colB/y.png keeps its own y.png.
    tree = tmp_path / "colB"
    _photo(tree / "y.png")
    _photo(tree / "sub" / "y.png")
    out = tmp_path / "out"
    for inputs in ([str(tree / "sub" / "y.png"), str(tree)], [str(tree), str(tree / "sub" / "y.png")]):
        jobs, problems = plan_jobs(inputs, out)
        assert problems == [], inputs
        assert sorted((job.source, job.target) for job in jobs) == [
            (tree / "sub" / "y.png", out / "sub" / "y.png"),
            (tree / "y.png", out / "y.png"),
        ], inputs
    jobs, problems = plan_jobs([str(tree / "sub"), str(tree)], out)  # a folder inside another given folder
    assert problems == [] and sorted(job.target for job in jobs) == [out / "sub" / "y.png", out / "y.png"]


# 8. Temporary and lock files of a killed run are cleaned by the next run into the same folder.
def test_a_killed_runs_leftovers_are_cleaned_by_the_next_run(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale_part = out / f".a.{socket.gethostname()}-{pid}.darkir-part.png"
    stale_lock = lock_path(out / "a.png")
    live_part = out / f".a.{socket.gethostname()}-{os.getppid()}.darkir-part.png"
    other_host = out / f".a.elsewhere-{pid}.darkir-part.png"
    for path in (stale_part, stale_lock, live_part, other_host):
        path.write_bytes(b"x")
    _photo(tmp_path / "in" / "a.png")
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 0
    assert not stale_part.exists() and not stale_lock.exists()
    assert live_part.exists() and other_host.exists()  # a live process's file and another machine's are kept


def test_a_killed_containers_leftovers_are_cleaned_though_its_pid_or_host_name_comes_back(tmp_path, monkeypatch):
    """A container's entry point is pid 1 at every start, so a killed run's temporary file (a video's may be
    gigabytes) looked live for ever under the same host name; under a new one (a restarted pod) it was kept for
    ever as another machine's. Files of other pid namespaces (containers sharing the host's name) and of hosts
    whose names extend this one's (``vm`` and ``vm-1``) are never taken for this one's."""
    from darkir.outputs import FOREIGN_PART_AGE_S, _pid_namespace, clean_stale, process_start, temporary_path

    host, parent, namespace = socket.gethostname(), os.getppid(), _pid_namespace()
    here = f"n{namespace}"
    reused = tmp_path / f".a.{host}-{parent}@{process_start(parent) + 1}{here}.darkir-part.png"  # that pid, reused
    live = tmp_path / f".b.{host}-{parent}@{process_start(parent)}{here}.darkir-part.png"
    old_pod = tmp_path / ".c.pod-7f9c-1@4242n7.darkir-part.mp4"
    busy_pod = tmp_path / ".d.pod-7f9c-1@4242n7.darkir-part.mp4"
    other_container = tmp_path / f".e.{host}-{parent}@1n1.darkir-part.png"  # this host's name, another namespace
    longer_name = tmp_path / f".f.{host}-1-4194303@5.darkir-part.png"  # host "<host>-1", pid 4194303 (gone here)
    for path in (reused, live, old_pod, busy_pod, other_container, longer_name):
        path.write_bytes(b"x")
    assert clean_stale(tmp_path) == [reused]
    assert live.exists() and old_pod.exists() and busy_pod.exists() and other_container.exists()
    assert longer_name.exists()
    later = time.time() + FOREIGN_PART_AGE_S + 60
    monkeypatch.setattr("darkir.outputs.time.time", lambda: later)
    assert sorted(clean_stale(tmp_path)) == sorted([old_pod, busy_pod, other_container, longer_name])
    assert live.exists()  # this container's live process's, however old
    monkeypatch.undo()
    mine = temporary_path(tmp_path / "g.png")
    assert mine.name == f".g.{host}-{os.getpid()}@{process_start(os.getpid())}{here}.darkir-part.png"
    mine.write_bytes(b"x")
    assert clean_stale(tmp_path) == [] and mine.exists()


def test_a_held_lock_is_not_cleaned(tmp_path):
    import fcntl

    from darkir.outputs import clean_stale

    lock = lock_path(tmp_path / "a.png")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert clean_stale(tmp_path) == [] and lock.exists()


# 9. Reports hold only valid JSON numbers; identical images have a stated, finite PSNR; NaN input is an error.
def test_reports_are_strict_json_with_a_finite_psnr_for_identical_images(tmp_path, tiny_checkpoint):
    for folder in ("low", "high"):
        (tmp_path / "set" / folder).mkdir(parents=True)
    for index in range(3):
        image = (np.random.default_rng(index).random((32, 40, 3)) * 255).astype(np.uint8)
        for folder in ("low", "high"):
            cv2.imwrite(str(tmp_path / "set" / folder / f"{index}.png"), image)  # the input is its own reference
    out = tmp_path / "report"
    command = ["compare", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "set"), "-o", str(out)]
    assert main([*command, "--no-lpips", "-q", "--tile", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert summary["methods"]["input"]["mean"]["psnr"] == summary["psnr_cap_db"] == 100
    assert summary["methods"]["tiny"]["mean"]["lpips"] is None
    assert "counts as 100 dB" in (out / "report.md").read_text()


def test_nan_input_is_an_error(tiny_restorer):
    x = torch.rand(1, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DarkIRError, match="NaN"):
        tiny_restorer(x)
    with pytest.raises(DarkIRError, match="NaN"):
        tiny_restorer.restore_array(np.full((8, 8, 3), np.nan, np.float32))


# 10. User mistakes: one line and exit 2, before any work.
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--format", "gif"], "--format gif"),
        (["--crf", "999"], "--crf"),
        (["--device", "gpu"], "unknown device 'gpu'"),
    ],
)
def test_restore_mistakes_are_one_line_and_exit_2(tmp_path, tiny_checkpoint, capsys, flags, message):
    photo = _photo(tmp_path / "in" / "a.png")
    try:
        code = _restore(str(photo), "-o", str(tmp_path / "out"), *flags, weights=tiny_checkpoint)
    except SystemExit as stop:  # argparse
        code = stop.code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # argparse shows the usage above its one-line error
    assert code == 2 and message in last and "Traceback" not in err and "Error:" not in err
    assert not (tmp_path / "out" / "a.png").exists()


def test_api_mistakes_are_darkir_errors(tiny_checkpoint, tiny_restorer):
    with pytest.raises(DarkIRError, match="unknown device"):
        Restorer(load_model(tiny_checkpoint), device="gpu")
    for bad in (np.zeros((0, 8, 3), np.float32), np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.float32)):
        with pytest.raises(DarkIRError, match=r"\(H, W, 3\)"):
            tiny_restorer.restore_array(bad)
    with pytest.raises(DarkIRError, match="non-empty"):
        tiny_restorer.restore_tensor(torch.zeros(0, 3, 8, 8))


def test_an_output_that_is_a_folder_or_a_dead_link_is_a_failure_not_skipped(tmp_path, tiny_checkpoint, capsys):
    _photo(tmp_path / "in" / "a.png")
    _photo(tmp_path / "in" / "b.png", seed=1)
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)
    (out / "b.png").symlink_to(tmp_path / "nowhere.png")
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 1
    captured = capsys.readouterr()
    assert "is a folder" in captured.err and "link to nothing" in captured.err
    assert "skipped 0 existing" in captured.out


def test_a_file_where_an_output_folder_goes_is_named_as_such(tmp_path, tiny_checkpoint, capsys):
    """``out/sub`` is a file, so ``out/sub/a.png`` cannot be written: the error said only "File exists"."""
    _photo(tmp_path / "in" / "sub" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("the user's notes")
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 1
    assert f"{out / 'sub' / 'a.png'}: {out / 'sub'} is a file, not a folder" in capsys.readouterr().err
    assert (out / "sub").read_text() == "the user's notes"


def test_explicit_tiles_are_not_called_tiled_to_fit_memory(tmp_path, tiny_checkpoint, capsys):
    """The summary of a fixed tile names its flag; it said "in 129 px windows" for ``--tile 129``'s 128 px windows."""
    _photo(tmp_path / "in" / "a.png", height=80, width=160)
    assert _restore(str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--tile", "129", weights=tiny_checkpoint) == 0
    out = capsys.readouterr().out
    assert "(1 tiled with --tile 129)" in out and "fit memory" not in out and "129 px" not in out


def test_metrics_with_a_missing_reference_folder_is_one_line(tmp_path, capsys):
    _photo(tmp_path / "pred" / "a.png")
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "nope"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "reference folder" in err and "no reference image" not in err


def test_metrics_given_files_says_it_compares_folders(tmp_path, capsys):
    _photo(tmp_path / "pred" / "a.png")
    _photo(tmp_path / "gt" / "a.png")
    assert main(["metrics", str(tmp_path / "pred" / "a.png"), str(tmp_path / "gt"), "-q"]) == 2
    err = capsys.readouterr().err
    assert (
        f"PRED (the folder of outputs) {tmp_path / 'pred' / 'a.png'} is a file; darkir metrics compares two folders"
        in err
    )


# 8. The demo's results go when it is stopped with SIGTERM, and a killed demo's folder goes when the next one starts.
def test_a_killed_demos_results_are_removed_by_the_next_one(tmp_path, monkeypatch, tiny_checkpoint):
    from darkir import demo

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"darkir-demo-{int(dead.stdout)}-abc"
    (stale / "x").mkdir(parents=True)
    alive = tmp_path / f"darkir-demo-{os.getppid()}-def"
    alive.mkdir()
    stale_copies = tmp_path / f"darkir-gradio-{int(dead.stdout)}-abc"  # gradio's copies of its uploads and results
    (stale_copies / "y").mkdir(parents=True)
    engine = demo.DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        assert not stale.exists() and alive.exists() and engine.workdir.name.startswith(f"darkir-demo-{os.getpid()}-")
        assert not stale_copies.exists()
    finally:
        engine.close()


def test_a_live_demos_folders_in_another_pid_namespace_are_left_alone(tmp_path, monkeypatch):
    """A demo in another PID namespace sharing the temporary folder (a container's) seems gone (its pid is not
    this namespace's): its live result folders were deleted, and every restore of it failed after."""
    from darkir import demo

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with monkeypatch.context() as other:
        other.setattr(os, "getpid", lambda: int(gone.stdout))  # a pid no process of this namespace has
        live = demo._HeldFolder(demo.WORKDIR_PREFIX)  # held as that demo holds it
    assert live.path.parent == tmp_path
    (live.path / "result.png").write_bytes(b"a result")
    try:
        assert demo.remove_stale_workdirs() == [] and (live.path / "result.png").is_file()
    finally:
        live.cleanup()
    assert not live.path.exists()


@pytest.mark.slow
@contextlib.contextmanager
def _serving_demo(tmp_path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """A ``darkir demo`` process (temporary files under ``tmp_path``) and its URL once it serves; killed after. Ctrl-C
    reaches it as a terminal's does, also where the tests run in the background (their children ignore it)."""
    import signal
    import urllib.request

    from tests.test_demo import _demo_driver

    port = _demo_driver()._free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "-m", "darkir", "demo", "--port", str(port), "--device", "cpu", *flags],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url, deadline = f"http://127.0.0.1:{port}/", time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.time() < deadline
                time.sleep(0.5)
        yield process, url
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize(("stop", "code"), [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_demo_deletes_its_results_on_sigterm(tmp_path, tiny_checkpoint, stop, code):
    """... and ends with the exit code of other commands stopped so (it was 0)."""
    import signal

    from gradio_client import Client, handle_file

    with _serving_demo(tmp_path, "--weights", str(tiny_checkpoint)) as (process, url):
        Client(url, verbose=False).predict(handle_file(str(_photo(tmp_path / "p.png"))), "tiny", api_name="/restore")
        workdirs = list(tmp_path.glob(f"darkir-demo-{process.pid}-*"))
        assert len(workdirs) == 1 and any(workdirs[0].rglob("*.png"))
        copies = list(tmp_path.glob(f"darkir-gradio-{process.pid}-*"))  # gradio's copies of the upload and result
        assert len(copies) == 1 and any(copies[0].rglob("*.png")) and not (tmp_path / "gradio").exists()
        process.send_signal(getattr(signal, stop))
        assert process.wait(timeout=60) == code
        assert not workdirs[0].exists()
        assert not copies[0].exists()  # they stayed in <temp>/gradio after the demo stopped


def test_a_demo_stopped_while_it_restores_exits_as_other_commands_do(tmp_path):
    """SIGTERM while a restore ran in one of gradio's threads: the results were deleted, then the interpreter's exit
    aborted ("terminate called without an active exception", exit 134) (found by an outside test of the demo)."""
    import signal

    from gradio_client import Client, handle_file

    photo = _photo(tmp_path / "big.png", height=1200, width=1600)
    with _serving_demo(tmp_path) as (process, url):  # the packaged weights: seconds a restore, not milliseconds
        Client(url, verbose=False).submit(handle_file(str(photo)), "DarkIR", 0, api_name="/restore")
        time.sleep(5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
        assert process.stderr.read().decode().strip().endswith("darkir: terminated")
        assert not list(tmp_path.glob("darkir-demo-*")) and not list(tmp_path.glob("darkir-gradio-*"))


def test_the_demos_signal_handlers_are_the_callers_again_once_it_stops():
    """launch() left its handlers in place: a program that served the demo from Python had its own Ctrl-C handler
    replaced for good (found in review)."""
    import signal

    from darkir.demo import _stopped_by_signals

    def own(signum: int, frame: object) -> None:
        pass

    before = {signum: signal.signal(signum, own) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with _stopped_by_signals() as stopped:
            assert signal.getsignal(signal.SIGINT) is not own
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert stopped == [signal.SIGTERM]
        assert all(signal.getsignal(signum) is own for signum in before)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_an_input_of_a_long_legal_name_is_restored(tmp_path, tiny_checkpoint):
    """A 250-byte name is legal; its lock file (``.<name>.darkir-lock``) and temporary file were not, so the
    output "could not be written". Their names are now cut short with a digest, one per output."""
    from darkir.outputs import lock_path, temporary_path

    name = "x" * 246 + ".png"
    _photo(tmp_path / "in" / name)
    out = tmp_path / "out"
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 0
    assert sorted(p.name for p in out.iterdir()) == [name]
    other = out / ("x" * 245 + "y.png")
    assert lock_path(out / name) != lock_path(other) and temporary_path(out / name) != temporary_path(other)


def test_an_output_of_a_long_legal_path_is_restored(tmp_path, tiny_checkpoint):
    """An output path of 4,070 bytes is legal (under PATH_MAX, 4,096 with its NUL); its temporary file's, ~40 bytes
    longer, was not: "File name too long" (found by an outside test). The temporary and lock names are cut short
    to fit the path too."""
    from darkir.outputs import PATH_MAX, lock_path, temporary_path

    out = tmp_path / "out"
    deep = Path(*["d" * 250] * ((4070 - len(os.fsencode(str(out))) - 100) // 251))  # leaving 100-350 bytes
    room = 4070 - len(os.fsencode(str(out / deep))) - 1
    deep = deep / ("e" * (room - 100)) if room > 200 else deep  # (a name's 255 bytes at most)
    room = 4070 - len(os.fsencode(str(out / deep))) - 1
    name = "y" * (room - 4) + ".png"
    (tmp_path / "in" / deep).mkdir(parents=True)
    (tmp_path / "in" / deep / name).write_bytes(_photo(tmp_path / "a.png").read_bytes())  # (OpenCV writes no such)
    assert _restore(str(tmp_path / "in"), "-o", str(out), weights=tiny_checkpoint) == 0
    assert [p.name for p in (out / deep).iterdir()] == [name] and len(os.fsencode(str(out / deep / name))) == 4070
    for helper in (lock_path, temporary_path):
        assert len(os.fsencode(str(helper(out / deep / name)))) < PATH_MAX


def test_an_append_only_output_folder_restores_every_file(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    """In an append-only folder (``chattr +a``) a lock file cannot be removed: the first file's release raised, the
    batch stopped with exit 1 and no summary; the temporary file it left then stopped every later run."""
    out = tmp_path / "out"
    real_unlink = os.unlink

    def append_only(path, *args, **kwargs):
        if Path(path).parent == out:
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", append_only)
    photos = [_photo(tmp_path / "in" / f"{name}.png", seed=seed) for seed, name in enumerate("ab")]
    out.mkdir()
    (out / f".c.{socket.gethostname()}-4194303.darkir-part.png").write_bytes(b"a killed run's")  # pid 4194303: gone
    args = ["restore", str(tmp_path / "in"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]
    assert main(args) == 0
    assert "restored 2," in capsys.readouterr().out
    assert all((out / photo.name).is_file() for photo in photos)


def test_a_broken_link_in_a_folder_fails_as_when_it_is_named(tmp_path, tiny_checkpoint, capsys):
    """A link of an image's name to a drive not mounted was passed over without a word: "failed 0", exit 0."""
    _photo(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.png").symlink_to("/mnt/not-mounted/b.png")
    assert _restore(str(tmp_path / "in"), "-o", str(tmp_path / "out"), weights=tiny_checkpoint) == 1
    captured = capsys.readouterr()
    assert "restored 1," in captured.out and "failed 1" in captured.out
    assert f"{tmp_path / 'in' / 'b.png'}: a symbolic link to nothing" in captured.err


def test_a_demo_with_no_writable_temporary_folder_says_to_set_tmpdir(monkeypatch, tiny_checkpoint):
    """With no usable temporary folder the demo ended in "FileNotFoundError: No usable temporary directory", exit 1."""
    import tempfile

    from darkir import demo
    from darkir.errors import DarkIRError

    def none_usable(*args: object, **kwargs: object) -> str:
        raise FileNotFoundError(2, "No usable temporary directory found in ['/tmp']")

    monkeypatch.setattr(tempfile, "mkdtemp", none_usable)
    with pytest.raises(DarkIRError, match=r"found none it can write in \(No usable .*\): set TMPDIR to a writable"):
        demo.DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
