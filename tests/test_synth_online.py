"""Pairs degraded on the fly, the night degradation model, continued training (--init-from) and the photo corpus."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from darkir.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from darkir.cli import build_parser
from darkir.data import corpus
from darkir.data.degradation import SynthParams, degrade
from darkir.data.layouts import DatasetError
from darkir.data.synth import SynthDataset, load_photos, sample_crop
from darkir.errors import ConfigError
from darkir.models.factory import build_model
from darkir.options import load_options
from darkir.train.run import train
from darkir.train.trainer import Trainer
from tests.conftest import REPO, TINY, make_photos, randomize


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    make_photos(folder, count=6)
    return folder


@pytest.fixture(scope="module")
def photos(photo_dir):
    paths = sorted(photo_dir.glob("*.png"))
    return load_photos(paths), [p.stem for p in paths]


def test_samples_are_reproducible_per_epoch_and_index(photos):
    arrays, names = photos
    a = SynthDataset(arrays, names, length=4, crop=48, seed=3)
    b = SynthDataset(arrays, names, length=4, crop=48, seed=3)
    first = a[2]
    assert torch.equal(first["low"], b[2]["low"]) and torch.equal(first["high"], b[2]["high"])
    a.set_epoch(1)
    assert not torch.equal(first["low"], a[2]["low"])  # a fresh degradation every epoch
    assert first["low"].shape == first["high"].shape == (3, 48, 48)
    fixed = SynthDataset(arrays, names, length=4, crop=48, seed=3, fixed=True)
    before = fixed[1]["low"]
    fixed.set_epoch(5)
    assert torch.equal(before, fixed[1]["low"])


def test_photos_smaller_than_the_crop_are_named_before_any_sample():
    small, large = np.zeros((40, 90, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(DatasetError, match=r"photos smaller than the crop size 48: tiny \(90x40\); lower the crop"):
        SynthDataset([large, small], ["big", "tiny"], length=4, crop=48)


def test_night_degradation_is_dark_noisy_and_keeps_the_reference_convention():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96] / 96.0
    clean = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    params = SynthParams(light_prob=0.0, jpeg_prob=0.0)
    highs, lows = [], []
    for _ in range(12):
        low, high, record = degrade(clean, rng, params)
        assert low.shape == high.shape == clean.shape and low.dtype == np.float32
        assert 0.28 - 0.02 <= high.mean() <= 0.40 + 0.02
        assert record["low_mean"] < high.mean()
        highs.append(high.mean())
        lows.append(low.mean())
    assert np.mean(lows) < 0.15 and np.std(highs) > 0.01


def test_bright_captures_keep_a_brighter_reference_with_a_margin():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    clean = np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32)
    plain = SynthParams(light_prob=0.0, jpeg_prob=0.0, blur_prob=0.0, low_mean_range=(0.3, 0.35))
    with_margin = SynthParams(**{**plain.__dict__, "target_margin": 0.1})
    low, high, record = degrade(clean, np.random.default_rng(1), with_margin)
    assert record["target_mean"] >= record["low_mean"] + 0.1 - 1e-4 and high.mean() > low.mean() + 0.05
    # the margin draws nothing: the same seed gives the same capture brightness with and without it
    _, _, plain_record = degrade(clean, np.random.default_rng(1), plain)
    assert plain_record["low_mean"] == record["low_mean"]


def test_reference_keeps_the_chosen_share_of_uneven_light():
    clean = np.full((64, 64, 3), 0.5, np.float32)
    flat = SynthParams(
        light_prob=0.0,
        jpeg_prob=0.0,
        blur_prob=0.0,
        cast_prob=0.0,
        falloff_prob=1.0,
        bayer_prob=0.0,
        photons_range=(1e9, 1e9),
        read_noise_range=(1e-9, 1e-9),
    )
    shaded = SynthParams(**{**flat.__dict__, "reference_shading_range": (1.0, 1.0)})
    low_flat, high_flat, record_flat = degrade(clean, np.random.default_rng(3), flat)
    low, high, record = degrade(clean, np.random.default_rng(3), shaded)
    assert "reference_shading" not in record_flat and record["reference_shading"] == 1.0
    assert np.abs(low - low_flat).max() < 1.5 / 255  # the capture does not change (noise-free here)
    assert high_flat.std() < 1e-3 < high.std()  # a flat grey scene stays flat unless the shading is kept
    # fully kept, the reference is shaded as the capture is: their brightness patterns agree
    assert np.corrcoef(high[..., 1].ravel(), low[..., 1].ravel())[0, 1] > 0.9


def test_lamps_stay_saturated_in_the_dark_capture():
    rng = np.random.default_rng(4)
    clean = np.full((96, 96, 3), 0.4, np.float32)
    params = SynthParams(light_prob=1.0, lights_range=(3, 3), light_radius_range=(4.0, 4.0), blur_prob=0.0)
    low, high, record = degrade(clean, rng, params)
    assert record["lights"] and high.max() >= 0.999
    assert low.max() > 0.9 and np.median(low) < 0.3  # bright lamps in a dark frame


def test_crops_zoom_out_within_bounds(photos):
    arrays, _ = photos
    rng = np.random.default_rng(0)
    crop = sample_crop(arrays[0], 32, rng, max_zoom_out=3.0)
    assert crop.shape == (32, 32, 3) and crop.min() >= 0 and crop.max() <= 1


def _synth_options(photo_dir, run, *extra):
    return load_options(
        REPO / "options" / "train" / "tiny_csf.yml",
        [
            "datasets.train.train_path=null",
            "datasets.val.test_path=null",
            f"datasets.train.synth={{sources: ['{photo_dir}'], pairs_per_epoch: 4, val_photos: 1, test_photos: 1,"
            " val_pairs: 2, val_cropsize: 48}",
            "datasets.train.cropsize=32",
            "datasets.train.batch_size_train=2",
            "train.epochs=2",
            f"save.path={run / 'last.pt'}",
            f"save.best={run / 'best.pt'}",
            *extra,
        ],
    )


def test_training_on_the_fly_validates_and_resumes_exactly(photo_dir, tmp_path):
    straight = train(_synth_options(photo_dir, tmp_path / "a", "train.keep_every_steps=2"), progress=False)
    assert straight.steps == 4 and straight.best_psnr is not None
    kept = sorted(p.name for p in (tmp_path / "a").glob("last_step*.pt"))
    assert kept == ["last_step000002.pt", "last_step000004.pt"]
    assert read_checkpoint(tmp_path / "a" / "last_step000002.pt")[2]["step"] == 2
    half = train(_synth_options(photo_dir, tmp_path / "b"), progress=False, max_steps=1)
    resumed = train(_synth_options(photo_dir, tmp_path / "b"), resume=True, progress=False)
    assert half.steps == 1 and resumed.steps == 4
    a, _, _ = read_checkpoint(straight.last)
    b, _, _ = read_checkpoint(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_whose_photos_moved_a_held_out_one_into_training_is_refused(photo_dir, tmp_path):
    """A photo added to the sources reshuffles the split: the resumed run trained on its earlier test photo without
    a word. It is refused, naming the photos; a resume on the same photos goes on."""
    from darkir.data.synth import assign_splits

    photos = tmp_path / "photos"
    shutil.copytree(photo_dir, photos)
    names = sorted(p.stem for p in photos.glob("*.png"))
    held_out = sorted(name for name, split in assign_splits(names, 1, 1, 0).items() if split != "train")

    def trained_if_added(extra: str) -> list[str]:
        splits = assign_splits(sorted([*names, extra]), 1, 1, 0)
        return [name for name in held_out if splits[name] == "train"]

    added = next(f"extra{i}" for i in range(100) if trained_if_added(f"extra{i}"))
    train(_synth_options(photos, tmp_path / "run"), progress=False, max_steps=1)
    assert read_checkpoint(tmp_path / "run" / "last.pt")[2]["held_out_photos"] == held_out
    extra = make_photos(tmp_path / "more", count=7)["photo6"]  # a photo none of the others copies
    shutil.copy(extra, photos / f"{added}.png")
    with pytest.raises(ConfigError, match=rf"photos would cross .*\({trained_if_added(added)[0]}"):
        train(_synth_options(photos, tmp_path / "run"), resume=True, progress=False)
    assert read_checkpoint(tmp_path / "run" / "last.pt")[2]["step"] == 1
    (photos / f"{added}.png").unlink()
    with pytest.raises(ConfigError, match=r"the photo split changed since this run began"):  # trained ones held out
        train(_synth_options(photos, tmp_path / "run", "datasets.train.synth.test_photos=3"), resume=True)
    assert train(_synth_options(photos, tmp_path / "run"), resume=True, progress=False, max_steps=2).steps == 2


def test_a_resume_of_a_checkpoint_without_its_split_says_the_split_cannot_be_checked(photo_dir, tmp_path, capsys):
    """A checkpoint of an older darkir records no held-out photos: its resume goes on, but says that a changed split
    (photos added since) cannot be detected; a checkpoint that records them says nothing."""
    run = tmp_path / "run"
    train(_synth_options(photo_dir, run), progress=False, max_steps=1)
    assert train(_synth_options(photo_dir, run), resume=True, progress=False, max_steps=2).steps == 2
    assert "does not record which photos" not in capsys.readouterr().err
    state, config, payload = read_checkpoint(run / "last.pt")
    payload = {key: value for key, value in payload.items() if key not in ("held_out_photos", "trained_photos")}
    torch.save({"state_dict": state, "config": config, **payload}, run / "last.pt")
    assert train(_synth_options(photo_dir, run), resume=True, progress=False, max_steps=3).steps == 3
    err = capsys.readouterr().err
    assert f"darkir: warning: {run / 'last.pt'} (saved by an older darkir) does not record which photos" in err


def test_a_resume_of_a_checkpoint_without_its_split_refuses_changed_split_settings(photo_dir, tmp_path, capsys):
    """A checkpoint of an older darkir records no held-out photos: a resume with another split_seed went on (saying
    a changed split "cannot be detected") and trained on photos the run had held out. Its saved options name the
    split's settings: a change of them is refused."""
    run = tmp_path / "run"
    train(_synth_options(photo_dir, run), progress=False, max_steps=1)
    state, config, payload = read_checkpoint(run / "last.pt")
    payload = {key: value for key, value in payload.items() if key not in ("held_out_photos", "trained_photos")}
    torch.save({"state_dict": state, "config": config, **payload}, run / "last.pt")
    changed = _synth_options(photo_dir, run, "datasets.train.synth.split_seed=5")
    with pytest.raises(ConfigError, match=r"the settings that split its photos changed since this run began \(split_"):
        train(changed, resume=True, progress=False)
    assert read_checkpoint(run / "last.pt")[2]["step"] == 1


