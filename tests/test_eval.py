"""Evaluation: metrics agree with scikit-image, LPIPS runs from local files, compare reports are recomputable."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from darkir.checkpoint import save_checkpoint
from darkir.cli import main
from darkir.data.layouts import DatasetError
from darkir.eval.lpips import LPIPSUnavailableError, load_lpips
from darkir.eval.metrics import prepare, psnr, ssim
from darkir.eval.stats import bootstrap_mean, win_rate
from darkir.imageio import read_image
from darkir.models.factory import build_model
from darkir.outputs import is_inside
from tests.conftest import TINY, bind_mount, randomize
from tests.test_data import make_lolblur

SANITY = ["lolv2real_00733", "lolv2synth_r13073518t"]


def _rows(path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


@pytest.mark.parametrize("name", SANITY)
def test_psnr_ssim_match_scikit_image_on_real_pairs(shared, name):
    low = read_image(shared / "sanity" / f"{name}_low.png").rgb
    high = read_image(shared / "sanity" / f"{name}_high.png").rgb
    expected_psnr = peak_signal_noise_ratio(high, low, data_range=1.0)
    expected_ssim = structural_similarity(
        high, low, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert psnr(_tensor(low), _tensor(high)).item() == pytest.approx(expected_psnr, abs=0.01)
    assert ssim(_tensor(low), _tensor(high)).item() == pytest.approx(expected_ssim, abs=1e-3)


def test_metrics_command_on_real_pairs(shared, tmp_path, capsys):
    for folder, kind in (("pred", "low"), ("gt", "high")):
        (tmp_path / folder).mkdir()
        for name in SANITY:
            shutil.copy(shared / "sanity" / f"{name}_{kind}.png", tmp_path / folder / f"{name}.png")
    assert (
        main(
            [
                "metrics",
                str(tmp_path / "pred"),
                str(tmp_path / "gt"),
                "--csv",
                str(tmp_path / "m.csv"),
                "--no-lpips",
                "-q",
            ]
        )
        == 0
    )
    rows = _rows(tmp_path / "m.csv")
    for row in rows:
        name = row["image"].removesuffix(".png")
        low = read_image(shared / "sanity" / f"{name}_low.png").rgb
        high = read_image(shared / "sanity" / f"{name}_high.png").rgb
        assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(high, low, data_range=1.0), abs=0.01)
    assert "PSNR" in capsys.readouterr().out


def test_metrics_names_pred_and_gt_for_an_output_without_a_reference(tmp_path, capsys):
    """It named the folder both lie in as a dataset: "dataset /work (folders layout): 1 problem(s)"."""
    make_lolblur(tmp_path / "d", scenes=1, frames=2)
    pred, gt = tmp_path / "d" / "low_blur_noise", tmp_path / "d" / "high_sharp_scaled"
    (gt / "0000" / "0001.png").unlink()
    assert main(["metrics", str(pred), str(gt), "--no-lpips"]) == 2
    err = capsys.readouterr().err
    assert f"darkir: error: PRED {pred} against GT {gt}: 1 problem(s):" in err and "dataset" not in err


def test_metrics_notes_outputs_that_are_their_references_own_files(tmp_path, capsys):
    """An output that links to its reference scored 100 dB, taken into the means without a word."""
    make_lolblur(tmp_path / "d", scenes=1, frames=2)
    pred, gt = tmp_path / "d" / "low_blur_noise", tmp_path / "d" / "high_sharp_scaled"
    linked = pred / "0000" / "0001.png"
    linked.unlink()
    linked.symlink_to(gt / "0000" / "0001.png")
    assert main(["metrics", str(pred), str(gt), "--no-lpips", "-q"]) == 0
    expected = f"darkir: note: each scored against itself, as a link to its own reference: 1 image of PRED ({linked})"
    assert expected in capsys.readouterr().err
    linked.unlink()
    shutil.copy(gt / "0000" / "0001.png", linked)  # a copy is an output like any other
    assert main(["metrics", str(pred), str(gt), "--no-lpips", "-q"]) == 0
    assert "scored against itself" not in capsys.readouterr().err


def test_metrics_command_names_missing_and_mismatched_files(tmp_path, capsys):
    make_lolblur(tmp_path / "d", scenes=1, frames=2)
    (tmp_path / "d" / "high_sharp_scaled" / "0000" / "0001.png").unlink()
    assert (
        main(
            ["metrics", str(tmp_path / "d" / "low_blur_noise"), str(tmp_path / "d" / "high_sharp_scaled"), "--no-lpips"]
        )
        == 2
    )
    assert "0001.png: no reference image at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["metrics", str(tmp_path / "empty"), str(tmp_path / "d" / "high_sharp_scaled"), "--no-lpips"]) == 2
    assert "no images found" in capsys.readouterr().err


def test_metrics_pairs_an_output_with_the_one_reference_of_its_name_in_another_format(tmp_path, capsys):
    """Outputs saved as PNG for JPEG references pair by name; two references of that name, or one differing in
    case, are named in the error instead."""
    import cv2

    image = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    for name in ("pred/a.png", "gt/a.jpg", "pred/b.png", "gt/b.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), image)
    csv_file = tmp_path / "m.csv"
    assert (
        main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q", "--csv", str(csv_file)]) == 0
    )
    rows = _rows(csv_file)
    assert [row["image"] for row in rows] == ["a.png", "b.png"] and float(rows[1]["psnr"]) > 90 > float(rows[0]["psnr"])
    for name in ("pred/c.png", "gt/c.jpg", "gt/c.tif", "pred/D.png", "gt/d.png"):
        cv2.imwrite(str(tmp_path / name), image)
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"no reference image at {tmp_path / 'gt' / 'c.png'} (c.jpg, c.tif share its name in other formats" in err
    assert f"no reference image at {tmp_path / 'gt' / 'D.png'} (d.png differs in case" in err
    for name in ("gt/c.tif", "pred/D.png"):
        (tmp_path / name).unlink()
    cv2.imwrite(str(tmp_path / "pred" / "c.jpg"), image)  # c.png and c.jpg against one c.jpg: not scored twice
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pred' / 'c.png'}: its reference {tmp_path / 'gt' / 'c.jpg'} (the same name in another " in err
    assert f"is also that of {tmp_path / 'pred' / 'c.jpg'}; rename one of the inputs" in err


def test_metrics_notes_gray_outputs_scored_against_colour_references(tmp_path, capsys):
    """An output saved in gray against a colour reference gets one warning naming it; colour outputs and gray pairs
    get none."""
    import cv2

    colour = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    for name, pred, gt in (("a.png", gray, colour), ("b.png", colour, colour), ("c.png", gray, gray)):
        for folder, image in (("pred", pred), ("gt", gt)):
            (tmp_path / folder).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / folder / name), image)
    assert main(["metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--no-lpips", "-q"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("darkir: warning:")]
    assert warnings == [
        "darkir: warning: 1 image is grayscale where the reference is in colour (a.png): the missing colour counts in "
        "PSNR, SSIM and LPIPS"
    ]


def test_metrics_refuses_a_reference_folder_that_is_or_lies_in_the_outputs(tmp_path, capsys):
    make_lolblur(tmp_path / "d", scenes=1, frames=2)
    outputs, references = tmp_path / "d" / "low_blur_noise", tmp_path / "d" / "high_sharp_scaled"
    for pred, gt in ((outputs, outputs), (outputs, outputs / "." / ".." / "low_blur_noise")):
        assert main(["metrics", str(pred), str(gt), "--no-lpips", "-q"]) == 2
        assert "PRED and GT are the same folder" in capsys.readouterr().err
    shutil.copytree(references, outputs / "gt")
    assert main(["metrics", str(outputs), str(outputs / "gt"), "--no-lpips", "-q"]) == 2
    assert f"the reference folder {outputs / 'gt'} is inside the output folder {outputs}" in capsys.readouterr().err
    shutil.rmtree(outputs / "gt")
    shutil.copytree(outputs, references / "outputs")  # outputs kept below their references: scored as usual
    assert main(["metrics", str(references / "outputs"), str(references), "--no-lpips", "-q"]) == 0
    assert "(2 images;" in capsys.readouterr().out


def test_metrics_knows_a_folder_under_another_name_that_no_link_resolves(tmp_path, capsys):
    """A bind mount of the references (or of a folder holding them) given as PRED is refused like the folder itself;
    likewise on case-insensitive file systems, which realpath does not fold."""
    make_lolblur(tmp_path / "d", scenes=1, frames=2)
    references = tmp_path / "d" / "high_sharp_scaled"
    for source, message in ((references, "PRED and GT are the same folder"), (tmp_path / "d", "is inside the output")):
        with bind_mount(source, tmp_path / "mounted") as mounted:
            if mounted is None:
                pytest.skip("mounting is not allowed here")
            assert main(["metrics", str(mounted), str(references), "--no-lpips", "-q"]) == 2
            assert message in capsys.readouterr().err
            assert is_inside(mounted / "sub" / "x.png", source) and not is_inside(tmp_path, mounted)


def test_conventions_differ_only_outside_the_range():
    target = torch.full((1, 3, 16, 16), 0.5)
    pred = target.clone()
    pred[..., :4, :] = 1.3
    assert psnr(prepare(pred, "8bit"), target) > psnr(prepare(pred, "reference"), target)
    inside = torch.rand(1, 3, 16, 16)
    assert (prepare(inside, "8bit") - inside).abs().max() <= 0.5 / 255 + 1e-7


def _stand_in_lpips(tmp_path):
    """LPIPS files of the right shapes with random values (the real ones are not on this machine)."""
    generator = torch.Generator().manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    backbone = {}
    for index, shape in shapes.items():
        backbone[f"features.{index}.weight"] = torch.randn(shape, generator=generator) * 0.05
        backbone[f"features.{index}.bias"] = torch.zeros(shape[0])
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # ignored, as in torchvision's file
    heads = {
        f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
        for i, c in enumerate((64, 192, 384, 256, 256))
    }
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    return tmp_path / "alexnet.pth", tmp_path / "alex.pth"


def test_lpips_from_stand_in_files(tmp_path):
    model = load_lpips(*_stand_in_lpips(tmp_path))
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert torch.allclose(model(a, a), torch.zeros(2), atol=1e-6)
    d_ab, d_ba = model(a, b), model(b, a)
    assert (d_ab > 0).all() and torch.allclose(d_ab, d_ba)
    assert (model(a, a * 0.9 + 0.05) < d_ab).all()


def test_lpips_unavailable_names_the_file(tmp_path):
    with pytest.raises(LPIPSUnavailableError, match="alexnet.pth are missing"):
        load_lpips(tmp_path / "alexnet.pth", tmp_path / "alex.pth")


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    base = save_checkpoint(root / "base.pt", randomize(build_model("darkir-w32", **TINY), seed=1))
    csf = save_checkpoint(root / "csf.pt", randomize(build_model("darkir-csf-w32", **TINY), seed=2))
    data = make_lolblur(root / "data", scenes=3, frames=3, size=(40, 48))
    return base, csf, data


def test_test_command_with_lpips_csv_and_triplets(variants, tmp_path, capsys):
    base, _, data = variants
    backbone, heads = _stand_in_lpips(tmp_path)
    args = [
        "test",
        "--weights",
        str(base),
        "--data",
        str(data),
        "--csv",
        str(tmp_path / "t.csv"),
        "--save",
        "2",
        "--results-dir",
        str(tmp_path / "res"),
        "--lpips-backbone",
        str(backbone),
        "--lpips-heads",
        str(heads),
        "-q",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "9 images; outputs clamped to [0,1] and quantized to 8 bits" in out and "LPIPS n/a" not in out
    rows = _rows(tmp_path / "t.csv")
    assert len(rows) == 9 and rows[0]["image"] == "0000/0000.png" and float(rows[0]["lpips"]) > 0
    assert sorted(p.name for p in (tmp_path / "res").iterdir())[:3] == [
        "00000_gt.png",
        "00000_input.png",
        "00000_output.png",
    ]


def test_test_save_beyond_the_sets_size_looks_only_at_its_pairs_triplets(variants, tmp_path, monkeypatch, capsys):
    """``--save 1000000`` ("all") on a set of 9 pairs took 38 s and 700 MB checking the names of a million triplets
    for files in the way (``--save 100000000``: a MemoryError); only the set's triplets can be written."""
    from darkir.eval import paired

    base, _, data = variants
    counts = []
    names = paired.triplet_names
    monkeypatch.setattr(paired, "triplet_names", lambda count, *rest: counts.append(count) or names(count, *rest))
    args = ["test", "--weights", str(base), "--data", str(data), "--no-lpips", "-q", "--save", "1000000"]
    assert main([*args, "--results-dir", str(tmp_path / "res")]) == 0
    assert counts and max(counts) == 9
    assert len(list((tmp_path / "res").glob("*_output.png"))) == 9
    assert "9 input/output/gt triplets of the first 9 pairs" in capsys.readouterr().out


