"""Evaluation inputs are checked before any work: oriented sizes, manifests, hidden folders, LPIPS and Zero-DCE
weight files; LPIPS of tiny images and PSNR of identical 16-bit images are what the docs say."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from darkir.checkpoint import CheckpointError
from darkir.cli import main
from darkir.cli.common import load_lpips_or_none
from darkir.data.layouts import DatasetError, Layout, list_images
from darkir.data.pairs import find_pairs, read_manifest
from darkir.errors import DarkIRError, DarkIRWarning
from darkir.eval import lpips as lpips_module
from darkir.eval.lpips import LPIPSUnavailableError, load_lpips
from darkir.eval.metrics import PSNR_CAP, prepare, psnr
from darkir.eval.zerodce import load_zero_dce
from darkir.imageio import read_image
from darkir.infer.jobs import plan_jobs
from tests.test_eval import _stand_in_lpips

_ROTATED = 6  # EXIF orientation: displayed a quarter turn from how it is stored


def _png(path: Path, height: int = 40, width: int = 56, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(path)
    return path


def _jpeg(path: Path, height: int, width: int, orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    PILImage.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path, exif=exif.tobytes())
    return path


def _lpips_args(backbone: Path | None = None, heads: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(no_lpips=False, lpips_backbone=backbone, lpips_heads=heads)


# 1. EXIF orientation


def test_pair_sizes_are_the_displayed_ones(tmp_path):
    low = _jpeg(tmp_path / "a" / "low" / "x.jpg", 40, 56, _ROTATED)  # stored 56x40, displayed 40x56
    _jpeg(tmp_path / "a" / "high" / "x.jpg", 56, 40)
    assert read_image(low).rgb.shape[:2] == (56, 40)
    assert len(find_pairs(tmp_path / "a")) == 1  # no false mismatch
    _jpeg(tmp_path / "b" / "low" / "x.jpg", 40, 56, _ROTATED)
    _jpeg(tmp_path / "b" / "high" / "x.jpg", 40, 56)  # same stored size, different displayed one
    with pytest.raises(DatasetError, match=r"low/x.jpg: size 40x56 but reference .*high/x.jpg is 56x40"):
        find_pairs(tmp_path / "b")


# 2. Manifests


def test_manifest_pairs_are_size_checked_before_any_work(tmp_path, tiny_checkpoint, capsys):
    _png(tmp_path / "low" / "a.png")
    _png(tmp_path / "high" / "a.png", 48, 64)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"splits": {"test": [["low/a.png", "high/a.png"]]}}))
    with pytest.raises(DatasetError, match=r"low/a.png: size 56x40 but reference .*high/a.png is 64x48"):
        read_manifest(manifest, "test")
    code = main(["test", "--weights", str(tiny_checkpoint), "--data", str(manifest), "--no-lpips", "-q", "--save", "0"])
    assert code == 2
    assert "size 56x40 but reference" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "not a split manifest"),
        ({"splits": {"test": [["low/a.png"]]}}, r"entry 0 is \[\"low/a.png\"\], not a \[low, high\] pair"),
        ({"splits": {"test": [["low/a.png", "high/a.png"], [1, 2]]}}, r"entry 1 is \[1, 2\]"),
        ({"splits": {"test": "low/a.png"}}, "not a list of"),
        ({"root": 3, "splits": {"test": [["low/a.png", "high/a.png"]]}}, '"root" is 3'),
    ],
)
def test_malformed_manifest_is_one_clear_error(tmp_path, content, message):
    _png(tmp_path / "low" / "a.png")
    _png(tmp_path / "high" / "a.png")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=message) as error:
        read_manifest(manifest, "test")
    assert str(error.value).startswith(str(manifest))


# 3. Hidden folders


def test_files_in_hidden_folders_are_skipped_below_the_root_only(tmp_path):
    root = tmp_path / ".cache" / "set"  # the dataset itself lives under a hidden folder
    for side in ("low", "high"):
        _png(root / side / "a.png")
    _png(root / "low" / ".thumbs" / "t.png", 8, 8)
    _png(root / "low" / "scene" / ".thumbs" / "u.png", 8, 8)
    assert list_images(root / "low") == [root / "low" / "a.png"]
    assert [p.name for p in find_pairs(root)] == ["a.png"]
    jobs, problems = plan_jobs([str(root / "low")], tmp_path / "out")
    assert [job.source for job in jobs] == [root / "low" / "a.png"] and not problems
    jobs, _ = plan_jobs([str(root / "low" / "**" / "*.png")], tmp_path / "out")
    assert [job.source for job in jobs] == [root / "low" / "a.png"]


def test_images_in_formats_darkir_does_not_read_are_named_by_every_command_that_lists_a_folder(tmp_path, capsys):
    """``test``, ``metrics`` and ``test-unpaired`` left a .ppm output out of their means without a word, where
    ``restore`` names such files."""
    for side in ("pred", "gt"):
        _png(tmp_path / side / "a.png", seed=1 if side == "pred" else 2)
        (tmp_path / side / "b.ppm").write_bytes(b"P6 1 1 255 abc")
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"left out 1 file in formats darkir does not read (.ppm: {tmp_path / 'pred' / 'b.ppm'})" in err
    with pytest.warns(DarkIRWarning, match=r"left out 1 file in formats darkir does not read \(\.ppm: .*gt/b.ppm\)"):
        assert [pair.name for pair in find_pairs(tmp_path, Layout("folders", "gt", "pred"))] == ["a.png"]


# 4. LPIPS of tiny images


def test_lpips_of_images_under_31_px_is_nan(tmp_path):
    model = load_lpips(*_stand_in_lpips(tmp_path))
    for height, width in ((30, 64), (64, 30), (1, 1)):
        a, b = torch.rand(2, 3, height, width), torch.rand(2, 3, height, width)
        assert torch.isnan(model(a, b)).all()
    a, b = torch.rand(2, 3, 31, 31), torch.rand(2, 3, 31, 31)
    assert torch.isfinite(model(a, b)).all()


def test_metrics_command_scores_tiny_images_without_lpips(tmp_path, capsys):
    for name, size in (("small.png", (20, 40)), ("large.png", (40, 56))):
        _png(tmp_path / "pred" / name, *size, seed=1)
        _png(tmp_path / "gt" / name, *size, seed=2)
    backbone, heads = _stand_in_lpips(tmp_path)
    args = ["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--csv", str(tmp_path / "m.csv"), "-q"]
    assert main([*args, "--lpips-backbone", str(backbone), "--lpips-heads", str(heads)]) == 0
    with open(tmp_path / "m.csv") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    assert rows["small.png"]["lpips"] == "nan" and float(rows["large.png"]["lpips"]) > 0


# 5. LPIPS and Zero-DCE weight files


def test_bad_lpips_files_are_one_line_naming_the_file(tmp_path, tiny_checkpoint):
    backbone, heads = _stand_in_lpips(tmp_path)
    text = tmp_path / "notes.pth"
    text.write_text("junk\n")
    with pytest.raises(CheckpointError, match=r"notes.pth: not a PyTorch weights file; expected torchvision's AlexNet"):
        load_lpips(text, heads)
    with pytest.raises(CheckpointError, match=r"alex.pth: not torchvision's AlexNet weights .*swapped"):
        load_lpips(heads, backbone)
    with pytest.raises(CheckpointError, match=r"tiny.pt: not torchvision's AlexNet weights .*features.0.weight"):
        load_lpips(tiny_checkpoint, heads)
    with pytest.raises(
        CheckpointError, match=r"notes.pth: not a PyTorch weights file; expected the LPIPS v0.1 alex linear heads"
    ):
        load_lpips(backbone, text)


def test_lpips_file_named_by_the_user_must_exist(tmp_path, monkeypatch, capsys):
    backbone, heads = _stand_in_lpips(tmp_path)
    missing = tmp_path / "nope.pth"
    with pytest.raises(DarkIRError, match=r"--lpips-heads .*nope.pth: no such file"):
        load_lpips_or_none(_lpips_args(backbone, missing))
    _png(tmp_path / "pred" / "a.png")
    _png(tmp_path / "gt" / "a.png")
    args = ["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "-q", "--lpips-heads", str(heads)]
    assert main([*args, "--lpips-backbone", str(missing)]) == 2
    assert "--lpips-backbone " + str(missing) + ": no such file" in capsys.readouterr().err
    monkeypatch.setattr(lpips_module, "default_heads_path", lambda: None)
    with pytest.raises(LPIPSUnavailableError, match="linear heads"):  # asked for LPIPS: its missing default too
        load_lpips_or_none(_lpips_args(backbone))
    monkeypatch.setattr(lpips_module, "default_backbone_path", lambda: missing)
    assert load_lpips_or_none(_lpips_args()) is None  # nothing asked: a warning
    assert "reporting PSNR and SSIM only" in capsys.readouterr().err


def test_both_missing_lpips_files_are_named_at_once(tmp_path, monkeypatch):
    """The heads were named only once the AlexNet weights had been found and copied."""
    monkeypatch.setattr(lpips_module, "default_heads_path", lambda: None)
    monkeypatch.setattr(lpips_module, "default_backbone_path", lambda: tmp_path / "alexnet.pth")
    with pytest.raises(LPIPSUnavailableError, match=r"alexnet.pth are missing .*; linear heads .* are missing"):
        lpips_module.load_lpips()


def test_a_named_lpips_file_is_checked_before_the_default_it_goes_with(tmp_path, tiny_checkpoint, monkeypatch):
    """``--lpips-backbone CHECKPOINT`` with the default heads missing blamed the heads, never the wrong file named;
    with the file right, the error says which flag names the missing one."""
    backbone, heads = _stand_in_lpips(tmp_path)
    monkeypatch.setattr(lpips_module, "default_heads_path", lambda: None)
    monkeypatch.setattr(lpips_module, "default_backbone_path", lambda: tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match=r"tiny.pt: not torchvision's AlexNet weights"):
        load_lpips_or_none(_lpips_args(tiny_checkpoint))
    with pytest.raises(CheckpointError, match=r"tiny.pt: not the LPIPS v0.1 alex linear heads"):
        load_lpips_or_none(_lpips_args(None, tiny_checkpoint))
    with pytest.raises(LPIPSUnavailableError, match=r"linear heads .* are missing .*; name it with --lpips-heads too"):
        load_lpips_or_none(_lpips_args(backbone))
    with pytest.raises(LPIPSUnavailableError, match=r"AlexNet weights .*nope.pth are missing .*--lpips-backbone too"):
        load_lpips_or_none(_lpips_args(None, heads))


def test_bad_zero_dce_files_are_one_line_naming_the_file(tmp_path, tiny_checkpoint):
    text = tmp_path / "Epoch99.pth"
    text.write_text("junk\n")
    with pytest.raises(CheckpointError, match=r"Epoch99.pth: not a PyTorch weights file; expected the official"):
        load_zero_dce(text)
    with pytest.raises(CheckpointError, match=r"tiny.pt: not a Zero-DCE checkpoint \(e_conv1.weight is missing\)"):
        load_zero_dce(tiny_checkpoint)


# 6. 16-bit PSNR


def test_identical_16_bit_images_score_the_cap_and_8_bit_scores_are_unchanged(tmp_path):
    stored = np.random.default_rng(0).integers(0, 65536, (24, 32, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), stored)
    image = read_image(tmp_path / "a.png")
    assert image.bit_depth == 16
    target = torch.from_numpy(image.rgb).permute(2, 0, 1)[None]
    assert psnr(prepare(target.clone(), "8bit", bit_depth=16), target).item() == PSNR_CAP
    pred = torch.rand(1, 3, 24, 32) * 1.4 - 0.2
    old = torch.round(pred.clamp(0, 1) * 255) / 255
    assert torch.equal(prepare(pred, "8bit"), old) and torch.equal(prepare(pred, "8bit", bit_depth=8), old)
    assert torch.equal(prepare(pred, "8bit", bit_depth=32), pred.clamp(0, 1))


def test_metrics_of_identical_16_bit_images_is_the_cap(tmp_path, capsys):
    from darkir.cli import main

    rng = np.random.default_rng(1)
    image = (rng.random((40, 56, 3)) * 65535).astype(np.uint16)
    for side in ("pred", "gt"):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "a.png"), image)
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 0
    assert "PSNR 100.00" in capsys.readouterr().out


def test_float_tiffs_restore_writes_are_scored_like_any_image(tmp_path, capsys):
    # Pillow cannot open a float32 RGB TIFF, OpenCV can: restore reads and writes them, so metrics and test must too.
    rng = np.random.default_rng(2)
    image = rng.random((24, 36, 3)).astype(np.float32)
    for side, gain in (("pred", 1.0), ("gt", 0.9)):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "f.tif"), image * gain)
    assert read_image(tmp_path / "pred" / "f.tif").rgb.shape == (24, 36, 3)
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 0
    assert "(1 image;" in capsys.readouterr().out
    cv2.imwrite(str(tmp_path / "gt" / "f.tif"), np.zeros((20, 36, 3), np.float32))
    with pytest.raises(DatasetError, match="size 36x24 but reference .* is 36x20"):
        find_pairs(tmp_path, Layout("folders", "pred", "gt"))


@pytest.mark.parametrize("depth", [8, 16])
def test_test_scores_a_gray_input_as_restore_saves_it_and_metrics_scores_it(tmp_path, tiny_checkpoint, capsys, depth):
    """``darkir restore`` saves a gray input's output in gray; ``darkir test`` scored the model's RGB output instead,
    1.9 dB away from ``darkir metrics`` on what restore wrote. Both now score the same image, per image."""
    rng = np.random.default_rng(3)
    top = 255 if depth == 8 else 65535
    for side in ("low", "high"):
        (tmp_path / "set" / side).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            gray = (rng.random((40, 48)) * 0.4 * top).astype(np.uint8 if depth == 8 else np.uint16)
            cv2.imwrite(str(tmp_path / "set" / side / name), gray)
    weights = ["--weights", str(tiny_checkpoint)]
    test_csv, metrics_csv = tmp_path / "test.csv", tmp_path / "metrics.csv"
    args = ["test", *weights, "--data", str(tmp_path / "set"), "--no-lpips", "-q", "--save", "0"]
    assert main([*args, "--csv", str(test_csv)]) == 0
    restore = ["restore", str(tmp_path / "set" / "low"), "-o", str(tmp_path / "out"), "--precision", "fp32"]
    assert main([*restore, *weights, "-q"]) == 0
    assert read_image(tmp_path / "out" / "a.png").grayscale
    scored = ["metrics", str(tmp_path / "out"), str(tmp_path / "set" / "high"), "--no-lpips", "-q"]
    assert main([*scored, "--csv", str(metrics_csv)]) == 0
    capsys.readouterr()

    def rows(path: Path) -> dict[str, tuple[str, str]]:
        with open(path, newline="") as handle:
            return {row["image"]: (row["psnr"], row["ssim"]) for row in csv.DictReader(handle)}

    assert rows(test_csv) == rows(metrics_csv)


def test_the_triplets_of_16_bit_pairs_hold_the_outputs_as_scored(tmp_path, tiny_checkpoint):
    """Triplets were 8-bit PNGs whatever the input: a 16-bit pair's saved output scored 27.5017 dB against its
    reference where the CSV said 27.5035."""
    rng = np.random.default_rng(5)
    for side, scale in (("low", 0.2), ("high", 0.7)):
        (tmp_path / "set" / side).mkdir(parents=True)
        image = (rng.random((40, 48, 3)) * scale * 65535).astype(np.uint16)
        cv2.imwrite(str(tmp_path / "set" / side / "a.png"), image)
    results, table = tmp_path / "results", tmp_path / "scores.csv"
    args = ["test", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "set"), "--no-lpips", "-q"]
    assert main([*args, "--save", "1", "--results-dir", str(results), "--csv", str(table)]) == 0
    saved = read_image(results / "00000_output.png")
    assert saved.bit_depth == 16
    with open(table, newline="") as handle:
        scored = float(next(csv.DictReader(handle))["psnr"])
    reference = read_image(tmp_path / "set" / "high" / "a.png").rgb
    as_tensor = [torch.from_numpy(rgb).permute(2, 0, 1)[None] for rgb in (saved.rgb, reference)]
    assert psnr(*as_tensor).item() == pytest.approx(scored, abs=1e-4)


@pytest.mark.parametrize("name", ["a.png", "b.jpg"])
def test_test_unpaired_scores_an_output_as_its_file_holds_it(tmp_path, tiny_checkpoint, name):
    """test-unpaired writes a gray input's output in gray; its no-reference scores were of the RGB output, and a JPEG
    input's output was scored before JPEG coding (NIQE 8.49 in stats.csv, 9.69 by ``darkir metrics`` on the file).
    They are now those of ``darkir metrics`` on what it wrote."""
    rng = np.random.default_rng(4)
    (tmp_path / "dark").mkdir()
    cv2.imwrite(str(tmp_path / "dark" / name), (rng.random((112, 128)) * 80).astype(np.uint8))
    out, scored = tmp_path / "out", tmp_path / "scored.csv"
    args = ["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "dark"), "-o", str(out)]
    assert main([*args, "--precision", "fp32", "-q"]) == 0
    assert main(["metrics", str(out), "-q", "--csv", str(scored)]) == 0
    with open(out / "stats.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    with open(scored, newline="") as handle:
        again = next(csv.DictReader(handle))
    assert read_image(out / name).grayscale
    assert float(row["niqe_out"]) == pytest.approx(float(again["niqe"]), abs=1e-3)
    assert float(row["noise_out"]) == pytest.approx(float(again["noise"]), abs=1e-5)
    assert float(row["brightness_out"]) == pytest.approx(float(again["brightness"]), abs=1e-4)


def test_compare_unpaired_scores_a_gray_input_as_test_unpaired_does(tmp_path, tiny_checkpoint):
    """compare --unpaired scored every output as 8-bit RGB; it now scores it as saved, as test-unpaired does."""
    rng = np.random.default_rng(4)
    (tmp_path / "dark").mkdir()
    cv2.imwrite(str(tmp_path / "dark" / "a.png"), (rng.random((112, 128)) * 80).astype(np.uint8))
    weights, data = ["--weights", str(tiny_checkpoint), "--precision", "fp32"], ["--data", str(tmp_path / "dark")]
    assert main(["test-unpaired", *weights, *data, "-o", str(tmp_path / "out"), "-q"]) == 0
    compare = ["compare", *weights, *data, "--unpaired", "-o", str(tmp_path / "report"), "--no-lpips", "-q"]
    assert main([*compare, "--size", "32", "--resamples", "50"]) == 0
    with open(tmp_path / "out" / "stats.csv", newline="") as handle:
        saved = next(csv.DictReader(handle))
    with open(tmp_path / "report" / "per_image.csv", newline="") as handle:
        compared = next(csv.DictReader(handle))
    niqe = [float(value) for key, value in compared.items() if key.startswith("niqe:") and "tiny" in key]
    assert niqe == [pytest.approx(float(saved["niqe_out"]), abs=1e-3)]


def test_compare_unpaired_reports_costs_and_refuses_the_flags_of_scores_against_references(
    tmp_path, tiny_checkpoint, capsys
):
    """compare --unpaired wrote no params, MACs or latency, took --size without using it, and let --convention
    reference and a missing --lpips-backbone pass without a word (the report still said 8-bit)."""
    (tmp_path / "dark").mkdir()
    for seed in range(2):
        image = (np.random.default_rng(seed).random((40, 48, 3)) * 80).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "dark" / f"{seed}.png"), image)
    compare = ["compare", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "dark"), "--unpaired", "-q"]
    assert main([*compare, "-o", str(tmp_path / "report"), "--size", "32", "--resamples", "50"]) == 0
    entry = json.loads((tmp_path / "report" / "summary.json").read_text())["methods"]["tiny"]
    assert entry["params"] > 0 and entry["macs"] > 0 and entry["latency_s"] > 0
    assert "| method | params | GMac @32 | latency @32 (s) | NIQE" in (tmp_path / "report" / "report.md").read_text()
    capsys.readouterr()
    for flags in (["--convention", "reference"], ["--lpips-backbone", str(tmp_path / "missing.pth")]):
        assert main([*compare, "-o", str(tmp_path / "other"), *flags]) == 2
        assert "scores against references, which --unpaired has none of" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


# Found by an outside test of the Python API as a library (twenty-fourth session): the metric functions scored
# inputs they do not take (8-bit tensors, 0-255 floats, shapes that broadcast) with numbers that meant nothing.


@pytest.mark.parametrize(
    ("pred", "target", "data_range", "problem"),
    [
        ("u8", "u8", 1.0, r"pred must be a float \(N, C, H, W\) tensor, got torch.uint8"),
        ("255", "255", 1.0, r"target values span \[[0-9.]+, 25[0-9.]+\], outside data_range \[0, 1\]"),
        ("a", "batch2", 1.0, r"pred \(1, 3, 32, 32\) and target \(2, 3, 32, 32\) differ in shape"),
        ("a", "gray", 1.0, r"pred \(1, 3, 32, 32\) and target \(1, 1, 32, 32\) differ in shape"),
        ("a", "a", 0, r"data_range must be a positive number, got 0"),
        ("chw", "chw", 1.0, r"pred must be a float \(N, C, H, W\) tensor, got torch.float32 \(3, 32, 32\)"),
        ("numpy", "numpy", 1.0, r"pred must be a torch tensor \(N, C, H, W\), got ndarray"),
    ],
)
def test_psnr_ssim_and_lpips_refuse_what_they_do_not_take(pred, target, data_range, problem):
    from darkir.eval.lpips import BACKBONE_SHAPES, HEADS_SHAPES, LPIPS
    from darkir.eval.metrics import ssim

    a = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    inputs = {"u8": (a * 255).byte(), "255": a * 255, "a": a, "batch2": torch.rand(2, 3, 32, 32)}
    inputs |= {"gray": a[:, :1], "chw": a[0], "numpy": a.numpy()}
    random = {name: torch.rand(shape) for name, shape in (BACKBONE_SHAPES | HEADS_SHAPES).items()}
    lpips = LPIPS({k: v for k, v in random.items() if k in BACKBONE_SHAPES}, {k: random[k] for k in HEADS_SHAPES})
    metrics = [("psnr", lambda p, t: psnr(p, t, data_range)), ("ssim", lambda p, t: ssim(p, t, data_range))]
    metrics += [("lpips", lpips)] if data_range == 1.0 else []
    for name, metric in metrics:
        with pytest.raises(ValueError, match=rf"^{name}: {problem}"):
            metric(inputs[pred], inputs[target])
    assert psnr(a * 255, a * 255 * 0.9, data_range=255.0).item() == pytest.approx(psnr(a, a * 0.9).item(), abs=1e-4)


def test_niqe_refuses_8_bit_and_0_255_arrays():
    """NIQE scored a uint8 array as if it held values in [0, 1] (5.18 against 4.09 for the same image)."""
    from darkir.eval.niqe import niqe
    from darkir.eval.noreference import no_reference_scores

    image = np.random.default_rng(0).random((100, 120, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"niqe takes a float array in \[0, 1\], got uint8"):
        no_reference_scores((image * 255).round().astype(np.uint8))
    with pytest.raises(ValueError, match=r"niqe takes values in \[0, 1\]; this array spans"):
        niqe(image * 255)
    with pytest.raises(ValueError, match=r"niqe takes an \(H, W, 3\) RGB or \(H, W\) gray array, got \(100, 120, 2\)"):
        niqe(image[..., :2])
    assert niqe(image) == niqe(image.astype(np.float64))


def test_the_seconds_of_outputs_scored_as_files_are_left_empty(tmp_path, capsys):
    """darkir metrics' CSV gave each image the time of copying it (0.0001-0.0082 s), which read as a runtime."""
    for side, level in (("pred", 60), ("gt", 80)):
        (tmp_path / side).mkdir()
        cv2.imwrite(str(tmp_path / side / "a.png"), np.full((40, 48, 3), level, np.uint8))
    table = tmp_path / "m.csv"
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q", "--csv", str(table)]) == 0
    with open(table, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["seconds"] == "" and float(row["psnr"]) > 0


def test_a_test_path_that_holds_no_pairs_is_named_by_its_key(tmp_path, tiny_checkpoint, capsys):
    """``darkir test -p OPTIONS`` over a ``datasets.val.test_path`` with no pairs named the folder but not the
    setting (training names it)."""
    _png(tmp_path / "data" / "val" / "low" / "a.png")
    _png(tmp_path / "data" / "val" / "high" / "a.png")
    options = tmp_path / "options.yml"
    options.write_text(f"datasets:\n  val:\n    test_path: {tmp_path / 'data'}\n")
    assert main(["test", "-p", str(options), "--weights", str(tiny_checkpoint), "--no-lpips", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{options}: datasets.val.test_path: {tmp_path / 'data'}: no known paired layout found" in err
    assert f"{tmp_path / 'data' / 'val'} holds one: pass it" in err
