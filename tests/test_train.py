"""Training end to end on generated data: validate, save, resume bit-exactly, DDP = single process."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darkir.checkpoint import read_checkpoint
from darkir.cli import main
from darkir.data.synth import synthesize
from darkir.errors import ConfigError, DarkIRError, DarkIRWarning
from darkir.models.factory import load_model
from darkir.options import load_options
from darkir.outputs import release_lock, take_lock
from darkir.train.ddp import Context
from darkir.train.losses import (
    DetailAnchor,
    charbonnier,
    global_tone,
    laplacian_band,
    log_detail,
    tone_matched,
)
from darkir.train.run import train
from darkir.train.runfiles import run_lock_path
from darkir.train.trainer import Trainer
from tests.conftest import REPO, make_photos

#: The synthetic set of these tests: 4 pairs of 96 px per photo, 1 photo each for validation and testing.
SET = {"per_photo": 4, "size": 96, "val_photos": 1, "test_photos": 1, "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synthesize(make_photos(root / "photos"), root / "set", **SET)
    return root / "set"


def _options(dataset: Path, out: Path, *extra: str):
    return load_options(
        REPO / "options" / "train" / "tiny_csf.yml",
        [
            f"datasets.train.train_path={dataset / 'train'}",
            f"datasets.val.test_path={dataset / 'val'}",
            f"save.path={out / 'last.pt'}",
            f"save.best={out / 'best.pt'}",
            "datasets.train.batch_size_train=2",
            "train.epochs=2",
            *extra,
        ],
    )


def test_synth_is_reproducible_and_split_by_photo(dataset, tmp_path):
    again = tmp_path / "again"
    synthesize(make_photos(tmp_path / "photos"), again, **SET)
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png"))
    assert all(np.array_equal(cv2.imread(str(dataset / f)), cv2.imread(str(again / f))) for f in files)
    photos_per_split = {
        s: {p.name for p in (dataset / s / "low_blur_noise").iterdir()} for s in ("train", "val", "test")
    }
    assert len(photos_per_split["train"]) == 2 and not (photos_per_split["train"] & photos_per_split["test"])
    low = cv2.imread(str(next((dataset / "train" / "low_blur_noise").rglob("*.png")))) / 255
    high = cv2.imread(str(next((dataset / "train" / "high_sharp_scaled").rglob("*.png")))) / 255
    assert low.mean() < high.mean() and 0.25 < high.mean() < 0.5


def test_train_validate_save_and_restore(dataset, tmp_path):
    result = train(_options(dataset, tmp_path / "run"), progress=False)
    assert (result.steps, result.epochs) == (8, 2)
    assert result.best is not None and result.best_psnr > 0
    _, config, payload = read_checkpoint(result.last)
    assert config["width"] == 8 and payload["step"] == 8 and "optimizer" in payload and "rng" in payload
    assert (tmp_path / "run" / "last.yml").is_file()
    lines = (tmp_path / "run" / "last_logs" / "train.jsonl").read_text().splitlines()
    assert any('"kind": "val"' in line for line in lines)
    out = tmp_path / "restored"
    assert (
        main(["restore", str(dataset / "test" / "low_blur_noise"), "-o", str(out), "--weights", str(result.best), "-q"])
        == 0
    )
    assert len(list(out.rglob("*.png"))) == 4


def test_a_resumed_run_marks_in_its_log_where_it_continues_from(dataset, tmp_path, monkeypatch):
    """A run killed between checkpoints and resumed logged the steps it trained again twice, with nothing to tell
    which records its checkpoint holds; TensorBoard showed both."""
    import torch.utils.tensorboard

    writers: list[dict] = []
    writer = torch.utils.tensorboard.SummaryWriter
    monkeypatch.setattr(
        torch.utils.tensorboard, "SummaryWriter", lambda *args, **kwargs: writers.append(kwargs) or writer(*args)
    )
    options = _options(dataset, tmp_path / "run")
    train(options, max_steps=3, progress=False)
    log = tmp_path / "run" / "last_logs" / "train.jsonl"
    with log.open("a") as handle:  # as a run killed after logging step 4, before its checkpoint
        handle.write(json.dumps({"kind": "train", "step": 4, "epoch": 1, "loss": 1.0}) + "\n")
    trainer = Trainer(options, progress=False)
    assert trainer.resume()
    trainer.fit()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [(record["kind"], record["step"]) for record in records]
    assert kinds.index(("resume", 3)) == kinds.index(("train", 4)) + 1
    assert writers[-1] == {"purge_step": 4}


@pytest.mark.parametrize("loss", ["plain", "anchored", "tone_split"])
def test_resume_is_bit_exact(dataset, tmp_path, tiny_checkpoint, loss):
    extra = {"plain": [], "anchored": [f"train.anchor={tiny_checkpoint}"], "tone_split": ["train.tone_split=true"]}[
        loss
    ]
    straight = train(_options(dataset, tmp_path / "a", *extra), progress=False)
    half = train(_options(dataset, tmp_path / "b", *extra), progress=False, max_steps=3)  # stops mid-epoch
    assert half.steps == 3
    resumed = train(_options(dataset, tmp_path / "b", *extra), resume=True, progress=False)
    assert resumed.steps == straight.steps
    a, _, state_a = read_checkpoint(straight.last)
    b, _, state_b = read_checkpoint(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    moments_a = [s["exp_avg"] for s in state_a["optimizer"]["state"].values()]
    moments_b = [s["exp_avg"] for s in state_b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(moments_a, moments_b, strict=True))
    assert state_a["best_psnr"] == state_b["best_psnr"]


def test_resume_keeps_the_runs_schedule_settings_and_says_so(dataset, tmp_path, capsys):
    """A new lr_initial or betas on --resume cannot act (the optimizer and scheduler state hold the run's): the run
    goes on with its own, a warning names what was ignored, and the options saved with the run keep its values."""
    half = train(_options(dataset, tmp_path / "b"), progress=False, max_steps=3)
    capsys.readouterr()
    changed = _options(dataset, tmp_path / "b", "train.lr_initial=0.5", "train.betas=[0.8,0.9]")
    resumed = train(changed, resume=True, progress=False)
    err = capsys.readouterr().err
    assert f"--resume continues the schedule of {half.last}; ignored train.lr_initial 0.5 (the run keeps 0.001)" in err
    assert "train.betas (0.8, 0.9) (the run keeps (0.9, 0.99))" in err
    _, _, payload = read_checkpoint(resumed.last)
    assert payload["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    for saved in (payload["options"]["train"], load_options(tmp_path / "b" / "last.yml").train.model_dump()):
        assert (saved["lr_initial"], tuple(saved["betas"])) == (0.001, (0.9, 0.99))


def test_resume_notes_a_changed_loss(dataset, tmp_path, tiny_checkpoint, capsys):
    """A resumed run trains with the options' loss: a setting that differs from the run's (an anchor dropped, a
    weight changed) is named with the step it applies from; an unchanged resume says nothing of the loss."""
    run = tmp_path / "b"
    train(
        _options(dataset, run, f"train.anchor={tiny_checkpoint}", "train.anchor_weight=3"), progress=False, max_steps=2
    )
    train(
        _options(dataset, run, f"train.anchor={tiny_checkpoint}", "train.anchor_weight=3"),
        resume=True,
        progress=False,
        max_steps=3,
    )
    assert "loss settings" not in capsys.readouterr().err
    train(_options(dataset, run, "train.pixel_weight=0.5"), resume=True, progress=False, max_steps=4)
    err = capsys.readouterr().err
    assert f"--resume continues {run / 'last.pt'} with other loss settings from step 3 on: " in err
    assert (
        f"train.pixel_weight 1.0 -> 0.5; train.anchor {tiny_checkpoint} -> None; train.anchor_weight 3.0 -> 1.0" in err
    )


def test_resume_notes_no_change_of_a_loss_term_darkir_does_not_train_with(tmp_path):
    """``train.frequency`` has no effect in darkir (the options warn so), yet a resume that turned it on noted
    "other loss settings"."""
    from darkir.options import TrainOptions
    from darkir.train.resume import loss_changes

    stored = {"train": TrainOptions().model_dump()}
    unused = TrainOptions(frequency=True, frequency_weight=2.0, frequency_criterion="l1")
    assert loss_changes(tmp_path / "last.pt", unused, stored, 3) is None
    note = loss_changes(tmp_path / "last.pt", TrainOptions(edge=True), stored, 3)
    assert note is not None and note.endswith("from step 3 on: train.edge False -> True")


def test_resume_notes_changed_data_and_step_settings(dataset, tmp_path, capsys):
    """A resumed run trains on the options' data, crops, flips, seed and clipping: one that differs from the run's
    is named with both values and the step it applies from; the loader's workers and an unchanged resume say
    nothing."""
    run = tmp_path / "b"
    train(_options(dataset, run), progress=False, max_steps=2)
    train(_options(dataset, run, "datasets.train.n_workers=1"), resume=True, progress=False, max_steps=3)
    assert "note" not in capsys.readouterr().err
    changed = ("datasets.train.cropsize=16", "datasets.train.flips=false", "train.seed=7", "train.grad_clip=0.1")
    train(_options(dataset, run, *changed), resume=True, progress=False, max_steps=4)
    err = capsys.readouterr().err
    assert f"--resume continues {run / 'last.pt'} with other training data or settings from step 3 on: " in err
    assert (
        "datasets.train.cropsize 64 -> 16; datasets.train.flips True -> False; train.seed 0 -> 7; "
        "train.grad_clip 5.0 -> 0.1 (so it may not end as it would have uninterrupted)" in err
    )


def test_resume_notes_other_anchor_weights_under_the_same_name(dataset, tmp_path, capsys, tiny_checkpoint):
    """train.anchor's file replaced by other weights between runs changed the loss without a word (only its name
    was compared)."""
    import shutil

    from darkir.checkpoint import save_checkpoint
    from darkir.models.factory import build_model
    from tests.conftest import TINY, randomize

    anchor = shutil.copy(tiny_checkpoint, tmp_path / "anchor.pt")
    run, extra = tmp_path / "a", (f"train.anchor={anchor}",)
    train(_options(dataset, run, *extra), progress=False, max_steps=1, init_from=tiny_checkpoint)
    train(_options(dataset, run, *extra), resume=True, progress=False, max_steps=2)
    assert "note" not in capsys.readouterr().err
    anchor.unlink()
    save_checkpoint(anchor, randomize(build_model("darkir-csf-w32", **TINY), seed=12))
    train(_options(dataset, run, *extra), resume=True, progress=False, max_steps=3)
    assert (
        f"--resume continues {run / 'last.pt'} with other train.anchor weights from step 2 on: the anchor holds "
        "other weights than when the run was saved" in capsys.readouterr().err
    )


def test_resume_notes_another_validation_set_on_which_the_best_was_not_chosen(dataset, tmp_path, capsys):
    """A run resumed on another validation set compares its scores with a best chosen on the first one: said."""
    run = tmp_path / "v"
    first = train(_options(dataset, run), progress=False, max_steps=4)
    capsys.readouterr()
    other = (f"datasets.val.test_path={dataset / 'test'}", "train.val_max_images=1")
    train(_options(dataset, run, *other), resume=True, progress=False, max_steps=6)
    err = capsys.readouterr().err
    assert (
        f"note: --resume validates the run in {run / 'last.pt'} on another set: datasets.val.test_path "
        f"{dataset / 'val'} -> {dataset / 'test'}; train.val_max_images 0 -> 1; its best checkpoint was chosen "
        f"on the earlier one, at {first.best_psnr:.2f} dB, and a new best must score higher on this one" in err
    )


def test_resume_notes_pairs_that_changed_under_the_same_folders(dataset, tmp_path, capsys):
    """A training pair swapped for another (a validation one), the same count, and a validation pair removed:
    the resumed run said nothing, though it trained and validated on other images than the run had."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    run = tmp_path / "f"
    first = train(_options(data, run), progress=False, max_steps=4)
    train(_options(data, run), resume=True, progress=False, max_steps=5)
    assert "note" not in capsys.readouterr().err

    def pairs(split: str) -> list[Path]:  # the set's pairs by relative path (LOLBlur's layout: a folder a scene)
        low = data / split / "low_blur_noise"
        return sorted(path.relative_to(low) for path in low.rglob("*.png"))

    trained, validated = pairs("train"), pairs("val")
    for side in ("low_blur_noise", "high_sharp_scaled"):
        (data / "train" / side / trained[0]).unlink()
        shutil.copy(data / "val" / side / validated[0], data / "train" / side / trained[0].parent / "copied.png")
        (data / "val" / side / validated[-1]).unlink()
    count, val_count = len(trained), len(validated)
    train(_options(data, run, "train.grad_clip=1.0"), resume=True, progress=False, max_steps=6)
    err = capsys.readouterr().err
    assert "train.grad_clip 5.0 -> 1.0" in err  # a setting changed too: both are said
    assert (
        f"note: --resume continues {run / 'last.pt'} on training pairs that changed since it was saved ({count} "
        f"pairs when it was saved, {count} now) from step 5 on" in err
    )
    assert (
        f"note: --resume validates the run in {run / 'last.pt'} on validation pairs that changed since it was saved "
        f"({val_count} pairs when it was saved, {val_count - 1} now); its best checkpoint was chosen on the earlier "
        f"ones, at {first.best_psnr:.2f} dB, and a new best must score higher on these" in err
    )


