"""`darkir restore` and the seed's inference.py on real files: folders, formats, skips, failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkir.cli import main
from darkir.data.layouts import list_images
from darkir.errors import DarkIRWarning
from tests.conftest import REPO


@pytest.fixture
def photos(tmp_path):
    """A folder with nested images of several kinds, and one corrupt file."""
    root = tmp_path / "in"
    (root / "night" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / "a.png"), (rng.random((40, 56, 3)) * 60).astype(np.uint8))
    cv2.imwrite(str(root / "night" / "b.jpg"), (rng.random((33, 45, 3)) * 60).astype(np.uint8))
    cv2.imwrite(str(root / "night" / "deep" / "c16.png"), (rng.random((30, 30, 3)) * 9000).astype(np.uint16))
    rgba = np.dstack([(rng.random((24, 24, 3)) * 60).astype(np.uint8), np.full((24, 24), 200, np.uint8)])
    cv2.imwrite(str(root / "night" / "d_alpha.png"), rgba)
    (root / "night" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    (root / "readme.txt").write_text("not an image")
    return root


def test_an_interrupted_restore_says_what_it_had_done(photos, tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Ctrl-C said only "darkir: interrupted": how many files were done, and how many not, went unsaid."""
    from darkir.infer import Restorer

    restore, calls = Restorer.restore_array, []

    def interrupted(self, rgb):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return restore(self, rgb)

    monkeypatch.setattr(Restorer, "restore_array", interrupted)
    out = tmp_path / "out"
    assert main(["restore", str(photos), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 130
    captured = capsys.readouterr()
    assert f"interrupted: restored 2, skipped 0 existing, failed 1; 2 not restored -> {out}" in captured.out
    assert captured.err.strip().endswith("darkir: interrupted")
    assert len([p for p in out.rglob("*") if p.is_file()]) == 2


def test_folder_is_restored_recursively(photos, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    code = main(["restore", str(photos), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"])
    assert code == 1  # the corrupt file failed, the rest were restored
    captured = capsys.readouterr()
    assert "broken.png: cannot decode image" in captured.err
    assert "restored 4," in captured.out and "failed 1" in captured.out
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert produced == ["a.png", "night/b.jpg", "night/d_alpha.png", "night/deep/c16.png"]
    deep = cv2.imread(str(out / "night" / "deep" / "c16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (30, 30, 3)
    alpha = cv2.imread(str(out / "night" / "d_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (24, 24, 4) and (alpha[..., 3] == 200).all()
    original = cv2.imread(str(photos / "a.png"))
    assert not np.array_equal(cv2.imread(str(out / "a.png")), original)


def test_verbose_says_how_each_image_was_restored_and_budget_flags_are_checked(
    photos, tmp_path, tiny_checkpoint, capsys
):
    out = tmp_path / "out"
    weights = ["--weights", str(tiny_checkpoint), "-q"]
    assert main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "-v", "--max-memory", "20GB"]) == 0
    assert "a.png: whole image: needs ~" in capsys.readouterr().err
    assert (
        main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "--tile", "256", "--max-memory", "2GB"]) == 2
    )
    assert "--max-memory applies to --tile auto" in capsys.readouterr().err
    assert main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "--max-memory", "lots"]) == 2
    assert "cannot read memory size 'lots'" in capsys.readouterr().err
    assert main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "--max-memory", "10MB"]) == 2
    err = capsys.readouterr().err
    assert "--max-memory 10 MB is less than the process already holds" in err and "without a unit" not in err
    assert main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "--max-memory", "3"]) == 2
    err = capsys.readouterr().err.rstrip()  # (3 GB was meant)
    assert "--max-memory 3 bytes is less than the process already holds with the model loaded (~" in err
    assert err.endswith("(a number without a unit is bytes: give a unit, as in '2GB')")
    assert main(["restore", str(photos / "a.png"), "-o", str(out), *weights, "--max-memory", "8KB"]) == 2
    assert "without a unit" not in capsys.readouterr().err  # (a unit given: small, but meant)


