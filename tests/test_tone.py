"""Tone apart from detail: exposure compensation (CLI, API, demo), tone-fitted detail scores, tone figures, and the
synthesis convention in which the reference's brightness follows the capture's."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch

from darkir.cli import main
from darkir.data.degradation import SynthParams, degrade, synth_params
from darkir.errors import DarkIRError
from darkir.eval.metrics import psnr
from darkir.eval.tone import fit_tone, has_detail, tone, tone_fitted
from darkir.infer import Restorer
from darkir.infer.exposure import apply_exposure, srgb_to_linear
from darkir.models.factory import load_model


def _night_photo(path, seed=0, size=(48, 64), peak=60):
    rng = np.random.default_rng(seed)
    image = (rng.random((*size, 3)) * peak).astype(np.uint8)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def restorer(tiny_checkpoint):
    return Restorer(load_model(tiny_checkpoint), device="cpu", tile=0, precision="fp32")


def test_zero_ev_is_the_models_output_bit_for_bit(restorer, tiny_checkpoint):
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    plain = restorer.restore_tensor(x)
    assert torch.equal(restorer.with_exposure(0).restore_tensor(x), plain)
    again = Restorer(load_model(tiny_checkpoint), device="cpu", tile=0, precision="fp32", exposure=0.0)
    assert torch.equal(again.restore_tensor(x), plain)
    assert apply_exposure(plain, 0) is plain


def test_exposure_halves_and_about_doubles_the_linear_mean_monotonically():
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.6
    base = srgb_to_linear(x).mean()
    means = {ev: float(srgb_to_linear(apply_exposure(x, ev)).mean() / base) for ev in (-2, -1, -0.5, 0, 0.5, 1, 2)}
    assert means[-1] == pytest.approx(0.5, rel=1e-4) and means[-2] == pytest.approx(0.25, rel=1e-4)
    assert 1.8 <= means[1] <= 2.0  # the bright side may roll off, never past white
    assert list(means.values()) == sorted(means.values())
    bright = apply_exposure(torch.ones(1, 3, 4, 4), 3)
    assert float(bright.max()) <= 1.0
    # pixel by pixel: more EV never darkens, and the curve is continuous at 0 EV
    ramp = torch.linspace(0, 1, 256).reshape(1, 1, 16, 16)
    assert torch.all(apply_exposure(ramp, 1.0) >= apply_exposure(ramp, 0.5))
    assert torch.allclose(apply_exposure(ramp, 1e-6), ramp, atol=1e-4)


def test_exposure_is_checked_where_it_is_given(tiny_checkpoint, tmp_path, capsys):
    for bad in (float("nan"), 9, "1", True):
        with pytest.raises(DarkIRError, match="exposure"):
            Restorer(load_model(tiny_checkpoint), device="cpu", exposure=bad)
    photo = _night_photo(tmp_path / "a.png")
    for bad in ("nan", "bright", "7"):
        with pytest.raises(SystemExit) as stop:
            main(
                [
                    "restore",
                    str(photo),
                    "-o",
                    str(tmp_path / "out"),
                    "--weights",
                    str(tiny_checkpoint),
                    "--exposure",
                    bad,
                ]
            )
        assert stop.value.code == 2
    assert "--exposure" in capsys.readouterr().err


def test_restore_cli_exposure(tiny_checkpoint, tmp_path):
    (tmp_path / "in").mkdir()
    photo = _night_photo(tmp_path / "in" / "a.png")
    outputs = {}
    for ev in ("0", "-1", "1"):
        out = tmp_path / f"out{ev}"
        flags = [] if ev == "0" else ["--exposure", ev]
        assert main(["restore", str(photo), "-o", str(out), "--weights", str(tiny_checkpoint), "-q", *flags]) == 0
        outputs[ev] = cv2.imread(str(out / "a.png")).astype(np.float64) / 255
    zero = tmp_path / "zero"
    assert (
        main(["restore", str(photo), "-o", str(zero), "--weights", str(tiny_checkpoint), "-q", "--exposure", "0"]) == 0
    )
    assert np.array_equal(cv2.imread(str(zero / "a.png")), np.rint(outputs["0"] * 255).astype(np.uint8))
    linear = {ev: float(srgb_to_linear(torch.from_numpy(image)).mean()) for ev, image in outputs.items()}
    assert linear["-1"] == pytest.approx(linear["0"] / 2, rel=0.05)
    assert linear["0"] < linear["1"] <= 2 * linear["0"] * 1.05


def test_video_takes_exposure(tiny_checkpoint, tmp_path):
    av = pytest.importorskip("av")
    from tests.test_video import make_video

    source = make_video(tmp_path / "clip.mp4", frames=3, size=(48, 64), audio=False)
    means = []
    for ev in ("-1", "1"):
        target = tmp_path / f"out{ev}.mp4"
        assert (
            main(["video", str(source), "-o", str(target), "--weights", str(tiny_checkpoint), "-q", "--exposure", ev])
            == 0
        )
        with av.open(str(target)) as container:
            means.append(np.mean([f.to_ndarray(format="rgb24").mean() for f in container.decode(video=0)]))
    assert means[0] < means[1]


def test_demo_exposure_slider_changes_the_result(tiny_checkpoint, tmp_path):
    from darkir.demo import DemoEngine

    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        photo = str(_night_photo(tmp_path / "a.png"))
        plain, dark, bright = (engine.restore_image(photo, "tiny", ev) for ev in (0.0, -1.0, 1.0))
        assert dark.after.mean() < plain.after.mean() < bright.after.mean()
        assert "exposure +1 EV" in bright.summary and "exposure" not in plain.summary
        assert np.array_equal(engine.restore_image(photo, "tiny").after, plain.after)
    finally:
        engine.close()


def test_tone_fit_recovers_gain_and_gamma_and_detail_ignores_global_tone():
    target = torch.rand(1, 3, 40, 50, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    toned = (target / 1.5) ** (1 / 0.7)
    gain, gamma = fit_tone(toned[0], target[0])
    assert gain == pytest.approx(1.5, rel=1e-3) and gamma == pytest.approx(0.7, rel=1e-3)
    assert psnr(toned, target).item() < 20 and psnr(tone_fitted(toned, target), target).item() > 45


def test_detail_scores_against_a_flat_reference_are_undefined(tmp_path, capsys):
    """Noise scored against a black reference got a detail PSNR of 100 dB and SSIM 1 (the fitted gain went to 0),
    which lifted the set's mean detail; a flat reference has no detail to score."""
    rng = np.random.default_rng(0)
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    references = {"black": np.zeros((40, 40, 3)), "grey": np.full((40, 40, 3), 128), "white": np.full((40, 40, 3), 255)}
    references["specks"] = np.zeros((40, 40, 3))
    references["specks"][::7, ::5] = 1  # a black frame's few pixels one level up: noise scored 67 dB against it
    references["textured"] = rng.integers(0, 256, (40, 40, 3))
    for name, reference in references.items():
        cv2.imwrite(str(tmp_path / "pred" / f"{name}.png"), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "ref" / f"{name}.png"), reference.astype(np.uint8))
    csv_path = tmp_path / "scores.csv"
    args = ["metrics", str(tmp_path / "pred"), str(tmp_path / "ref"), "--no-lpips", "--csv", str(csv_path), "-q"]
    assert main(args) == 0
    rows = {row.split(",")[0]: row.split(",") for row in csv_path.read_text().splitlines()[1:]}
    for name in ("black.png", "grey.png", "white.png", "specks.png"):
        assert rows[name][5:7] == ["nan", "nan"], rows[name]
    assert float(rows["textured.png"][5]) < 15 and float(rows["textured.png"][6]) < 0.2  # noise against texture
    dark = torch.from_numpy(rng.integers(0, 200, (3, 40, 40)) / 65535)  # a dark 16-bit reference's texture
    assert has_detail(dark, 16) and not has_detail(dark, 8)
    out = capsys.readouterr().out  # the mean detail is the textured pair's alone, the unit before the count
    assert re.search(r"detail \(tone fitted per image\): PSNR [\d.]+ dB \(1 of 5 images\)", out), out