def test_validating_on_training_pairs_is_warned_of(dataset, tmp_path):
    """Validation on the training folder (or a manifest or link of it) chose the best checkpoint on trained images."""
    overrides = (f"datasets.val.test_path={dataset / 'train'}",)
    with pytest.warns(DarkIRWarning, match=r"validation pairs are training pairs too .*validate on a set of its own"):
        train(_options(dataset, tmp_path / "s", *overrides), progress=False, max_steps=1)


def test_trainable_trains_only_the_parts_named(dataset, tmp_path, tiny_checkpoint):
    """train.trainable: the parameters under the prefixes change, every other one stays as loaded, bit for bit."""
    start, _, _ = read_checkpoint(tiny_checkpoint)
    result = train(
        _options(dataset, tmp_path / "r", "train.trainable=[middle_blks_enc, decoders.0]"),
        init_from=tiny_checkpoint,
        progress=False,
        max_steps=2,
    )
    end, _, payload = read_checkpoint(result.last)
    changed = {key for key in start if not torch.equal(start[key], end[key])}
    assert changed and all(key.startswith(("middle_blks_enc.", "decoders.0.")) for key in changed)
    assert any(key.startswith("middle_blks_enc.") for key in changed) and any(
        key.startswith("decoders.0.") for key in changed
    )
    trained = sum(
        1 for key in start if key.startswith(("middle_blks_enc.", "decoders.0.")) and start[key].is_floating_point()
    )
    assert len(payload["optimizer"]["state"]) <= trained


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[encoder]", "train.trainable: 'encoder' names no parameter of this network; its parts are "),
        ("[]", "train.trainable is empty, so nothing would train"),
    ],
)
def test_trainable_that_names_nothing_is_refused(dataset, tmp_path, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(_options(dataset, tmp_path / "r", f"train.trainable={value}"), progress=False, max_steps=1)


def test_resume_with_other_trainable_parts_is_refused(dataset, tmp_path):
    train(_options(dataset, tmp_path / "r", "train.trainable=[ending]"), progress=False, max_steps=1)
    with pytest.raises(
        ConfigError, match=re.escape("train.trainable: ['ending'] in the checkpoint, None in the options")
    ):
        train(_options(dataset, tmp_path / "r"), resume=True, progress=False)


def test_log_detail_ignores_smooth_tone_changes_but_not_blur():
    """The anchor's measure of detail: a global gain or gamma moves it far less than losing detail (a blur) does."""
    image = 0.2 + 0.6 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    detail = log_detail(image)
    blurred = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    blur_change = charbonnier(log_detail(blurred), detail).item()
    assert blur_change > 0.2
    assert charbonnier(log_detail(image * 1.3), detail).item() < blur_change / 50
    assert charbonnier(log_detail(image**0.8), detail).item() < blur_change / 4


def test_the_edge_band_is_the_official_laplacian_of_an_impulse_and_nil_on_flat_image():
    """The official edge loss's band: an impulse on the even grid keeps 1 - 4 * (0.05^2 + 0.4^2 + 0.05^2)^2 of itself
    (blur, decimate, re-expand x4, blur again); a flat image has none away from its borders."""
    impulse = torch.zeros(1, 3, 16, 16)
    impulse[..., 8, 8] = 1.0
    assert laplacian_band(impulse)[0, :, 8, 8].tolist() == pytest.approx([1 - 4 * 0.165**2] * 3, abs=1e-6)
    flat = torch.full((2, 3, 16, 20), 0.3)
    assert laplacian_band(flat)[..., 3:-3, 3:-3].abs().max().item() < 1e-6


def test_the_official_edge_loss_trains_and_the_frequency_loss_is_as_official_runs_had_it(dataset, tmp_path):
    """Official option files turn on train.edge: it was refused as not implemented. The loss of a batch is the pixel
    loss plus the weighted edge term, with its criterion and reduction; train.frequency adds nothing (the official
    code never added it) and says so."""
    extra = ("train.edge=true", "train.edge_weight=50", "train.frequency=true", "train.frequency_weight=0.01")
    with pytest.warns(DarkIRWarning, match=r"no effect in darkir: train\.frequency \(the official code never added"):
        trainer = Trainer(_options(dataset, tmp_path / "on", *extra), progress=False)
    batch = {key: torch.stack([trainer.train_set[i][key] for i in (0, 1)]) for key in ("low", "high")}
    with torch.no_grad():
        out = trainer.model(batch["low"])
        expected = charbonnier(out, batch["high"])
        expected += 50 * torch.nn.functional.mse_loss(laplacian_band(out), laplacian_band(batch["high"]))
        assert trainer.train_step._loss(batch["low"], batch["high"]).item() == pytest.approx(expected.item(), rel=1e-5)
        band = laplacian_band(out)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the band is a small difference: never taken in half
            assert torch.equal(laplacian_band(out), band)
    result = train(_options(dataset, tmp_path / "run", *extra), progress=False, max_steps=2)
    assert result.steps == 2 and np.isfinite(result.best_psnr or 0.0)
    with pytest.raises(ConfigError, match=r"train\.edge_reduction: 'none' gives no loss to train on"):
        train(_options(dataset, tmp_path / "none", "train.edge=true", "train.edge_reduction=none"), progress=False)


def test_a_loss_of_weight_zero_in_every_term_is_refused_before_any_work(dataset, tmp_path):
    """``pixel_weight: 0`` and no other loss trained on a zero loss: no gradient, and weight decay shrank the
    weights epoch after epoch."""
    with pytest.raises(ConfigError, match=r"every loss term that is on has weight 0 \(train\.pixel_weight: 0\)"):
        train(_options(dataset, tmp_path / "zero", "train.pixel_weight=0"), progress=False)
    both = ("train.pixel_weight=0", "train.edge=true", "train.edge_weight=0")
    with pytest.raises(ConfigError, match=r"\(train\.pixel_weight: 0, train\.edge_weight: 0\)"):
        train(_options(dataset, tmp_path / "both", *both), progress=False)
    assert not (tmp_path / "zero").exists() and not (tmp_path / "both").exists()
    edge_only = _options(dataset, tmp_path / "edge", "train.pixel_weight=0", "train.edge=true")
    assert train(edge_only, progress=False, max_steps=1).steps == 1


def test_the_loss_terms_table_names_every_loss_key_of_the_options_once():
    """``LOSS_TERMS`` is the one list of loss terms (the zero-weight check, the resume notes and the criterion keys
    read it): each key it names is a ``train:`` key, and every ``train:`` weight, criterion and reduction key is in
    exactly one term, so that a new term cannot be added to the options and missed there."""
    from darkir.options import LOSS_TERMS, TrainOptions

    named = [key for term in LOSS_TERMS for key in (term.switch, term.weight, term.criterion, term.reduction) if key]
    assert len(named) == len(set(named)) and set(named) <= set(TrainOptions.model_fields)
    loss_keys = {key for key in TrainOptions.model_fields if key.endswith(("_weight", "_criterion", "_reduction"))}
    assert loss_keys == {key for key in named if key.endswith(("_weight", "_criterion", "_reduction"))}
    train = TrainOptions()
    assert [term.name for term in LOSS_TERMS if term.is_on(train)] == ["pixel"]
    on = TrainOptions(edge=True, anchor="darkir-w32", tone_split=True)
    assert [term.name for term in LOSS_TERMS if term.is_on(on)] == ["pixel", "edge", "anchor", "tone"]


def test_the_official_perceptual_loss_trains_from_vgg19_weights_in_torchs_cache(dataset, tmp_path, monkeypatch):
    """train.perceptual (on in official option files) was refused outright; it now reads VGG19's ImageNet weights
    where torchvision caches them, and without them names the file before any work."""
    from darkir.train.perceptual import VGG19_FILE, VGG19Features

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=rf"train\.perceptual: needs VGG19's ImageNet weights at .*{VGG19_FILE}"):
        train(_options(dataset, tmp_path / "missing", "train.perceptual=true"), progress=False)
    assert not (tmp_path / "missing").exists()
    vgg = VGG19Features()
    convolutions = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)  # torchvision's vgg19().features up to relu5_1
    assert list(vgg.state_dict()) == [f"features.{i}.{kind}" for i in convolutions for kind in ("weight", "bias")]
    with torch.no_grad():
        for index, parameter in enumerate(vgg.parameters()):
            parameter.copy_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(index)) * 0.05)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    unused = {"features.30.weight": torch.zeros(512, 512, 3, 3), "classifier.0.bias": torch.zeros(4)}  # (as it has)
    torch.save({**vgg.state_dict(), **unused}, tmp_path / "hub" / "checkpoints" / VGG19_FILE)
    extra = ("train.perceptual=true", "train.perceptual_weight=0.01", "train.perceptual_criterion=l1")
    trainer = Trainer(_options(dataset, tmp_path / "on", *extra), progress=False)
    batch = {key: torch.stack([trainer.train_set[i][key] for i in (0, 1)]) for key in ("low", "high")}
    with torch.no_grad():
        out = trainer.model(batch["low"])
        weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
        features = zip(weights, vgg(out), vgg(batch["high"]), strict=True)
        perceptual = sum(weight * torch.nn.functional.l1_loss(a, b) for weight, a, b in features)
        expected = charbonnier(out, batch["high"]) + 0.01 * perceptual
        assert trainer.train_step._loss(batch["low"], batch["high"]).item() == pytest.approx(expected.item(), rel=1e-5)
    assert train(_options(dataset, tmp_path / "run", *extra), progress=False, max_steps=1).steps == 1
    with pytest.raises(ConfigError, match=r"train\.perceptual_criterion: 'fro' is not supported"):
        train(_options(dataset, tmp_path / "fro", *extra, "train.perceptual_criterion=fro"), progress=False)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ([1, 2, 3], r"not VGG19's weights \(it holds a list, not a state_dict\)"),
        (b"\x00garbage" * 50, r"not a PyTorch weights file"),
        ("nan", r"not VGG19's weights \(some of its weights are not finite\)"),
        ({"features.0.weight": torch.zeros(64, 3, 3, 3)}, r"not VGG19's weights \(features\.0\.bias is missing\)"),
    ],
)
def test_a_vgg19_file_that_holds_no_vgg19_weights_is_named(tmp_path, content, problem):
    """A list gave "TypeError: list indices must be integers", random bytes torch's advice to load unsafely, and NaN
    weights "the loss became nan ...; lower train.lr_initial"."""
    from darkir.train.perceptual import VGG19Features, load_vgg19

    path = tmp_path / "vgg19.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        state = VGG19Features().state_dict()
        torch.save({key: value * math.nan for key, value in state.items()} if content == "nan" else content, path)
    with pytest.raises(ConfigError, match=rf"^train\.perceptual: {re.escape(str(path))}: {problem}"):
        load_vgg19(path)