def test_compare_at_a_size_the_models_cannot_run_fails_before_scoring_anything(variants, tmp_path, monkeypatch, capsys):
    """The cost at ``--size`` was measured after every method had scored every image (hours on a real set), then
    failed with ptflops' traceback and a TypeError, and the report folder with all the scores went."""
    from darkir.eval import compare as compare_module

    base, _, data = variants
    scored = []
    monkeypatch.setattr(compare_module, "evaluate", lambda *args, **kwargs: scored.append(args))

    def refuse(model, size):
        raise RuntimeError(f"DefaultCPUAllocator: can't allocate memory for {size} px")

    monkeypatch.setattr(compare_module, "measure_complexity", refuse)
    args = ["compare", "--weights", str(base), "--data", str(data), "-o", str(tmp_path / "report"), "--no-lpips", "-q"]
    assert main([*args, "--size", "30000"]) == 2
    err = capsys.readouterr().err
    assert "--size 30000: cannot measure base at this size (DefaultCPUAllocator: can't allocate memory" in err
    assert not scored and not (tmp_path / "report").exists()


def test_compare_report_is_recomputable_from_its_csv(variants, tmp_path):
    base, csf, data = variants
    report = tmp_path / "report"
    args = [
        "compare",
        "--weights",
        str(base),
        "--weights",
        str(csf),
        "--data",
        str(data),
        "-o",
        str(report),
        "--size",
        "64",
        "--resamples",
        "300",
        "--no-lpips",
        "-q",
    ]
    assert main(args) == 0
    assert {p.name for p in report.iterdir()} >= {
        "report.md",
        "per_image.csv",
        "summary.json",
        "psnr_diff_hist.png",
        "grid.png",
    }
    summary = json.loads((report / "summary.json").read_text())
    assert list(summary["methods"]) == ["base", "csf", "input", "auto-exposure 0.4", "CLAHE"]
    rows = _rows(report / "per_image.csv")
    by_method = {m: np.array([float(r["psnr"]) for r in rows if r["method"] == m]) for m in summary["methods"]}
    for method, values in by_method.items():
        assert values.mean() == pytest.approx(summary["methods"][method]["mean"]["psnr"], abs=1e-5)
    diff = by_method["csf"] - by_method["base"]
    recomputed = bootstrap_mean(diff, resamples=300, seed=0)
    stored = summary["methods"]["csf"]["vs_reference"]["psnr"]
    assert (stored["mean"], stored["low"], stored["high"]) == pytest.approx(
        (recomputed.mean, recomputed.low, recomputed.high), abs=1e-5
    )
    assert stored["win_rate"] == pytest.approx(win_rate(diff, "psnr"))
    assert summary["methods"]["csf"]["params"] > summary["methods"]["base"]["params"]
    text = (report / "report.md").read_text()
    assert "auto-exposure 0.4" in text and "| csf |" in text and "recomputable" in text