def test_tone_figures():
    follows = tone([0.2, 0.3, 0.4, 0.5], [0.22, 0.29, 0.41, 0.52])
    assert follows.correlation > 0.95 and follows.ratio == pytest.approx(1.4 / 1.44)
    flat = tone([0.35, 0.36, 0.35, 0.36], [0.2, 0.3, 0.4, 0.5])
    assert flat.correlation < 0.5
    assert np.isnan(tone([0.3, 0.3], [0.2, 0.4]).correlation)  # two images: no correlation to speak of


def test_compare_reports_detail_and_tone_as_strict_json(tiny_checkpoint, tmp_path):
    for folder in ("low", "high"):
        (tmp_path / "set" / folder).mkdir(parents=True)
    for index in range(3):
        _night_photo(tmp_path / "set" / "low" / f"{index}.png", seed=index, peak=30 + 30 * index)
        texture = np.random.default_rng(index).integers(0, 20, (48, 64, 3))  # (a flat one has no detail score)
        cv2.imwrite(str(tmp_path / "set" / "high" / f"{index}.png"), (50 + 40 * index + texture).astype(np.uint8))
    out = tmp_path / "report"
    args = ["compare", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "set"), "-o", str(out)]
    assert main([*args, "--no-lpips", "-q", "--tile", "0"]) == 0
    text = (out / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))
    entry = summary["methods"]["tiny"]
    assert entry["mean"]["lpips"] is None and entry["mean"]["psnr_detail"] >= entry["mean"]["psnr"]
    assert set(entry["tone"]) == {"correlation", "ratio", "output_mean", "reference_mean"}
    assert summary["methods"]["input"]["tone"]["correlation"] > 0.5  # the inputs follow these references
    assert "## Detail and tone" in (out / "report.md").read_text()