def test_existing_outputs_are_kept_unless_overwrite(photos, tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    main(["restore", str(photos / "a.png"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"])
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "skipped 1 existing" in capsys.readouterr().out
    assert (
        main(["restore", str(photos / "a.png"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q", "--overwrite"])
        == 0
    )
    assert cv2.imread(str(out / "a.png")).shape == (40, 56, 3)


def test_globs_and_format_conversion(photos, tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    pattern = str(photos / "**" / "*.jpg")
    assert main(["restore", pattern, "-o", str(out), "--weights", str(tiny_checkpoint), "--format", "png", "-q"]) == 0
    assert [p.name for p in out.iterdir()] == ["b.png"]


def test_jpeg_quality_sets_how_jpeg_outputs_are_coded(tmp_path, tiny_checkpoint, capsys):
    """JPEG outputs were always coded at quality 95, whatever the photo's own, with no way to choose."""
    from darkir import Restorer
    from darkir.models import create_model

    rng = np.random.default_rng(1)
    cv2.imwrite(str(tmp_path / "n.jpg"), (rng.random((48, 64, 3)) * 80).astype(np.uint8))
    args = ["restore", str(tmp_path / "n.jpg"), "--weights", str(tiny_checkpoint), "--precision", "fp32", "-q"]
    restored = Restorer(create_model(str(tiny_checkpoint)), precision="fp32")(tmp_path / "n.jpg").astype(int)
    errors = {}
    for quality in (30, 95, 100):
        out = tmp_path / f"q{quality}"
        assert main([*args, "-o", str(out), *(["--jpeg-quality", str(quality)] if quality != 95 else [])]) == 0
        errors[quality] = np.abs(cv2.imread(str(out / "n.jpg"))[:, :, ::-1].astype(int) - restored).mean()
    assert errors[100] < errors[95] < errors[30]
    with pytest.raises(SystemExit):
        main([*args, "-o", str(tmp_path / "never"), "--jpeg-quality", "0"])
    assert "--jpeg-quality: expected a whole number from 1 to 100, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "shown"), [("", "''"), ("gif", "gif")])
def test_a_format_darkir_does_not_write_is_refused(photos, tmp_path, tiny_checkpoint, capsys, value, shown):
    """An empty --format (an unset variable) is an error like an unknown one, not the input's format."""
    args = ["restore", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]
    assert main([*args, "--format", value, "-q"]) == 2
    assert f"--format {shown}: darkir writes png, jpg" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_not_re_read(photos, tiny_checkpoint):
    out = photos / "restored"
    assert main(["restore", str(photos / "a.png"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert main(["restore", str(photos), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 1
    assert not (out / "restored").exists()


def _linked(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda root: root / "missing", "no such file or folder"),
        (lambda root: root / "empty", "no images"),
        (lambda root: root / "*.gif", "no image matches"),
        (lambda root: _linked(root / "loop.png", root / "loop.png"), "a symbolic link to nothing"),
        (lambda root: _linked(root / "gone.png", root / "nowhere.png"), "a symbolic link to nothing"),
        (lambda root: _fifo(root / "pipe.png"), "not a file or folder (a pipe, socket or device)"),
    ],
)
def test_inputs_that_yield_nothing(tmp_path, tiny_checkpoint, capsys, make_input, message):
    (tmp_path / "empty").mkdir()
    code = main(["restore", str(make_input(tmp_path)), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_pipe_named_like_an_image_in_a_folder_fails_as_when_it_is_named(tmp_path, tiny_checkpoint, capsys):
    """A FIFO named b.png in a folder was passed over (restored 1, failed 0, exit 0), where naming it fails."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((24, 32, 3), 30, np.uint8))
    _fifo(folder / "b.png")
    assert main(["restore", str(folder), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]) == 1
    captured = capsys.readouterr()
    assert "restored 1, skipped 0 existing, failed 1" in captured.out
    assert f"{folder / 'b.png'}: not a file or folder (a pipe, socket or device)" in captured.err
    with pytest.warns(DarkIRWarning, match=r"left out 1 named like images that are no files \(a pipe, socket or"):
        assert [path.name for path in list_images(folder)] == ["a.png"]


def test_unwritable_output_is_one_message(photos, tmp_path, tiny_checkpoint, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["restore", str(photos), "-o", str(blocker / "out"), "--weights", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create output folder" in err


def test_an_output_name_too_long_fails_that_image_alone(tmp_path, tiny_checkpoint, capsys):
    """An input name of 255 bytes is legal, its output with a longer suffix is not: that image fails, the others of
    the batch are restored (the whole batch stopped at the first such name)."""
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.full((24, 32, 3), 30, np.uint8)
    long_name = f"{'a' * 251}.png"
    for name in (long_name, "b.png", "c.png"):
        cv2.imwrite(str(folder / name), image)
    out = tmp_path / "out"
    args = ["restore", str(folder), "-o", str(out), "--format", "jpeg", "--weights", str(tiny_checkpoint), "-q"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["b.jpeg", "c.jpeg"]
    assert "restored 2, skipped 0 existing, failed 1" in captured.out
    assert f"{out / ('a' * 251)}.jpeg: File name too long" in captured.err


def test_a_video_output_name_too_long_is_one_line(tmp_path, capsys):
    """The system's refusal of a file is one line naming the file, not a Python exception's."""
    out = tmp_path / f"{'v' * 252}.mkv"
    assert main(["video", str(tmp_path / "clip.mp4"), "-o", str(out)]) == 1
    assert capsys.readouterr().err == f"darkir: error: {out}: File name too long\n"


def test_a_warning_every_image_of_a_batch_gives_is_printed_once(tmp_path, tiny_checkpoint, capsys):
    """Small tiles warn about tone: once for the batch, not once per image (reading a TIFF changes Python's warning
    filters, which reset its own once-per-place record)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for index, suffix in enumerate((".png", ".tif", ".png", ".tif")):
        cv2.imwrite(str(folder / f"{index}{suffix}"), np.full((96, 96, 3), 30, np.uint8))
    args = ["restore", str(folder), "-o", str(tmp_path / "out"), "--tile", "64", "--weights", str(tiny_checkpoint)]
    assert main([*args, "-q"]) == 0
    assert capsys.readouterr().err.count("warning: restoring in 64 px tiles") == 1


def test_a_warning_is_printed_on_a_line_of_its_own_below_the_progress_bar(tmp_path, tiny_checkpoint, capsys):
    """Warnings were written onto the progress bar's line (``... base.png]darkir: warning: ...``)."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((96, 96, 3), 30, np.uint8))
    args = ["restore", str(folder), "-o", str(tmp_path / "out"), "--tile", "64", "--weights", str(tiny_checkpoint)]
    assert main(args) == 0
    pieces = [piece.strip() for line in capsys.readouterr().err.split("\n") for piece in line.split("\r")]
    assert any(piece.startswith("darkir: warning: restoring in 64 px tiles") for piece in pieces), pieces


def test_an_input_that_cannot_be_read_is_named_not_its_output(photos, tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """A permission error reading an input names that input (it named the output, which was never touched)."""
    from darkir.infer import files

    unreadable = photos / "a.png"
    read = files.read_image

    def refuse(path, *args, **kwargs):
        if Path(path) == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return read(path)

    monkeypatch.setattr(files, "read_image", refuse)
    out = tmp_path / "out"
    assert main(["restore", str(unreadable), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{unreadable}: Permission denied" in err and str(out / "a.png") not in err


def test_an_image_too_large_to_decode_says_tiles_cannot_help(photos, tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Out of memory while decoding: the advice was "try a smaller tile", which cannot help (the whole image is
    decoded first)."""
    import darkir.imageio

    def too_large(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(darkir.imageio, "_pixels", too_large)
    source = photos / "a.png"
    assert main(["restore", str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{source}: not enough memory to decode it; free memory or downscale it" in err and "tile" not in err


def test_missing_default_weights_are_explained(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("darkir.models.zoo.DEFAULT_WEIGHTS", None)
    assert main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "o")]) == 2
    assert "no weights given: pass --weights" in capsys.readouterr().err


def test_bad_weights_path(photos, tmp_path, capsys):
    assert main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--weights", "nope.pth"]) == 2
    assert "weights not found" in capsys.readouterr().err


def test_seed_inference_script(photos, tmp_path, tiny_checkpoint):
    options = tmp_path / "infer.yml"
    text = (REPO / "options" / "inference" / "LOLBlur.yml").read_text()
    options.write_text(text.replace("./models/DarkIR_64width.pt", str(tiny_checkpoint)))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(photos / "a.png", work / "a.png")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, str(REPO / "inference.py"), "-p", str(options), "-i", str(work)]
    # the options describe a width-64 network, so loading the tiny checkpoint must fail by name ...
    failed = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    assert failed.returncode == 2 and "contradicts the one stored with these weights" in failed.stderr
    # ... and with the matching network section it restores into ./images/results.
    options.write_text(
        "network:\n  width: 8\n  middle_blk_num_enc: 1\n  middle_blk_num_dec: 1\n  enc_blk_nums: [1, 1, 1]\n"
        f"  dec_blk_nums: [1, 1, 1]\n  use_csf: true\nsave:\n  path: {tiny_checkpoint}\n"
    )
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (work / "images" / "results" / "a.png").is_file()
    # a file already in the output folder (the user's own, say) is not replaced, as the official script would ...
    mine = work / "images" / "results" / "a.png"
    mine.write_bytes(b"the user's own file")
    again = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    assert (
        again.returncode == 0 and "skipped 1 existing" in again.stdout and mine.read_bytes() == b"the user's own file"
    )
    # ... unless asked to
    replaced = subprocess.run([*command, "--overwrite"], cwd=work, capture_output=True, text=True, env=env)
    assert replaced.returncode == 0 and mine.read_bytes() != b"the user's own file"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("height", "width", "flags", "limit_gb"),
    [(2160, 3840, [], 3.0), (1080, 1920, ["--max-memory", "1GB"], 1.1)],
    ids=["4k-default", "1080p-1GB"],
)
def test_large_restore_stays_within_the_memory_budget(tmp_path, height, width, flags, limit_gb):
    """A large image restores tiled in bounded memory (width-32 model, CPU): a 3840x2160 one under 3 GB with the
    defaults, a 1920x1080 one within 10% of --max-memory (the smaller image keeps the suite's time)."""
    from darkir.checkpoint import save_checkpoint
    from darkir.models.factory import build_model
    from tests.conftest import randomize

    weights = save_checkpoint(tmp_path / "w32.safetensors", randomize(build_model("darkir-w32"), seed=1))
    y, x = np.mgrid[0:height, 0:width]
    cv2.imwrite(str(tmp_path / "big.png"), np.stack([x % 200, y % 150, (x + y) % 100], -1).astype(np.uint8) // 3)
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "darkir.cli", "restore", str(tmp_path / "big.png"), "-o", str(tmp_path / "out")]
    result = subprocess.run(
        [sys.executable, "-c", probe, *command, "--weights", str(weights), "--device", "cpu", "-q", "-v", *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_gb = int(result.stdout.split()[-1]) * 1024 / 1e9  # ru_maxrss is in KiB
    assert peak_gb < limit_gb, f"peak RSS {peak_gb:.2f} GB"
    assert "tiled in" in result.stderr
    assert cv2.imread(str(tmp_path / "out" / "big.png")).shape == (height, width, 3)


def test_lolblur_frames_restore_whole_by_default():
    """With no flags a 1120x640 frame gets the model's own output (no tiles) in a fresh process with the default
    weights, on a machine with a few GB free (the default budget is half the free memory, at most 2.75 GB)."""
    import torch

    from darkir.infer.memory import available_memory

    if available_memory(torch.device("cpu")) < 5.5e9:
        pytest.skip("this machine has too little free memory for the default budget to hold a whole frame")
    code = "from darkir import Restorer; print(Restorer.from_pretrained(device='cpu').plan_for(640, 1120))"
    plan = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tile=0, lean=False" in plan, plan


@pytest.mark.slow
def test_default_weights_restore_real_pairs_better_than_auto_exposure(shared, tmp_path, capsys):
    """`darkir restore` without --weights turns the real sanity inputs into images closer to their references
    than a global auto-exposure gets (SSIM on each image, PSNR over the set), and visibly brighter than the inputs."""
    import torch

    from darkir.eval.methods import auto_exposure
    from darkir.eval.metrics import prepare, psnr, ssim
    from darkir.imageio import read_image

    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["lolv2real_00733", "lolv2synth_r13073518t"]
    for name in names:
        shutil.copy(shared / "sanity" / f"{name}_low.png", inputs / f"{name}.png")
    assert main(["restore", str(inputs), "-o", str(tmp_path / "out"), "-q", "--device", "cpu"]) == 0
    as_tensor = lambda rgb: torch.from_numpy(rgb).permute(2, 0, 1)[None]  # noqa: E731
    ours, baseline = [], []
    for name in names:
        low = as_tensor(read_image(inputs / f"{name}.png").rgb)
        out = as_tensor(read_image(tmp_path / "out" / f"{name}.png").rgb)
        high = as_tensor(read_image(shared / "sanity" / f"{name}_high.png").rgb)
        exposure = prepare(auto_exposure().run(low))
        assert out.mean() > 2 * low.mean()
        assert ssim(out, high) > ssim(exposure, high)
        ours.append(psnr(out, high).item())
        baseline.append(psnr(exposure, high).item())
    assert sum(ours) / len(ours) > sum(baseline) / len(baseline) + 1.0  # the set's mean PSNR, as the model card


def test_control_characters_of_a_file_name_reach_the_terminal_as_escapes(tmp_path, capsys, tiny_checkpoint):
    """A file named with ESC or CR could clear the screen, recolour it or write over a line of the run's report when
    printed raw; darkir prints them as escapes (in failures, warnings, errors and the progress bar)."""
    source = tmp_path / "in"
    source.mkdir()
    broken = source / "a\x1b[2Jb\rc.png"
    broken.write_bytes(b"not an image")
    assert main(["restore", str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "a\\x1b[2Jb\\x0dc.png" in err and "\x1b[2J" not in err and "b\rc" not in err
    assert main(["restore", str(broken), "-o", str(source), "--weights", str(tiny_checkpoint)]) == 2
    assert "\x1b" not in capsys.readouterr().err


def test_a_file_named_with_a_newline_fails_on_one_line_of_its_own(tmp_path, capsys, tiny_checkpoint):
    """``darkir: failed: tr`` and ``unc.png: cannot decode image`` came out as two lines for a file ``tr\\nunc.png``,
    where the README promises each input it cannot use a line of its own (found by an outside test); so is a
    missing file the command line names."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "tr\nunc.png").write_bytes(b"bad")
    assert main(["restore", str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if "unc.png" in line]
    assert failed == [f"darkir: failed: {source}/tr\\nunc.png: cannot decode image (corrupt or not a PNG file)"]
    missing = tmp_path / "gone\n.png"
    assert main(["restore", str(missing), str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)])
    assert f"darkir: {tmp_path}/gone\\n.png: no such file or folder" in capsys.readouterr().err.splitlines()


def test_control_characters_of_an_output_folder_reach_stdout_as_escapes(tmp_path, capsys, tiny_checkpoint):
    """restore's last line, on stdout, printed the output folder raw: ``-o 'out\x1b[2J'`` cleared the screen."""
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.full((16, 16, 3), 40, np.uint8))
    output = tmp_path / "out\x1b[2J"
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(output), "--weights", str(tiny_checkpoint), "-q"]) == 0
    out = capsys.readouterr().out
    assert "out\\x1b[2J" in out and "\x1b" not in out and (output / "a.png").is_file()


def test_a_newline_in_a_file_name_stays_on_the_progress_bars_line(tmp_path, capsys, tiny_checkpoint):
    """The bar showed the name being restored with its newline raw: a stray "line.png]" line, twice."""
    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "new\nline.png"), np.full((40, 40, 3), 30, np.uint8))
    assert main(["restore", str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint)]) == 0
    lines = capsys.readouterr().err.split("\n")
    assert any("new\\nline.png]" in line for line in lines) and not any(line.startswith("line.png") for line in lines)


def test_threads_set_by_the_command_line_are_set_back_when_main_returns(tmp_path, tiny_checkpoint, monkeypatch):
    """``main([... "--threads", "1"])`` called from Python left torch on one thread for the rest of the process;
    OpenCV runs on one thread during a command (as darkir's first image read left it before), and as the caller
    had it after."""
    import torch

    import darkir.imageio

    source = tmp_path / "in"
    source.mkdir()
    cv2.imwrite(str(source / "a.png"), np.full((16, 16, 3), 30, np.uint8))
    before, opencv = torch.get_num_threads(), cv2.getNumThreads()
    wanted = 1 if before != 1 else 2
    during, decode = [], darkir.imageio._decode_opencv
    monkeypatch.setattr(darkir.imageio, "_decode_opencv", lambda *a: during.append(cv2.getNumThreads()) or decode(*a))
    args = ["restore", str(source), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]
    try:
        cv2.setNumThreads(2)
        assert main([*args, "--threads", str(wanted)]) == 0
        assert torch.get_num_threads() == before and during == [1] and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(opencv)


def test_a_restore_whose_every_input_fails_leaves_no_empty_output_folder(tmp_path, tiny_checkpoint, capsys):
    """Every input failed and an empty output folder (and its new parent) was left behind, as if something was
    written."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    out = tmp_path / "new" / "out"
    assert main(["restore", str(bad), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 1
    assert not out.parent.exists()
    assert f"failed 1 (nothing written: {out} not made)" in capsys.readouterr().out
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "clip.mp4").write_bytes(b"no video")  # its job makes out/sub before it fails
    assert main(["restore", str(tmp_path / "in"), "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 1
    assert not out.parent.exists()
    capsys.readouterr()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["restore", str(bad), "-o", str(kept), "--weights", str(tiny_checkpoint), "-q"]) == 1
    assert kept.is_dir() and f"failed 1 -> {kept}" in capsys.readouterr().out


def test_restore_examples_without_the_example_photos_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("darkir.examples.example_images", lambda: [])
    assert main(["restore", "--examples", "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "--examples: this install of darkir holds no example photos" in capsys.readouterr().err


def test_restore_examples_restores_the_photos_that_ship_with_darkir(tmp_path, tiny_checkpoint, capsys):
    from darkir.examples import example_images

    out = tmp_path / "out"
    assert main(["restore", "--examples", "-o", str(out), "--weights", str(tiny_checkpoint), "-q"]) == 0
    assert sorted(path.name for path in out.iterdir()) == [path.name for path in example_images()]
    assert len(example_images()) == 4
    assert main(["restore", "-o", str(out), "-q"]) == 2
    assert (
        "darkir: error: nothing to restore: give INPUT files, folders or globs, or --examples"
        in capsys.readouterr().err
    )