def test_compare_states_how_its_models_ran_and_were_timed(variants, tmp_path):
    """Two reports of the same models in fp32 and bf16, or whole and tiled, read alike but for their numbers: the
    precision, tiling and threads that change scores and latency were in neither report.md nor summary.json."""
    base, _, data = variants
    report = tmp_path / "report"
    args = ["compare", "--weights", str(base), "--data", str(data), "-o", str(report), "--size", "64", "--no-lpips"]
    assert main([*args, "-q", "--precision", "fp32", "--tile", "48", "--threads", "1"]) == 0
    entry = json.loads((report / "summary.json").read_text())["methods"]["base"]
    assert (entry["precision"], entry["tile"], entry["threads"]) == ("float32", 48, 1)
    fastest, slowest = entry["latency_range_s"]
    assert 0 < fastest <= entry["latency_s"] <= slowest
    text = (report / "report.md").read_text()
    assert "Models ran on cpu in float32, tile 48, 1 thread. Latency: the median of 5 calls on one 3x64x64" in text
    # the spread beside the median (it was only in summary.json: two timings of one model differed by 24%)
    assert f"| {entry['latency_s']:.3f} [{fastest:.3f}, {slowest:.3f}] (cpu) |" in text


def test_compare_times_as_many_calls_as_latency_runs_asks(variants, tmp_path, monkeypatch):
    """The latency was always the median of 5 calls (a paper's table wants more); ``--latency-runs N`` times N calls
    of each model, as summary.json and the report say, with --unpaired too."""
    import darkir.eval.compare

    base, _, data = variants
    timed = []
    latencies = darkir.eval.compare.latencies

    def counted(methods: list, size: int, repeats: int = 5) -> list:
        results = latencies(methods, size, repeats)
        timed.append((repeats, results))
        return results

    monkeypatch.setattr(darkir.eval.compare, "latencies", counted)
    for folder, unpaired in ((data, []), (data / "low_blur_noise", ["--unpaired"])):
        timed.clear()
        report = tmp_path / f"report{len(unpaired)}"
        args = ["compare", "--weights", str(base), "--data", str(folder), "-o", str(report), "--size", "32", "-q"]
        assert main([*args, "--no-lpips", "--latency-runs", "7", "--resamples", "50", *unpaired]) == 0
        assert [repeats for repeats, _ in timed] == [7]
        assert json.loads((report / "summary.json").read_text())["methods"]["base"]["latency_runs"] == 7
        assert "Latency: the median of 7 calls on one 3x32x32 input" in (report / "report.md").read_text()