def test_reference_brightness_follows_the_capture_with_target_tone():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    clean = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    coupled = synth_params({"target_tone": [0.315, 0.18], "light_prob": 0.0, "jpeg_prob": 0.0, "blur_prob": 0.0})
    lows, highs = [], []
    for seed in range(16):
        low, high, record = degrade(clean, np.random.default_rng(seed), coupled)
        expected = np.clip(0.315 * (record["low_mean"] / 0.1) ** 0.18, 0.28, 0.40)
        assert record["target_mean"] == pytest.approx(expected, abs=1e-4)
        lows.append(low.mean())
        highs.append(high.mean())
    assert np.corrcoef(np.log(lows), np.log(highs))[0, 1] > 0.9
    # the default convention is unchanged: the reference's brightness is the first draw, apart from the capture
    _, _, plain_record = degrade(clean, np.random.default_rng(3), SynthParams())
    assert plain_record["target_mean"] == round(np.random.default_rng(3).uniform(0.28, 0.40), 4)
    with pytest.raises(ValueError, match="target_tone"):
        synth_params({"target_tone": "bright"})


def test_reference_brightness_can_follow_the_captures_bright_parts():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    clean = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    params = {"target_tone": [0.33, 0.231], "target_statistic": "p90", "target_mean_range": [0.22, 0.47]}
    coupled = synth_params({**params, "light_prob": 0.0, "jpeg_prob": 0.0})
    for seed in range(6):
        low, high, record = degrade(clean, np.random.default_rng(seed), coupled)
        expected = np.clip(0.33 * (np.percentile(low, 90) / 0.1) ** 0.231, 0.22, 0.47)
        assert record["target_mean"] == pytest.approx(expected, abs=1e-4)
        assert high[::4, ::4].mean() == pytest.approx(expected, abs=0.005)  # re-exposed to it (on the sampled pixels)
    with pytest.raises(ValueError, match="target_statistic"):
        synth_params({"target_statistic": "median"})


def test_reference_keeps_part_of_the_scenes_own_brightness_with_target_scene_slope():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    ramp = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    base = {"target_tone": [0.33, 0.231], "target_statistic": "p90", "target_mean_range": [0.05, 0.95]}
    base |= {"light_prob": 0.0, "jpeg_prob": 0.0}
    follows_capture, keeps_scene = synth_params(base), synth_params({**base, "target_scene_slope": 0.5})
    for clean in (0.4 * ramp, 0.9 * ramp):
        for seed in range(3):
            _, _, plain = degrade(clean, np.random.default_rng(seed), follows_capture)
            low, _, scened = degrade(clean, np.random.default_rng(seed), keeps_scene)
            expected = 0.33 * (np.percentile(low, 90) / 0.1) ** 0.231 * (clean.mean() / 0.4) ** 0.5
            assert scened["target_mean"] == pytest.approx(expected, abs=1e-4)
            assert scened["low_mean"] == plain["low_mean"]  # the capture is drawn as before
    # slope 0 (the default) is the p90 convention exactly
    a = degrade(ramp, np.random.default_rng(5), follows_capture)
    b = degrade(ramp, np.random.default_rng(5), synth_params({**base, "target_scene_slope": 0.0}))
    assert np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_a_capture_that_is_not_dark_keeps_its_brightness_with_target_keep_range():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    ramp = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    base = {"target_tone": [0.33, 0.231], "target_statistic": "p90", "target_mean_range": [0.22, 0.55]}
    base |= {"light_prob": 0.0, "jpeg_prob": 0.0, "falloff_prob": 0.0}
    law, keeps = synth_params(base), synth_params({**base, "target_keep_range": [0.2, 0.45]})
    seen = set()
    for low_mean in (0.05, 0.3, 0.6):
        for seed in range(3):
            params = {"low_mean_range": [low_mean, low_mean]}
            _, _, toned = degrade(ramp, np.random.default_rng(seed), synth_params({**base, **params}))
            low, high, kept = degrade(
                ramp, np.random.default_rng(seed), synth_params({**base, **params, "target_keep_range": [0.2, 0.45]})
            )
            capture = float(low.mean())
            if capture <= 0.2:  # dark: the tone's brightness, as without the option
                assert kept["target_mean"] == toned["target_mean"]
                seen.add("dark")
            elif capture >= 0.45:  # well exposed: its own
                assert kept["target_mean"] == pytest.approx(capture, abs=1e-4)
                assert high[::4, ::4].mean() == pytest.approx(capture, abs=0.01)
                seen.add("bright")
            else:  # between the two, log-linearly
                assert min(capture, toned["target_mean"]) < kept["target_mean"] < max(capture, toned["target_mean"])
                seen.add("between")
    assert seen == {"dark", "between", "bright"} and law.target_keep_range is None and keeps.target_keep_range
    for bad in ([0.45, 0.2], [0.0, 0.3], [0.2, 1.5]):
        with pytest.raises(ValueError, match="target_keep_range"):
            synth_params({"target_keep_range": bad})


def test_tone_of_no_images_reads_n_a_like_the_other_scores():
    from darkir.eval.tone import tone

    assert tone([], []).as_text() == "brightness n/a vs reference n/a (ratio n/a), correlation across images n/a"
    assert tone([float("nan")], [0.5]).as_text().startswith("brightness n/a vs reference n/a")
