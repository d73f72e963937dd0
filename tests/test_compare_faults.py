"""darkir compare / metrics: unique method names, no interval from one image, honest counts, options checked first."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darkir.cli import main
from darkir.data.pairs import Pair
from darkir.errors import DarkIRError
from darkir.eval.compare import _histogram, compare
from darkir.eval.compare_unpaired import compare_unpaired, niqe_apart_lines
from darkir.eval.methods import Method, identity
from darkir.eval.noreference import NoReferenceScores, mean_line
from darkir.eval.paired import Scores
from darkir.eval.stats import Interval, bootstrap_mean, win_rate


def _write(path: Path, height: int, width: int, seed: int, scale: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), (rng.random((height, width, 3)) * scale).astype(np.uint8))
    return path


def _paired(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """A low/high folder pair with one random pair of each size."""
    for index, (height, width) in enumerate(sizes):
        _write(root / "low" / f"img{index}.png", height, width, seed=index, scale=60)
        _write(root / "high" / f"img{index}.png", height, width, seed=100 + index)
    return root


def _compare(weights: Path, data: Path, output: Path, *extra: str) -> int:
    args = ["compare", "--weights", str(weights), "--data", str(data), "-o", str(output), "--no-lpips", "-q"]
    return main([*args, "--size", "32", "--resamples", "50", *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


# 1. every method of one comparison has its own name


def test_a_variant_named_like_a_baseline_keeps_its_own_row(tiny_checkpoint, tmp_path, capsys):
    weights = shutil.copy(tiny_checkpoint, tmp_path / "input.pt")
    data = _paired(tmp_path / "data", [(40, 48)] * 3)
    assert _compare(weights, data, tmp_path / "report") == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert list(summary["methods"]) == ["input (2)", "input", "auto-exposure 0.4", "CLAHE"]
    assert "params" in summary["methods"]["input (2)"] and "params" not in summary["methods"]["input"]
    assert {row["method"] for row in _rows(tmp_path / "report" / "per_image.csv")} == set(summary["methods"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| input (2) | 0." in text and "## Differences against input (2)" in text
    assert "input (2): PSNR" in capsys.readouterr().out


@pytest.mark.parametrize("unpaired", [False, True])
def test_each_variant_names_its_weights_in_the_report(tiny_checkpoint, tmp_path, unpaired):
    """Two checkpoints named best.pt became ``best`` and ``best (2)``, and no report file said which was which."""
    first, second = (tmp_path / run / "best.pt" for run in ("runA", "runB"))
    for path in (first, second):
        path.parent.mkdir()
        shutil.copy(tiny_checkpoint, path)
    data = _paired(tmp_path / "data", [(40, 48)] * 3)
    extra = ["--weights", str(second), *(["--unpaired"] if unpaired else [])]
    assert _compare(first, data / "low" if unpaired else data, tmp_path / "report", *extra) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["methods"]["best"]["source"] == str(first)
    assert summary["methods"]["best (2)"]["source"] == str(second)
    assert "source" not in summary["methods"]["input"]
    assert f"Weights: `best`: {first}; `best (2)`: {second}." in (tmp_path / "report" / "report.md").read_text()


def test_a_variant_named_like_a_baseline_compares_unpaired(tiny_checkpoint, tmp_path):
    weights = shutil.copy(tiny_checkpoint, tmp_path / "CLAHE.pt")
    for index in range(2):
        _write(tmp_path / "dark" / f"u{index}.png", 40, 48, seed=index, scale=60)
    assert _compare(weights, tmp_path / "dark", tmp_path / "report", "--unpaired") == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert list(summary["methods"]) == ["CLAHE (2)", "input", "auto-exposure 0.4", "CLAHE"]
    assert "niqe:CLAHE (2)" in _rows(tmp_path / "report" / "per_image.csv")[0]


def test_methods_sharing_a_name_are_refused_before_any_work(tmp_path):
    pairs = [Pair(tmp_path / "missing_low.png", tmp_path / "missing_high.png", "a.png")]
    with pytest.raises(DarkIRError, match="share a name"):
        compare([identity()], [identity()], pairs, tmp_path / "report")
    with pytest.raises(DarkIRError, match="share a name"):
        compare_unpaired([identity(), identity()], pairs, tmp_path / "unpaired")
    assert not (tmp_path / "report").exists() and not (tmp_path / "unpaired").exists()


def test_compare_unpaired_says_when_its_niqe_means_cover_different_images(tmp_path):
    """A flat input has no NIQE and its output one: the means covered 2 and 3 images side by side, and the method
    that made every image better looked worse; the report and the summary lines now point to the paired change."""
    flat = tmp_path / "dark" / "flat.png"
    flat.parent.mkdir()
    cv2.imwrite(str(flat), np.full((128, 128, 3), 40, np.uint8))
    pairs = [Pair(flat, None, "flat.png")]
    pairs += [
        Pair(_write(tmp_path / "dark" / f"n{i}.png", 128, 128, seed=i, scale=80), None, f"n{i}.png") for i in (0, 1)
    ]
    noise = Method("noise", lambda x: (x + 0.1 * torch.rand_like(x)).clamp(0, 1))
    summary = compare_unpaired([identity(), noise], pairs, tmp_path / "report", 50, False)
    assert summary["methods"]["input"]["niqe"]["images"] == 2 and summary["methods"]["noise"]["niqe"]["images"] == 3
    assert "not comparable" in (tmp_path / "report" / "report.md").read_text()
    lines = niqe_apart_lines(summary)
    assert lines[0] == "the NIQE means cover different images; per image against input, over the images both score:"
    assert lines[1].startswith("  noise: ΔNIQE ") and lines[1].endswith(" (2 images)")
    same = compare_unpaired([identity(), noise], pairs[1:], tmp_path / "report2", 50, False)
    assert niqe_apart_lines(same) == [] and "not comparable" not in (tmp_path / "report2" / "report.md").read_text()


def test_the_grid_of_a_thin_strip_stays_a_picture_of_bounded_size(tmp_path):
    """Each panel was scaled to 192 px high whatever its width: a 2x3000 strip made a grid 864000 px wide (~20 GB
    drawn); a panel now fits 192x384 px, an ordinary photo's as before."""
    from darkir.eval.compare import _grid

    pairs = []
    for index, (height, width) in enumerate([(2, 3000), (400, 600)]):
        _write(tmp_path / "low" / f"{index}.png", height, width, seed=index, scale=60)
        _write(tmp_path / "high" / f"{index}.png", height, width, seed=10 + index)
        pairs.append(Pair(tmp_path / "low" / f"{index}.png", tmp_path / "high" / f"{index}.png", f"{index}.png"))
    grid = _grid(pairs, [identity()], [0, 1], "8bit").rgb
    assert grid.shape == (2 * (192 + 4), 3 * 384, 3)
    photo_row = grid[196:388]
    assert photo_row[:, 3 * 288 :].max() == 0 and photo_row[:, : 3 * 288].max() > 0  # 600x400 -> 288x192, as before


