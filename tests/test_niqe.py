"""NIQE: calibrated against BasicSR's MATLAB-matching implementation, and wired into the no-reference commands."""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np
import pytest

from darkir.cli import main
from darkir.eval.niqe import imresize_half, niqe

skimage_data = pytest.importorskip("skimage.data")

#: BasicSR 1.4.2 ``calculate_niqe(img, crop_border=0)`` (Y channel, its bundled parameters) on scikit-image's photos.
BASICSR = {"astronaut": 3.0649, "coffee": 4.1152}


@pytest.mark.parametrize("name", sorted(BASICSR))
def test_niqe_matches_basicsr(name):
    rgb = getattr(skimage_data, name)().astype(np.float64) / 255
    assert niqe(rgb) == pytest.approx(BASICSR[name], abs=0.05)


def test_niqe_rises_with_noise_and_needs_one_block():
    rgb = skimage_data.coffee().astype(np.float64) / 255
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 0.08, rgb.shape), 0, 1)
    assert niqe(noisy) > niqe(rgb) + 5
    assert math.isnan(niqe(rgb[:95, :400]))
    assert math.isfinite(niqe(rgb[:96, :96]))


def test_matlab_resize_keeps_constants_and_halves_sizes():
    assert np.allclose(imresize_half(np.full((9, 14), 0.3)), 0.3)
    ramp = np.tile(np.arange(16, dtype=np.float64), (4, 1))
    half = imresize_half(ramp)
    assert half.shape == (2, 8)
    assert np.allclose(half[:, 2:-2], ramp[:2, 4:-4:2] + 0.5)  # away from the borders: the pairs' midpoints


def _write(folder, name, rgb):
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), cv2.cvtColor(np.rint(rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))


def test_metrics_without_references_writes_niqe_per_image(tmp_path, capsys):
    coffee = skimage_data.coffee().astype(np.float64) / 255
    _write(tmp_path / "photos", "coffee.png", coffee)
    _write(tmp_path / "photos", "sub/small.png", coffee[:40, :40])
    assert main(["metrics", str(tmp_path / "photos"), "--csv", str(tmp_path / "scores.csv"), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "coffee.png: NIQE 4.1" in printed and "mean of 2 images: NIQE" in printed
    rows = {r["image"]: r for r in csv.DictReader((tmp_path / "scores.csv").read_text().splitlines())}
    assert set(rows) == {"coffee.png", "sub/small.png"}
    assert float(rows["coffee.png"]["niqe"]) == pytest.approx(BASICSR["coffee"], abs=0.05)
    assert rows["sub/small.png"]["niqe"] == "nan" and float(rows["sub/small.png"]["brightness"]) > 0


def test_test_unpaired_reports_niqe_in_and_out(tiny_checkpoint, tmp_path, capsys):
    coffee = skimage_data.coffee().astype(np.float64) / 255
    for index in range(2):
        _write(tmp_path / "dark", f"{index}.png", coffee[index * 100 : index * 100 + 200, :256] * 0.15)
    out = tmp_path / "out"
    assert main(["test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "dark"),
                 "-o", str(out), "-q"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "0.png: NIQE" in printed and "1.png: NIQE" in printed
    assert "input (2 images): NIQE" in printed and "\noutput: NIQE" in printed
    rows = list(csv.DictReader((out / "stats.csv").read_text().splitlines()))
    assert len(rows) == 2 and all(math.isfinite(float(r["niqe_in"])) for r in rows)
    assert {"niqe_in", "niqe_out", "brightness_in", "brightness_out", "noise_in", "noise_out"} <= set(rows[0])


def test_compare_unpaired_reports_niqe_with_intervals(tiny_checkpoint, tmp_path, capsys):
    coffee = skimage_data.coffee().astype(np.float64) / 255
    for index in range(3):
        _write(tmp_path / "dark", f"{index}.png", coffee[index * 60 : index * 60 + 200, :300] * 0.2)
    report = tmp_path / "report"
    assert main(["compare", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "dark"), "--unpaired",
                 "-o", str(report), "-q", "--resamples", "200"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "input: NIQE" in printed and "CLAHE: NIQE" in printed
    text = (report / "report.md").read_text()
    assert "NIQE ↓" in text and "| auto-exposure 0.4 |" in text and "negative is better" in text
    rows = list(csv.DictReader((report / "per_image.csv").read_text().splitlines()))
    assert len(rows) == 3 and f"niqe:{tiny_checkpoint.stem}" in rows[0] and "niqe:input" in rows[0]
    assert all(math.isfinite(float(r["niqe:input"])) for r in rows)