def test_init_from_loads_weights_and_starts_a_new_schedule(photo_dir, tmp_path):
    source = randomize(build_model("darkir-csf-w32", **TINY), seed=5)
    weights = save_checkpoint(tmp_path / "start.pt", source)
    trainer = Trainer(_synth_options(photo_dir, tmp_path / "run"), progress=False)
    trainer.init_from(weights)
    loaded, expected = trainer.model.state_dict(), source.state_dict()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)
    assert trainer.step == 0 and trainer.scheduler.last_epoch == 0
    result = train(_synth_options(photo_dir, tmp_path / "run2"), progress=False, init_from=weights, max_steps=1)
    assert result.steps == 1
    with pytest.raises(CheckpointError):  # a width-32 model does not fit the tiny network
        train(_synth_options(photo_dir, tmp_path / "run3"), progress=False, init_from="darkir-csf-w32-synth")
    with pytest.raises(ConfigError, match="pass one"):
        train(_synth_options(photo_dir, tmp_path / "run4"), resume=True, init_from=weights)


def test_unknown_degradation_parameter_is_named(photo_dir, tmp_path):
    with pytest.raises(ConfigError, match="target_mean_rnage"):
        _synth_options(photo_dir, tmp_path, "datasets.train.synth.degradation={target_mean_rnage: [0.3, 0.4]}")