def test_anchor_keeps_a_fine_tunes_detail_near_the_anchors(dataset, tmp_path, tiny_checkpoint):
    """train.anchor: fine-tuned from the anchor's weights, the output's detail stays nearer the anchor's output than
    without the anchor term; the term is nil where the model is the anchor."""
    low = torch.stack(
        [Trainer(_options(dataset, tmp_path / "probe"), progress=False).train_set[i]["low"] for i in (0, 1)]
    )
    anchor = DetailAnchor(tiny_checkpoint, torch.device("cpu"), torch.contiguous_format)
    with torch.no_grad():
        assert anchor(low, anchor.model(low)).item() == pytest.approx(1e-6)  # Charbonnier's floor, sqrt(eps)
    drift = {}
    for weight in ("0", "100"):
        extra = (f"train.anchor={tiny_checkpoint}", f"train.anchor_weight={weight}")
        result = train(_options(dataset, tmp_path / weight, *extra), progress=False, init_from=tiny_checkpoint)
        with torch.no_grad():
            drift[weight] = anchor(low, load_model(result.last)(low)).item()
    assert 0 < drift["100"] < drift["0"] / 2


def test_tone_split_scores_detail_apart_from_global_tone():
    """train.tone_split: the detail term is blind to a global gain and gamma but not to a blur, and passes gradients
    to the output; the tone term sees the gain and gamma far more than the blur."""
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    scene = torch.linspace(0, 1, 64).view(1, 1, 1, 64) * torch.linspace(0.2, 1, 64).view(1, 1, 64, 1)
    reference = 0.05 + 0.6 * scene + 0.2 * noise
    toned = (0.6 * (reference + 0.01) ** 1.3 - 0.01).requires_grad_(True)
    blurred = torch.nn.functional.avg_pool2d(reference, 3, stride=1, padding=1, count_include_pad=False)
    detail = charbonnier(tone_matched(toned, reference), reference)
    assert detail.item() < 1e-4 < 0.03 < charbonnier(tone_matched(blurred, reference), reference).item()
    detail.backward()
    assert toned.grad is not None and toned.grad.abs().sum() > 0
    assert global_tone(reference, reference).item() == 0
    assert global_tone(toned, reference).item() > 100 * global_tone(blurred, reference).item() > 0
    small = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    flat = torch.full((1, 3, 32, 32), 0.5, requires_grad=True)
    for image in (small, flat):  # one 8x8 block, or no spread at all: a finite term and gradient
        term = global_tone(image, image.detach() * 0.5)
        term.backward()
        assert torch.isfinite(term) and torch.isfinite(image.grad).all()
    gray = torch.full((1, 1, 16, 16), 0.4)
    assert global_tone(gray * 0.5, gray).item() == pytest.approx(np.log(0.41 / 0.21), abs=1e-5)