# 2. one image gives a mean, never an interval or a verdict


def test_one_value_has_no_interval_nor_win_rate():
    interval = bootstrap_mean(np.array([6.27, math.nan]))
    assert interval.mean == pytest.approx(6.27) and interval.images == 1
    assert math.isnan(interval.low) and math.isnan(interval.high)
    assert interval.as_text(2, signed=False) == "6.27 [n/a]"
    assert Interval(math.nan, math.nan, math.nan, 0).as_text(2) == "n/a"
    assert math.isnan(win_rate(np.array([1.0]), "psnr")) and math.isnan(win_rate(np.array([1.0, math.nan]), "psnr"))


def test_compare_on_one_image_states_no_verdict(tiny_checkpoint, tmp_path):
    data = _paired(tmp_path / "data", [(40, 48)])
    second = shutil.copy(tiny_checkpoint, tmp_path / "other.pt")
    assert _compare(tiny_checkpoint, data, tmp_path / "report", "--weights", str(second)) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    difference = summary["methods"]["other"]["vs_reference"]["psnr"]
    assert difference["low"] is None and difference["win_rate"] is None and difference["images"] == 1
    assert summary["methods"]["input"]["ci"]["psnr"]["high"] is None
    text = (tmp_path / "report" / "report.md").read_text()
    assert "excludes 0" not in text and "contains 0" not in text and "wins on" not in text and "% |" not in text
    assert "Too few images for an interval" in text and "so no verdict" in text
    assert "[n/a] |" in text and "1 image;" in text


def test_compare_warns_of_too_few_resamples(tiny_checkpoint, tmp_path, capsys):
    """``--resamples 1`` printed a point as the "95% interval" and drew verdicts from it, without a word; the warning
    comes with the set's notes, once the run is not refused."""
    data = _paired(tmp_path / "data", [(40, 48)] * 4)
    assert _compare(tiny_checkpoint, data, tmp_path / "report", "--resamples", "1") == 0
    err = capsys.readouterr().err
    assert "warning: --resamples 1: 95% intervals from fewer than 1,000 bootstrap resamples" in err
    assert _compare(tiny_checkpoint, data, tmp_path / "report", "--resamples", "1000") == 0
    assert "--resamples" not in capsys.readouterr().err