def test_a_compare_of_a_model_with_itself_says_that_ties_count_half(variants, tmp_path):
    """Identical outputs read "it wins on 50% of images", which it wins on none of: a tie counts half, said so."""
    base, _, data = variants
    report = tmp_path / "report"
    args = ["compare", "--weights", str(base), "--weights", str(base), "--data", str(data), "-o", str(report)]
    assert main([*args, "--size", "32", "--no-lpips", "-q"]) == 0
    text = (report / "report.md").read_text()
    assert "it wins on 50% of images (a tie counts half)" in text
    assert "wins: the share of images on which the method scores better than the reference, a tie counting half" in text


def test_compare_times_its_models_in_rounds_not_one_after_the_other():
    """Each model's five calls were timed in a row, so a change in the machine's load (another process starting)
    fell on one model's latency and not on the other's."""
    from darkir.eval.compare import LATENCY_REPEATS, latencies
    from darkir.eval.methods import Method

    calls = []

    def method(name):
        return Method(name, lambda x: calls.append(name) or x)

    timings = latencies([method("a"), method("b"), method("c")], size=8)
    assert calls == ["a", "b", "c"] * (1 + LATENCY_REPEATS)  # a warm-up of each, then the rounds
    assert len(timings) == 3 and all(0 <= fastest <= median <= slowest for median, fastest, slowest in timings)