def test_tone_split_tone_term_trains_the_global_tone(dataset, tmp_path, tiny_checkpoint):
    """With only the tone term (pixel_weight 0), a fine-tune brings the outputs' global tone nearer the references'."""
    probe = Trainer(_options(dataset, tmp_path / "probe"), progress=False).train_set
    low = torch.stack([probe[i]["low"] for i in range(4)])
    high = torch.stack([probe[i]["high"] for i in range(4)])
    extra = ("train.tone_split=true", "train.pixel_weight=0", "train.tone_weight=1")
    result = train(_options(dataset, tmp_path / "t", *extra), progress=False, init_from=tiny_checkpoint)
    with torch.no_grad():
        before = global_tone(load_model(tiny_checkpoint)(low), high).item()
        after = global_tone(load_model(result.last)(low), high).item()
    assert after < before * 0.8


def test_channels_last_training_matches_contiguous_and_saves_plain_weights(dataset, tmp_path):
    """train.memory_format: 'auto' trains channels_last on the CPU; losses and weights agree with contiguous."""
    fast = Trainer(_options(dataset, tmp_path / "fast"), progress=False)
    conv_weights = [m.weight for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    assert any(not w.is_contiguous() for w in conv_weights)  # full 3x3 convolutions: the two layouts differ
    fast_result = fast.fit()
    plain = train(_options(dataset, tmp_path / "plain", "train.memory_format=contiguous"), progress=False)

    def losses(run: str) -> list[float]:
        lines = (tmp_path / run / "last_logs" / "train.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"]

    assert losses("fast") == pytest.approx(losses("plain"), rel=1e-4) and losses("plain")
    a, _, _ = read_checkpoint(fast_result.last)
    b, _, _ = read_checkpoint(plain.last)
    assert all(a[k].is_contiguous() for k in a)
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert not all(torch.equal(a[k], b[k]) for k in a)  # two layouts really ran (sums in another order)


def test_train_cli_and_seed_script_with_overrides(dataset, tmp_path, capsys):
    args = [
        f"{k}={v}"
        for k, v in (
            ("datasets.train.train_path", dataset / "train"),
            ("datasets.val.test_path", dataset / "val"),
            ("save.path", tmp_path / "c" / "last.pt"),
            ("save.best", tmp_path / "c" / "best.pt"),
            ("train.epochs", 1),
        )
    ]
    assert main(["train", "-p", str(REPO / "options" / "train" / "tiny_csf.yml"), *args, "-q"]) == 0
    assert "stopped at step 2 (1 epoch done)" in capsys.readouterr().out
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "-p",
            str(REPO / "options" / "train" / "tiny_csf.yml"),
            *args,
            "--resume",
            "-q",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert "stopped at step 2" in done.stdout  # already complete: resuming changes nothing


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["datasets.train.train_path=/no/such/place"], "datasets.train.train_path: path not found"),
        (["datasets.train.cropsize=128"], "is smaller than the crop size 128"),
        (["datasets.train.batch_size_train=64"], "fewer than one global batch"),
        (["datasets.train.n_workers=100000"], r"n_workers: Input should be less than or equal to 256"),
        (["train.epochz=3"], "unknown key 'train.epochz'"),
        (["train.anchor=/no/such/weights.pt"], "train.anchor: weights not found"),
        (["train.anchor=''"], "train.anchor: the weights name is empty"),
        (["train.anchor_weight=2"], "train.anchor_weight: is set but train.anchor is not"),
        (["train.tone_weight=2"], "train.tone_weight: is set but train.tone_split is not"),
        (["save.path=/nonexistent/run/LAST.SAFETENSORS"], "save.path: training checkpoints hold the optimizer"),
    ],
)
def test_bad_configs_fail_before_training(dataset, tmp_path, overrides, message):
    with pytest.raises(DarkIRError, match=message):
        train(_options(dataset, tmp_path / "x", *overrides), progress=False)
    assert not (tmp_path / "x" / "last.pt").exists()