def test_compare_unpaired_on_one_image_states_no_interval(tmp_path):
    image = _write(tmp_path / "dark" / "u.png", 128, 128, seed=0)
    brighter = Method("brighter", lambda x: (x * 1.5).clamp(0, 1))
    summary = compare_unpaired([identity(), brighter], [Pair(image, None, "u.png")], tmp_path / "report", 50, False)
    assert summary["methods"]["input"]["niqe"]["images"] == 1 and math.isnan(summary["methods"]["input"]["niqe"]["low"])
    assert math.isnan(summary["methods"]["brighter"]["niqe_vs_reference"]["win_rate"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Too few images for an interval" in text and "[n/a] |" in text and "% |" not in text


# 3. a mean over only some images says so; differences are over images where both have a value


def test_metrics_folder_counts_the_images_with_a_niqe(tmp_path, capsys):
    _write(tmp_path / "photos" / "big.png", 128, 128, seed=0)
    _write(tmp_path / "photos" / "small1.png", 40, 40, seed=1)
    _write(tmp_path / "photos" / "small2.png", 40, 40, seed=2)
    assert main(["metrics", str(tmp_path / "photos"), "-q"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("mean of 3 images: NIQE ") and "[n/a] (1 of 3 images)" in line


def test_metrics_pairs_count_the_images_with_an_ssim(tmp_path, capsys):
    data = _paired(tmp_path, [(16, 16), (8, 8)])
    assert main(["metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q"]) == 0
    summary, detail = capsys.readouterr().out.splitlines()
    assert re.search(r"PSNR [\d.]+ dB, SSIM [\d.-]+ \(1 of 2 images\), LPIPS n/a \(2 images;", summary)
    assert re.search(r"PSNR [\d.]+ dB, SSIM [\d.-]+ \(1 of 2 images\); tone", detail)


def test_compare_unpaired_counts_and_pairs_niqe(tmp_path):
    images = [_write(tmp_path / "dark" / f"u{i}.png", 128, 128, seed=i) for i in range(3)]
    pairs = [Pair(path, None, path.name) for path in images]

    seen: list[torch.Tensor] = []

    def flat_first(x: torch.Tensor) -> torch.Tensor:
        """Flattens the first image (no NIQE there), keeps the others."""
        seen.append(x)
        return torch.full_like(x, 0.5) if len(seen) == 1 else x.clone()

    summary = compare_unpaired([Method("flat", flat_first), identity()], pairs, tmp_path / "report", 50, False)
    flat, plain = summary["methods"]["flat"], summary["methods"]["input"]
    assert flat["niqe"]["images"] == 2 and plain["niqe"]["images"] == 3
    rows = _rows(tmp_path / "report" / "per_image.csv")
    both = [float(r["niqe:input"]) - float(r["niqe:flat"]) for r in rows if r["niqe:flat"] != "nan"]
    assert plain["niqe_vs_reference"]["images"] == 2
    assert plain["niqe_vs_reference"]["mean"] == pytest.approx(np.mean(both), abs=1e-4)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| flat | " in text and "(2 of 3 images) |" in text


# 4. options are checked before any work; the histogram draws what it has


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--resamples", "0"),
        ("--resamples", "-5"),
        ("--size", "0"),
        ("--exposure-target", "nan"),
        ("--exposure-target", "0"),
        ("--max-images", "-1"),
        ("--max-images", "-3"),
    ],
)
def test_compare_options_are_checked_before_any_work(tiny_checkpoint, tmp_path, capsys, option, value):
    data = _paired(tmp_path / "data", [(40, 48)] * 2)
    with pytest.raises(SystemExit) as exited:
        _compare(tiny_checkpoint, data, tmp_path / "report", f"{option}={value}")
    assert exited.value.code == 2 and f"error: argument {option}" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_an_exposure_target_above_one_is_refused_before_any_work(tiny_checkpoint, tmp_path, capsys):
    data = _paired(tmp_path / "data", [(40, 48)] * 2)
    assert _compare(tiny_checkpoint, data, tmp_path / "report", "--exposure-target", "1.5") == 2
    assert capsys.readouterr().err.startswith("darkir: error: --exposure-target")
    assert not (tmp_path / "report").exists()


def test_histogram_skips_a_method_without_psnr_differences(tmp_path):
    reference, broken, fine = Scores("a"), Scores("b"), Scores("c")
    reference.values["psnr"] = [10.0, 11.0]
    broken.values["psnr"] = [math.nan, math.nan]
    fine.values["psnr"] = [12.0, 10.5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (tmp_path / "hist.png").write_bytes(_histogram([(broken, reference), (fine, reference)]))
        (tmp_path / "none.png").write_bytes(_histogram([(broken, reference)]))
    assert (tmp_path / "hist.png").stat().st_size > 0 and (tmp_path / "none.png").stat().st_size > 0


def test_the_histogram_of_one_variant_shows_its_differences_as_its_reading_does(tiny_checkpoint, tmp_path, monkeypatch):
    """With one variant the histogram drew each baseline minus the variant, where the report's reading gives the
    variant minus each baseline: the same differences, mirrored."""
    import darkir.eval.compare as compare_module

    drawn: list[tuple[str, str]] = []
    histogram = compare_module._histogram

    def record(differences: list) -> bytes:
        drawn.extend((a.method, b.method) for a, b in differences)
        return histogram(differences)

    monkeypatch.setattr(compare_module, "_histogram", record)
    assert _compare(tiny_checkpoint, _paired(tmp_path / "data", [(40, 48)] * 4), tmp_path / "report") == 0
    assert drawn and all(a == "tiny" and b != "tiny" for a, b in drawn), drawn
    assert "scaled to 192 px high" in (tmp_path / "report" / "report.md").read_text()


# 5. the report describes what it shows; no numpy warning from a mean without values


def test_report_with_one_variant_does_not_speak_of_two(tiny_checkpoint, tmp_path):
    data = _paired(tmp_path / "data", [(40, 48)] * 2)
    assert _compare(tiny_checkpoint, data, tmp_path / "report") == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "first two variants" not in text and "(the first 2 images)" in text


def test_mean_line_without_values_warns_nothing():
    scores = [NoReferenceScores(math.nan, 0.5, math.nan), NoReferenceScores(math.nan, 0.25, math.nan)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line = mean_line("mean of 2 images", scores)
    assert line == "mean of 2 images: NIQE n/a, brightness 0.375, noise sigma n/a"


def test_compare_stopped_by_an_unreadable_image_leaves_no_empty_report_folder(tmp_path, tiny_checkpoint, capsys):
    for index in range(2):
        for folder in ("low", "high"):
            (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "data" / folder / f"{index}.png"), np.full((40, 48, 3), 30 + index, np.uint8))
    broken = tmp_path / "data" / "low" / "1.png"
    broken.write_bytes(broken.read_bytes()[:-30])  # its header reads: the pair is found, then fails to decode
    report = tmp_path / "report"
    args = ["compare", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "data"), "-o", str(report)]
    assert main([*args, "--no-lpips", "--size", "32", "-q"]) == 2
    assert "1.png: cannot decode image" in capsys.readouterr().err
    assert not report.exists()
    report.mkdir()  # a folder of the user's stays, if empty
    assert main([*args, "--no-lpips", "--size", "32", "-q"]) == 2
    assert report.is_dir()


def test_broken_weights_are_named_among_several(tiny_checkpoint, tmp_path, capsys):
    """Weights whose output overflows to infinity fail before any scoring, and the error names the variant they
    are; weights holding NaN are refused as they load, naming the file."""
    from darkir.checkpoint import save_checkpoint
    from darkir.models.factory import load_model

    data = _paired(tmp_path / "data", [(40, 48)] * 3)
    for value, expected in ((3e38, "broken: the model's output has NaN or infinite values"), (float("nan"), "")):
        model = load_model(tiny_checkpoint)
        with torch.no_grad():
            model.intro.weight.fill_(value)
        broken = save_checkpoint(tmp_path / "broken.pt", model)
        assert main(["compare", "--weights", str(tiny_checkpoint), "--weights", str(broken), "--data", str(data),
                     "-o", str(tmp_path / "report"), "--no-lpips", "-q", "--size", "32"]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert (expected or f"checkpoint {broken} holds NaN or infinite weights (intro.weight)") in err


def test_a_brightness_ratio_without_value_reads_n_a(tiny_checkpoint, tmp_path, capsys):
    """References that are all black have no brightness ratio: n/a in the printed lines and the report."""
    data = _paired(tmp_path / "data", [(40, 48)] * 3)
    for path in (data / "high").iterdir():
        cv2.imwrite(str(path), np.zeros((40, 48, 3), np.uint8))
    assert _compare(tiny_checkpoint, data, tmp_path / "report") == 0
    printed, report = capsys.readouterr().out, (tmp_path / "report" / "report.md").read_text()
    assert "brightness ratio n/a" in printed and "nan" not in printed
    assert "| n/a |" in report and "nan" not in report