def test_a_95_percent_interval_of_few_images_holds_the_mean_about_95_percent_of_the_time():
    """The percentile bootstrap's "95%" interval held the true mean of 5 normal scores 83% of the time, so a
    comparison of equal methods said "better" or "worse" three times as often as it should."""
    rng = np.random.default_rng(7)
    trials = [bootstrap_mean(rng.normal(0.0, 1.0, 5), resamples=500, seed=trial) for trial in range(300)]
    coverage = np.mean([interval.low <= 0.0 <= interval.high for interval in trials])
    assert 0.9 <= coverage <= 0.99, coverage
    constant = bootstrap_mean(np.full(6, 0.25))  # equal methods: a difference of 0 throughout
    assert (constant.low, constant.mean, constant.high) == (0.25, 0.25, 0.25)


def test_intervals_of_tied_scores_or_one_outlier_are_as_wide_as_students_t_and_never_fail():
    """A studentized bootstrap (tried first) made intervals hundreds of times too wide where resamples drew nearly tied
    scores (SSIM of near-identical outputs), and failed where none had any spread."""
    from darkir.eval.stats import t_quantile_975

    scipy_stats = pytest.importorskip("scipy.stats")
    assert all(abs(t_quantile_975(df) - scipy_stats.t.ppf(0.975, df)) < 0.004 for df in range(3, 200))
    for values in (
        [0.99, 0.991, 0.99, 0.5],
        [30.0] * 6 + [30.01] * 5 + [20.0],
        [0.02] * 11 + [-0.6],
        [1.0] * 11 + [0.9],
    ):
        values = np.array(values)
        interval = bootstrap_mean(values)
        half_t = scipy_stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
        assert interval.low < values.mean() < interval.high, values
        assert interval.high - interval.low < 2.5 * half_t, (values, interval)
    tied = bootstrap_mean(np.array([0.0] * 7 + [1.0]), resamples=1)  # one resample: rough, but an interval
    assert np.isfinite(tied.low) and np.isfinite(tied.high)


def test_bootstrap_interval_covers_a_known_mean():
    values = np.random.default_rng(0).normal(1.0, 0.5, 400)
    interval = bootstrap_mean(values, resamples=1000)
    assert interval.low < 1.0 < interval.high and interval.high - interval.low < 0.2
    assert win_rate(np.array([1.0, -1.0, 0.0, 2.0]), "psnr") == pytest.approx(0.625)
    assert win_rate(np.array([1.0, -1.0, 1.0, -1.0]), "lpips") == pytest.approx(0.5)
    assert np.isnan(win_rate(np.array([1.0, -1.0, 2.0]), "psnr"))  # 3 images: too few (MIN_INTERVAL_IMAGES)