def test_a_crop_size_the_data_cannot_give_names_the_options_file(dataset, tmp_path):
    """The crop-size problems were the one options error without its file (``datasets.train.cropsize: 46
    problem(s)``, where the others say ``tiny_csf.yml: datasets...``)."""
    with pytest.raises(DarkIRError, match=r"^\S*tiny_csf\.yml: datasets\.train\.cropsize: \d+ problem\(s\)"):
        train(_options(dataset, tmp_path / "x", "datasets.train.cropsize=128"), progress=False)


def test_a_run_without_validation_makes_no_folder_for_its_best_checkpoint(dataset, tmp_path):
    """Without a validation set no best checkpoint is written, yet its folder was made (and left empty): the tiny
    recipe's ./models/bests appeared in whatever folder a run started from."""
    best = tmp_path / "bests" / "best.pt"
    options = _options(dataset, tmp_path / "run", "datasets.val.test_path=null", f"save.best={best}")
    assert train(options, progress=False, max_steps=1).steps == 1
    assert (tmp_path / "run" / "last.pt").is_file() and not best.parent.exists()


@pytest.mark.parametrize("key", ["datasets.train.train_path", "datasets.val.test_path"])
def test_a_set_that_yields_no_pairs_names_its_setting(dataset, tmp_path, key):
    """An empty set's "data/v/low: no images found" named a folder, not the setting it came from, as other errors of
    the sets do."""
    (tmp_path / "e" / "low").mkdir(parents=True)
    (tmp_path / "e" / "high").mkdir()
    with pytest.raises(DarkIRError, match=rf"^{re.escape(key)}: .*low: no images found"):
        train(_options(dataset, tmp_path / "x", f"{key}={tmp_path / 'e'}"), progress=False)