def test_degradation_values_get_their_types(photo_dir, tmp_path):
    """YAML 1.1 reads ``1e-4`` as a string: it must become a float, and a wrong type must be named."""
    options = _synth_options(photo_dir, tmp_path, "datasets.train.synth.degradation.read_noise_range=[1e-4, 2e-3]")
    assert options.datasets.train.synth.degradation["read_noise_range"] == (1e-4, 2e-3)
    with pytest.raises(ConfigError, match="blur_prob"):
        _synth_options(photo_dir, tmp_path, "datasets.train.synth.degradation.blur_prob=often")


def test_shipped_stage_two_recipes_load():
    for name in ("night_w32.yml", "night_csf_w32.yml"):
        options = load_options(REPO / "options" / "train" / "default_weights" / name)
        assert options.datasets.train.synth is not None and options.datasets.train.synth.sources == ["debian"]


def test_readme_names_exactly_the_corpus_packages():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"apt-get install ([a-z0-9. -]+)\n", readme)
    assert any(set(command.split()) == set(corpus.DEBIAN_PACKAGES) for command in commands)


def _installed(package: str) -> bool:
    done = subprocess.run(["dpkg", "-s", package], capture_output=True, text=True)
    return done.returncode == 0 and "Status: install ok installed" in done.stdout


def test_corpus_is_exactly_what_the_documented_packages_install():
    if shutil.which("dpkg") is None or not all(_installed(p) for p in corpus.DEBIAN_PACKAGES):
        if os.environ.get("CI"):
            pytest.fail(f"CI must install the photo corpus: apt-get install {' '.join(corpus.DEBIAN_PACKAGES)}")
        pytest.skip("the Debian photo corpus is not installed")
    files = set()
    for package in corpus.DEBIAN_PACKAGES:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
        files |= {line for line in listing.splitlines() if line}
    photos = corpus.debian_photos()
    assert len(photos) == 55
    assert all(str(path) in files for path in photos.values())
    smallest = min(min(PILImage.open(path).size) for path in photos.values())
    default = build_parser().parse_args(["synth", "--source", "debian", "-o", "out"]).size
    assert default <= smallest  # darkir synth's documented command runs with its default --size