def test_unpaired_command_and_seed_shim(variants, tmp_path, capsys):
    base, _, data = variants
    out = tmp_path / "unpaired"
    assert (
        main(["test-unpaired", "--weights", str(base), "--data", str(data / "low_blur_noise"), "-o", str(out), "-q"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "NIQE (lower is better" in printed and "brightness" in printed
    rows = _rows(out / "stats.csv")
    assert len(rows) == 9 and (out / "0000" / "0000.png").is_file()
    assert float(rows[0]["noise_in"]) > 0
    # each output is scored as its file holds it: what metrics reads back (it scored the float output, unrounded)
    from darkir.eval.noreference import no_reference_scores

    for row in rows[:3]:
        saved = no_reference_scores(read_image(out / row["image"]).rgb)
        for key in ("niqe", "brightness", "noise"):
            assert float(row[f"{key}_out"]) == pytest.approx(getattr(saved, key), abs=2e-5, nan_ok=True), key


def test_seed_testing_script(variants, tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    base, _, data = variants
    options = tmp_path / "test.yml"
    options.write_text(
        "network:\n  width: 8\n  middle_blk_num_enc: 1\n  middle_blk_num_dec: 1\n  enc_blk_nums: [1, 1, 1]\n"
        f"  dec_blk_nums: [1, 1, 1]\ndatasets:\n  val:\n    test_path: {data}\nsave:\n  path: {base}\n"
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "testing.py"), "-p", str(options), "--no-lpips", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert "PSNR" in done.stdout and (tmp_path / "images" / "results_test" / "00000_output.png").is_file()


def test_seed_testing_scripts_take_the_official_flag_and_default_options(variants, tmp_path, monkeypatch, capsys):
    # As the official testing.py and testing_unpaired.py: -p/--config, by default ./options/test/LOLBlur.yml and
    # ./options/test/RealBlur_Night.yml; --data without options uses no options file.
    from darkir.cli.seed import run_with_options

    base, _, data = variants
    network = (
        "network:\n  width: 8\n  middle_blk_num_enc: 1\n  middle_blk_num_dec: 1\n  enc_blk_nums: [1, 1, 1]\n"
        "  dec_blk_nums: [1, 1, 1]\n"
    )
    (tmp_path / "options" / "test").mkdir(parents=True)
    for name, test_path in (("LOLBlur.yml", data), ("RealBlur_Night.yml", data / "low_blur_noise")):
        text = f"{network}datasets:\n  val:\n    test_path: {test_path}\nsave:\n  path: {base}\n"
        (tmp_path / "options" / "test" / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    assert run_with_options("test", "./options/test/LOLBlur.yml", ["--no-lpips", "-q"]) == 0
    assert "PSNR" in capsys.readouterr().out
    unpaired = ["-o", str(tmp_path / "unpaired"), "-q"]
    assert run_with_options("test-unpaired", "./options/test/RealBlur_Night.yml", unpaired) == 0
    assert (tmp_path / "unpaired" / "stats.csv").is_file()
    elsewhere = tmp_path / "mine.yml"
    elsewhere.write_text((tmp_path / "options" / "test" / "LOLBlur.yml").read_text())
    (tmp_path / "options" / "test" / "LOLBlur.yml").unlink()
    assert run_with_options("test", "./options/test/LOLBlur.yml", ["--config", str(elsewhere), "--no-lpips"]) == 0
    assert run_with_options("test", "./options/test/LOLBlur.yml", ["--data", str(data), "--weights", str(base)]) == 0
    assert run_with_options("test", "./options/test/LOLBlur.yml", ["--no-lpips"]) == 2  # the default file is gone
    error = capsys.readouterr().err
    assert "no -p OPTIONS given, and the default options file ./options/test/LOLBlur.yml is not here" in error
    assert "pass -p OPTIONS or --data" in error
    for flag in ("-h", "--help"):  # help needs no options file
        with pytest.raises(SystemExit) as exited:
            run_with_options("test-unpaired", "./options/test/Missing.yml", [flag])
        assert exited.value.code == 0 and "usage: darkir test-unpaired" in capsys.readouterr().out


def test_seed_scripts_help_names_the_script_its_default_options_and_the_data_rule(monkeypatch, capsys):
    """``python testing.py --help`` printed darkir test's help alone: no word of testing.py, its default options
    file, or that --data takes none (and so scores the packaged weights)."""
    from darkir.cli.seed import run_with_options

    monkeypatch.setattr(sys, "argv", ["testing.py", "--help"])
    with pytest.raises(SystemExit):
        run_with_options("test", "./options/test/LOLBlur.yml")
    out = capsys.readouterr().out
    assert out.startswith("testing.py runs `darkir test` with -p/--config OPTIONS (default ./options/test/LOLBlur.yml;")
    assert "where --data names the data, none: then the packaged default weights" in out and "usage: darkir test" in out


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs a case-sensitive file system")
def test_official_collections_find_lol_v2_as_downloaded(tmp_path):
    # LOL-v2's archive names its folders Real_captured/Test and Synthetic/Test; the official readers ask for "test".
    from darkir.data.pairs import collection_pairs
    from tests.test_data import _write

    root = tmp_path / "datasets"
    for kind in ("Real_captured", "Synthetic"):
        for index in range(2):
            _write(root / "LOL-v2" / kind / "Test" / "Low" / f"low0000{index}.png", seed=index)
            _write(root / "LOL-v2" / kind / "Test" / "Normal" / f"normal0000{index}.png", seed=9 + index)
    for side in ("low_blur_noise", "high_sharp_scaled"):
        _write(root / "LOLBlur" / "test" / side / "0001" / "0001.png", seed=4)
    found = collection_pairs(root, "All_LOL")
    assert {label: len(pairs) for label, pairs in found.items()} == {"lolblur": 1, "lolv2": 2, "lolv2_synth": 2}
    assert all("Test" in pair.low.parts for pair in found["lolv2"])
    shutil.copytree(root / "LOL-v2" / "Synthetic" / "Test", root / "LOL-v2" / "Synthetic" / "test")
    assert all("test" in pair.low.parts for pair in collection_pairs(root, "All_LOL")["lolv2_synth"])
    shutil.rmtree(root / "LOL-v2" / "Synthetic" / "test")
    shutil.move(root / "LOL-v2" / "Synthetic" / "Test", root / "LOL-v2" / "Synthetic" / "TEST")
    (root / "LOL-v2" / "Synthetic" / "tEST").mkdir()  # two candidates: neither is guessed
    with pytest.raises(DatasetError, match="LOL-v2/Synthetic/test"):
        collection_pairs(root, "All_LOL")


def test_official_collections_evaluate_each_of_their_test_sets(variants, tmp_path, capsys):
    # The official AllLOL.yml and v2real_lsrw.yml name datasets All_LOL / real_LSRW with test_path the root that holds
    # LOLBlur, LOL-v2 (and LSRW) test sets: each is evaluated and reported by its name, as the official testing.py does.
    import shutil

    from tests.test_data import _write

    base, _, data = variants
    root = tmp_path / "datasets"
    shutil.copytree(data, root / "LOLBlur" / "test")
    for kind in ("Real_captured", "Synthetic"):
        for index in range(2):
            _write(root / "LOL-v2" / kind / "test" / "Low" / f"low0000{index}.png", seed=index)
            _write(root / "LOL-v2" / kind / "test" / "Normal" / f"normal0000{index}.png", seed=9 + index)
    for camera in ("Huawei", "Nikon"):
        for side in ("low", "high"):
            _write(root / "Low_Light_Enhancement_Datasets" / "LSRW_" / "Eval" / camera / side / "1.jpg", seed=3)
    network = (
        "network:\n  width: 8\n  middle_blk_num_enc: 1\n  middle_blk_num_dec: 1\n  enc_blk_nums: [1, 1, 1]\n"
        "  dec_blk_nums: [1, 1, 1]\n"
    )
    expected = {
        "All_LOL": {"lolblur": 9, "lolv2": 2, "lolv2_synth": 2},
        "real_LSRW": {"lolv2": 2, "lsrw": 2, "lolblur": 9},
    }
    for name, sets in expected.items():
        options = tmp_path / f"{name}.yml"
        options.write_text(
            f"datasets:\n  name: {name}\n  val:\n    test_path: {root}\n{network}save:\n  path: {base}\n"
        )
        table = tmp_path / f"{name}.csv"
        results = tmp_path / f"{name}-results"
        args = ["test", "-p", str(options), "--no-lpips", "-q", "--csv", str(table), "--save", "1"]
        assert main([*args, "--results-dir", str(results)]) == 0
        printed = capsys.readouterr().out
        for label, count in sets.items():
            assert f"{name} on {label}: PSNR" in printed and f"({count} images;" in printed
            assert (results / label / "00000_output.png").is_file()
        with open(table, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {row["method"] for row in rows} == {f"{name} on {label}" for label in sets}
        assert len(rows) == sum(sets.values())
    assert {row["image"] for row in rows if row["method"] == "real_LSRW on lsrw"} == {"Huawei/1.jpg", "Nikon/1.jpg"}
    shutil.rmtree(root / "LOL-v2" / "Synthetic" / "test" / "Normal")
    assert main(["test", "-p", str(tmp_path / "All_LOL.yml"), "--no-lpips", "-q"]) == 2
    assert "datasets.name All_LOL, test set lolv2_synth: " in capsys.readouterr().err
    shutil.rmtree(root / "LOL-v2" / "Synthetic")
    assert main(["test", "-p", str(tmp_path / "All_LOL.yml"), "--no-lpips", "-q"]) == 2
    error = capsys.readouterr().err
    assert "datasets.name All_LOL reads 3 test sets" in error and "LOL-v2/Synthetic/test" in error


def test_clahe_brightens_dark_images_and_keeps_their_size():
    from darkir.eval.methods import clahe

    rng = np.random.default_rng(0)
    dark = torch.from_numpy(rng.random((1, 3, 37, 53), dtype=np.float32) * 0.1)
    out = clahe().run(dark)
    assert out.shape == dark.shape and out.mean() > dark.mean() and out.min() >= 0 and out.max() <= 1


def test_zero_dce_peer_loads_its_checkpoint_layout_and_rejects_others(tmp_path):
    from darkir.checkpoint import CheckpointError
    from darkir.eval.methods import zero_dce
    from darkir.eval.zerodce import ZeroDCE

    model = ZeroDCE()
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "Epoch99.pth")  # DataParallel
    x = torch.rand(1, 3, 20, 30) * 0.2
    out = zero_dce(str(tmp_path / "Epoch99.pth")).run(x)
    with torch.no_grad():
        assert torch.allclose(out, model(x).clamp(0, 1), atol=1e-6)
    torch.save({"e_conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a Zero-DCE checkpoint"):
        zero_dce(str(tmp_path / "other.pth"))
    with pytest.raises(CheckpointError):
        zero_dce(str(tmp_path / "missing.pth"))


def test_names_that_are_not_utf8_are_written_as_they_are(tmp_path, tiny_checkpoint, capsys):
    """A file name with bytes that are not UTF-8 (Linux allows them) reaches the CSV and the triplet note as its own
    bytes, instead of a UnicodeEncodeError after every image was scored."""
    import os

    import cv2

    name = os.fsdecode(b"a\xff.png")
    png = cv2.imencode(".png", (np.random.default_rng(0).random((32, 32, 3)) * 60).astype(np.uint8))[1].tobytes()
    for folder in ("low", "high"):
        (tmp_path / "set" / folder).mkdir(parents=True)
        try:
            (tmp_path / "set" / folder / name).write_bytes(png)  # cv2.imwrite crashes on such a name
        except (UnicodeEncodeError, OSError):
            pytest.skip("this file system takes UTF-8 names only")
    csv_file = tmp_path / "m.csv"
    assert main(["metrics", *(str(tmp_path / "set" / f) for f in ("low", "high")), "--csv", str(csv_file), "-q"]) == 0
    assert csv_file.read_bytes().splitlines()[1].startswith(b"a\xff.png,")
    results = tmp_path / "results"
    weights = ["--weights", str(tiny_checkpoint), "--no-lpips", "-q"]
    assert main(["test", "--data", str(tmp_path / "set"), *weights, "--results-dir", str(results), "--save", "1"]) == 0
    assert b"a\xff.png" in (results / "triplets.txt").read_bytes()
    assert main(["test", "--data", str(tmp_path / "set"), *weights, "--results-dir", str(results), "--save", "1"]) == 0


def test_test_unpaired_gives_the_niqe_change_over_the_images_scored_in_and_out():
    """A flat or black input has no NIQE and its output has one: the input's mean covered 2 images, the output's 4,
    and the restoration looked worse (13.0 -> 22.4) where it was better on both images scored in and out."""
    from darkir.eval.noreference import NoReferenceScores
    from darkir.eval.unpaired import UnpairedRow, niqe_change_line

    def row(before: float, after: float) -> UnpairedRow:
        return UnpairedRow("x.png", NoReferenceScores(before, 0.1, 0.01), NoReferenceScores(after, 0.4, 0.01))

    rows = [row(15.6, 11.8), row(10.4, 6.6), row(math.nan, 41.3), row(math.nan, 30.1)]
    assert niqe_change_line(rows) == (
        "NIQE of the 2 images scored in and out (the means above cover different images): 13.000 -> 9.200"
    )
    assert niqe_change_line(rows[:2]) is None  # the means cover the same images