def test_empty_dataset_is_named(tmp_path):
    (tmp_path / "e" / "low").mkdir(parents=True)
    (tmp_path / "e" / "high").mkdir()
    with pytest.raises(DarkIRError, match="no images found"):
        train(_options(tmp_path / "e", tmp_path / "x", f"datasets.train.train_path={tmp_path / 'e'}"), progress=False)


def test_resume_without_checkpoint_is_an_error(dataset, tmp_path):
    with pytest.raises(DarkIRError, match="nothing to resume"):
        train(_options(dataset, tmp_path / "none"), resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("trainable", [None, "[middle_blks_enc, decoders.0]"])
def test_two_gloo_processes_match_one_process(dataset, tmp_path, trainable):
    """torchrun with 2 CPU processes of batch 1 ends where one process of batch 2 does (also with train.trainable,
    whose frozen parameters DDP leaves out)."""
    common = [f"datasets.train.train_path={dataset / 'train'}", "train.epochs=1", "datasets.val.test_path=null"]
    common += [f"train.trainable={trainable}"] if trainable else []
    single = tmp_path / "single" / "last.pt"
    assert (
        main(
            [
                "train",
                "-p",
                str(REPO / "options/train/tiny_csf.yml"),
                *common,
                f"save.path={single}",
                "datasets.train.batch_size_train=2",
                "-q",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    double = tmp_path / "ddp" / "last.pt"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "darkir.cli",
            "train",
            "-p",
            str(REPO / "options/train/tiny_csf.yml"),
            *common,
            f"save.path={double}",
            "datasets.train.batch_size_train=1",
            "-q",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Grad strides do not match" not in done.stderr  # torch's layout warning of size-1 dimensions: spurious
    a, b = load_model(single).state_dict(), load_model(double).state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert any((a[k] != 0).any() for k in a if k.endswith("gamma"))  # it did train
    if trainable:
        frozen = [k for k in a if not k.startswith(("middle_blks_enc.", "decoders.0."))]
        assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)
        assert all((a[k] == 0).all() for k in frozen if k.endswith("gamma"))  # left at their initial zeros


@pytest.mark.slow
def test_a_data_error_in_another_process_still_saves_the_last_checkpoint(dataset, tmp_path):
    """An image only rank 1 reads, truncated: rank 1 stopped alone, rank 0 failed in the gradient all-reduce with
    gloo's "Connection closed by peer", and no checkpoint was saved (every step since the last save lost)."""
    import shutil

    from darkir.train.sampler import GlobalBatchSampler

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    pairs = Trainer(_options(copy, tmp_path / "probe", "datasets.val.test_path=null")).train_set.pairs
    sampler = GlobalBatchSampler(len(pairs), batch_size=1, seed=0, rank=1, world_size=2)
    sampler.set_epoch(0)
    second = pairs[list(sampler)[1][0]].low  # read by rank 1 for step 2
    second.write_bytes(second.read_bytes()[:200])
    out = tmp_path / "ddp"
    args = _train_args(copy, out, "datasets.train.batch_size_train=1", "train.epochs=1", "--device", "cpu")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert done.returncode != 0
    assert f"loading the training batch of step 2: {second}: cannot decode image" in done.stderr
    assert f"the last checkpoint {out / 'last.pt'} holds step 1" in done.stderr, done.stderr[-3000:]
    assert "Connection closed by peer" not in done.stderr
    assert read_checkpoint(out / "last.pt")[2]["step"] == 1


def _train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    """``darkir.cli train`` on the tiny config and ``dataset``'s train split, no validation, checkpoints in ``out``;
    ``extra``: overrides first, then flags."""
    return [
        "darkir.cli",
        "train",
        "-p",
        str(REPO / "options/train/tiny_csf.yml"),
        f"datasets.train.train_path={dataset / 'train'}",
        "datasets.val.test_path=null",
        f"save.path={out / 'last.pt'}",
        *extra,
        "-q",
    ]


def _losses(log: Path) -> dict[int, float]:
    """Step -> logged training loss; a step trained again after a resume counts with its last value."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def _wait_for_release(lock: Path, timeout: float = 60) -> None:
    """Wait until no process holds the run lock ``lock`` (killed processes release it as they finish exiting)."""
    deadline = time.time() + timeout
    while (fd := take_lock(lock)) is None and time.time() < deadline:
        time.sleep(0.1)
    if fd is not None:
        release_lock(lock, fd)


@pytest.mark.slow
def test_killed_two_process_run_resumes_on_one_process_with_the_same_loss_curve(dataset, tmp_path):
    """torchrun with 2 processes is killed outright (SIGKILL to every process) after a periodic save; the run
    resumes on 1 process, which keeps the run's global batch, and its loss curve and weights match a run that
    was never interrupted (made by two torchrun agents meeting at a c10d rendezvous, as on two nodes)."""
    import signal
    import time

    def command(out: Path, processes: int, *extra: str, launch: tuple[str, ...] = ("--standalone",)) -> list[str]:
        settings = ["datasets.train.batch_size_train=1", "train.epochs=20", "train.save_every_steps=20"]
        return [
            *(sys.executable, "-m", "torch.distributed.run", *launch, "--nproc_per_node", str(processes), "-m"),
            *_train_args(dataset, out, *settings, "--device", "cpu", *extra),
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the uninterrupted run as on a cluster: two "nodes" (two torchrun agents) meet at a c10d rendezvous
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rendezvous = ("--nnodes", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "t")
    nodes = [
        subprocess.Popen(
            command(tmp_path / "straight", 1, launch=rendezvous),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-3000:]
    cut = tmp_path / "cut"
    process = subprocess.Popen(
        command(cut, 2), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    log = cut / "last_logs" / "train.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if log.is_file() and max(_losses(log), default=0) >= 50:
            break
        time.sleep(0.05)
    workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    os.killpg(process.pid, signal.SIGKILL)
    for worker in workers:  # torchrun (torch 2.13) starts each worker in a session of its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(worker), signal.SIGKILL)
    process.wait(timeout=60)
    _wait_for_release(run_lock_path(cut / "last.pt"))  # a killed worker may still be exiting (a loaded machine)
    saved = read_checkpoint(cut / "last.pt")[2]
    assert saved["global_batch"] == 2 and 20 <= saved["step"] < 80, saved["step"]

    resumed = subprocess.run(command(cut, 1, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 samples per step on 1 process(es): 2 per process" in resumed.stderr + resumed.stdout

    straight, again = _losses(tmp_path / "straight" / "last_logs" / "train.jsonl"), _losses(log)
    assert sorted(again) == sorted(straight) == list(range(10, 81, 10))
    assert all(abs(again[step] - straight[step]) <= 1e-4 * abs(straight[step]) for step in straight), (
        straight,
        again,
    )
    a, _, _ = read_checkpoint(tmp_path / "straight" / "last.pt")
    b, _, state = read_checkpoint(cut / "last.pt")
    assert state["step"] == 80
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_resume_on_more_processes_keeps_the_global_batch_and_the_schedule(dataset, tmp_path):
    options = _options(dataset, tmp_path, "train.epochs=3")
    train(options, device="cpu", max_steps=2, progress=False)
    alone = Trainer(options, device="cpu", progress=False)
    trainer = Trainer(options, device="cpu", progress=False)
    trainer.context = Context(0, 2, torch.device("cpu"))  # as if torchrun had started 2 processes of batch 2
    trainer._batches(2)  # batch 2 on 2 processes would plan half the steps; the resume must restore the run's plan
    assert trainer.resume() and trainer.step == 2
    assert (trainer.sampler.batch_size, trainer.sampler.global_batch) == (1, 2)
    assert trainer.total_steps == alone.total_steps == 3 * alone.sampler.steps_per_epoch() > 2


def test_resume_of_an_older_checkpoint_keeps_the_batch_its_saved_options_name(dataset, tmp_path, capsys):
    """A checkpoint of a darkir before fbfc6ec records no samples per step: its resume took the options' batch now
    (1 here) and silently changed the run's (2), blaming "the training set" for the new schedule."""
    train(_options(dataset, tmp_path, "train.epochs=2"), device="cpu", max_steps=1, progress=False)
    payload = torch.load(tmp_path / "last.pt", weights_only=False)
    del payload["global_batch"]
    torch.save(payload, tmp_path / "last.pt")
    trainer = Trainer(
        _options(dataset, tmp_path, "train.epochs=2", "datasets.train.batch_size_train=1"), progress=False
    )
    assert trainer.sampler.global_batch == 1 and trainer.resume()
    assert (trainer.sampler.batch_size, trainer.sampler.global_batch) == (2, 2)
    assert "resuming a run of 2 samples per step on 1 process(es)" in capsys.readouterr().out


def test_resume_refuses_a_process_count_that_cannot_share_the_global_batch(dataset, tmp_path):
    options = _options(dataset, tmp_path, "train.epochs=1")
    train(options, device="cpu", max_steps=1, progress=False)
    state = read_checkpoint(tmp_path / "last.pt")[2]
    assert state["global_batch"] == 2
    trainer = Trainer(options, device="cpu", progress=False)
    trainer.context = Context(0, 4, torch.device("cpu"))  # as if torchrun had started 4 processes of batch 2
    trainer._batches(2)
    with pytest.raises(DarkIRError, match="2 samples per step, which 4 processes cannot share evenly; resume on 1, 2"):
        trainer.resume()


def _signal_once_logging(
    command: list[str], out: Path, signum: int, env: dict[str, str]
) -> tuple[subprocess.Popen, str, str]:
    """Start a training ``command`` that saves into ``out``, send ``signum`` once its log has a line, and wait for
    it: the process (its return code set), its stdout and its stderr."""
    import time

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "last_logs" / "train.jsonl"
    deadline = time.time() + 120
    while not (log.is_file() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return process, stdout, stderr


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_matches_an_uninterrupted_run(dataset, tmp_path):
    """SIGINT stops after the current step with a checkpoint; resuming it ends where a straight run ends."""
    import signal

    def command(out: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            *_train_args(dataset, out, "train.epochs=40", "datasets.train.batch_size_train=2", *extra),
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command(tmp_path / "straight"), check=True, env=env, capture_output=True)
    process, out, err = _signal_once_logging(command(tmp_path / "cut"), tmp_path / "cut", signal.SIGINT, env)
    assert process.returncode == 130, err
    stopped = int(out.split("interrupted at step ")[1].split()[0])
    assert 10 <= stopped < 160
    assert f"interrupted at step {stopped} ({read_checkpoint(tmp_path / 'cut' / 'last.pt')[2]['epoch']} epoch" in out
    assert read_checkpoint(tmp_path / "cut" / "last.pt")[2]["step"] == stopped
    subprocess.run(command(tmp_path / "cut", "--resume"), check=True, env=env, capture_output=True)
    a, _, _ = read_checkpoint(tmp_path / "straight" / "last.pt")
    b, _, state = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert state["step"] == 160
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_at_a_terminal_is_told_once_with_data_loader_workers(dataset, tmp_path):
    """A terminal's Ctrl-C signals every process of its group: each forked loader worker, which inherited the run's
    handler, printed "stopping after this step and saving" too (three lines with two workers)."""
    import signal
    import time

    out = tmp_path / "run"
    settings = ("train.epochs=40", "datasets.train.batch_size_train=2", "datasets.train.n_workers=2")
    args = _train_args(dataset, out, *settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    log, deadline = out / "last_logs" / "train.jsonl", time.time() + 120
    while not (log.is_file() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole group
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.count("stopping after this step and saving") == 1, err


@pytest.mark.slow
def test_sigterm_to_the_whole_group_with_data_loader_workers_stops_and_saves(dataset, tmp_path):
    """A batch system's time limit (Slurm), torchrun and ``kill -- -PGID`` signal every process of the group: the
    loader workers died at once, and the run failed in torch's check of its workers ("DataLoader worker ... is
    killed by signal: Terminated"), exit 1, its steps since the last checkpoint lost."""
    import signal
    import time

    out = tmp_path / "run"
    settings = ("train.epochs=40", "datasets.train.batch_size_train=2", "datasets.train.n_workers=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", *_train_args(dataset, out, *settings)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    log, deadline = out / "last_logs" / "train.jsonl", time.time() + 120
    while not (log.is_file() and log.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    stdout, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    stopped = int(stdout.split("interrupted at step ")[1].split()[0])
    assert read_checkpoint(out / "last.pt")[2]["step"] == stopped >= 10 and "killed by signal" not in err


def test_validation_subset_spans_the_set():
    from darkir.train.sets import spread

    frames = [f"scene{s}/{f:03d}" for s in range(5) for f in range(40)]  # sorted by scene, as layouts list them
    chosen = spread(frames, 10)
    assert len(chosen) == 10 and {c.split("/")[0] for c in chosen} == {f"scene{s}" for s in range(5)}
    assert spread(frames[:3], 10) == frames[:3]


def test_slurm_script_launches_torchrun_per_node_and_resumes_when_a_checkpoint_exists(tmp_path):
    """scripts/slurm/train_multinode.sbatch with stand-ins for srun, scontrol and nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "srun.txt"
    for name, body in {
        "srun": f'printf "%s\\n" "$@" > {calls}',
        # A long node list: the script must read it whole (an early-closed pipe fails under pipefail with SIGPIPE).
        "scontrol": 'printf "gpu-a\\ngpu-b\\n"; seq -f "gpu-%g" 3 200000',
        "nvidia-smi": "exit 1",
    }.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    save = tmp_path / "run" / "last.pt"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "42",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_CPUS_PER_TASK": "32",
    }
    script = REPO / "scripts" / "slurm" / "train_multinode.sbatch"
    options = str(REPO / "options/train/tiny_csf.yml")

    def launched() -> list[str]:
        subprocess.run(["bash", str(script), options, f"save.path={save}"], check=True, env=env, cwd=tmp_path)
        return calls.read_text().split("\n")[:-1]

    first = launched()
    assert first[: first.index("torchrun")] == ["--kill-on-bad-exit=1", "--cpus-per-task=32"]
    torchrun = first[first.index("torchrun") :]
    assert torchrun[:11] == [
        "torchrun", "--nnodes", "2", "--nproc_per_node", "4", "--rdzv_backend", "c10d",
        "--rdzv_endpoint", "gpu-a:20042", "--rdzv_id", "42",
    ]  # fmt: skip
    assert torchrun[11:] == ["-m", "darkir.cli", "train", "-p", options, f"save.path={save}", "-q"]
    save.parent.mkdir()
    save.write_bytes(b"checkpoint")
    assert launched()[-2:] == ["--resume", "-q"]


def test_sigterm_stops_training_after_a_step_and_saves(dataset, tmp_path):
    """A batch system's time limit (SIGTERM) loses nothing: the run stops after the current step with a checkpoint,
    as Ctrl-C does, instead of dying with up to an epoch unsaved."""
    import signal

    out = tmp_path / "cut"
    command = [
        sys.executable,
        "-m",
        *_train_args(dataset, out, "train.epochs=400", "datasets.train.batch_size_train=2"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process, stdout, err = _signal_once_logging(command, out, signal.SIGTERM, env)
    assert process.returncode == 130, err
    assert "SIGTERM: stopping after this step and saving" in err
    stopped = int(stdout.split("interrupted at step ")[1].split()[0])
    assert stopped >= 1 and read_checkpoint(out / "last.pt")[2]["step"] == stopped


def test_validation_scores_a_gray_pair_as_darkir_test_does(dataset, tmp_path, capsys):
    """The best checkpoint is chosen on the validation PSNR; for gray pairs it was the RGB output's, 1-2 dB from
    what ``darkir test`` reports for the same checkpoint and pairs (the output as saved, in gray)."""
    rng = np.random.default_rng(5)
    for side, scale in (("low", 60), ("high", 200)):
        (tmp_path / "gray" / side).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            cv2.imwrite(str(tmp_path / "gray" / side / name), (rng.random((48, 64)) * scale).astype(np.uint8))
    run = tmp_path / "run"
    result = train(_options(dataset, run, f"datasets.val.test_path={tmp_path / 'gray'}"), progress=False, max_steps=4)
    scores = tmp_path / "scores.csv"
    test = ["test", "--weights", str(result.best), "--data", str(tmp_path / "gray"), "--no-lpips", "-q", "--save", "0"]
    assert main([*test, "--precision", "fp32", "--csv", str(scores)]) == 0
    rows = scores.read_text().splitlines()[1:]
    assert result.best_psnr == pytest.approx(np.mean([float(row.split(",")[2]) for row in rows]), abs=1e-3)
