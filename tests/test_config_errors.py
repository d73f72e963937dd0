"""Mistakes in options, devices and files are one line naming what is wrong (exit 2, before any work); images that
turn out unreadable mid-evaluation are skipped, named and counted (exit 1) without losing the other scores."""

from __future__ import annotations

import csv
import os
import re
import textwrap
from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from darkir.checkpoint import read_checkpoint, save_checkpoint
from darkir.cli import main
from darkir.errors import CheckpointError, ConfigError, DarkIRError
from darkir.eval.methods import identity
from darkir.eval.paired import evaluate
from darkir.imageio import ImageReadError
from darkir.models import DarkIR
from darkir.models.config import ModelConfig
from darkir.models.factory import build_model
from darkir.options import PixelCriterion, load_options, options_from_dict
from darkir.runtime import available_devices, resolve_device
from darkir.train.losses import PIXEL_LOSSES
from darkir.weightfiles import load_weights_file
from tests.conftest import REPO


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``darkir argv``: (exit status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> str:
    """The single ``darkir: error:`` line of a mistake (exit 2, no traceback)."""
    lines = [line for line in err.strip().splitlines() if line.startswith("darkir: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _options_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opts.yml"
    path.write_text(textwrap.dedent(text))
    return path


# 1-5. Options: every bad value is named with its key and what is allowed, as the file loads.

BAD_OPTIONS = [
    ("network:\n  enc_blk_nums: [1, 2]\n", ["network.enc_blk_nums", "[1, 2]", "dec_blk_nums [3, 1, 1]", "same length"]),
    ("network:\n  dec_blk_nums: [1, 1]\n", ["network.enc_blk_nums", "dec_blk_nums [1, 1]", "same length"]),
    ("network:\n  enc_blk_nums: [-1, 2, 3]\n", ["network.enc_blk_nums.0", "greater than or equal to 0", "-1"]),
    ("network:\n  dec_blk_nums: [3, -2, 1]\n", ["network.dec_blk_nums.1", "greater than or equal to 0"]),
    ("network:\n  middle_blk_num_dec: -1\n", ["network.middle_blk_num_dec", "greater than or equal to 0"]),
    ("network:\n  dilations: []\n", ["network.dilations", "at least 1 item"]),
    ("network:\n  dilations: [0]\n", ["network.dilations.0", "greater than or equal to 1"]),
    ("network:\n  dilations: [1, -4, 9]\n", ["network.dilations.1", "greater than or equal to 1"]),
    ("network:\n  img_channels: 4\n", ["network.img_channels", "must be 3, got 4", "RGB"]),
    ("network:\n  img_channels: 1\n", ["network.img_channels", "must be 3, got 1"]),
    ("train:\n  betas: [1.5, 0.9]\n", ["train.betas.0", "less than 1", "1.5"]),
    ("train:\n  betas: [0.9, 1.0]\n", ["train.betas.1", "less than 1"]),
    ("train:\n  betas: [-0.1, 0.9]\n", ["train.betas.0", "greater than or equal to 0"]),
    ("train:\n  betas: [0.9]\n", ["train.betas", "two numbers [beta1, beta2], each in [0, 1)"]),
    ("train:\n  betas: [0.9, 0.9, 0.9]\n", ["train.betas", "two numbers [beta1, beta2], each in [0, 1)"]),
    ("train:\n  enhance_criterion: foo\n", ["train.enhance_criterion", "'l1', 'l2' or 'charbonnier'", "'foo'"]),
    ("train:\n  pixel_criterion: huber\n", ["train.pixel_criterion", "'l1', 'l2' or 'charbonnier'"]),
    ("train:\n  edge_criterion: l3\n", ["train.edge_criterion", "'l1', 'l2' or 'charbonnier'"]),
    ("train:\n  frequency_criterion: x\n", ["train.frequency_criterion", "'l1', 'l2' or 'charbonnier'"]),
    ("train:\n  perceptual_criterion: cosine\n", ["train.perceptual_criterion", "'l1', 'l2' or 'fro'"]),
    ("train:\n  enhance_reduction: avg\n", ["train.enhance_reduction", "'none', 'mean' or 'sum'"]),
    ("train:\n  seed: -5\n", ["train.seed", "greater than or equal to 0"]),
    ("train:\n  seed: 1000000000000000\n", ["train.seed", "less than 4294967296"]),
    ("train:\n  pixel_weight: -1\n", ["train.pixel_weight", "greater than or equal to 0"]),
    ("train:\n  enhance_weight: -0.5\n", ["train.enhance_weight", "greater than or equal to 0"]),
    ("train:\n  weight_decay: .inf\n", ["train.weight_decay", "finite number"]),
    ("train:\n  lr_initial: .nan\n", ["train.lr_initial", "finite number"]),
    ("train:\n  lr_initial: 1.0e-3\n  eta_min: 1.0\n", ["train.eta_min", "eta_min 1 is above lr_initial 0.001"]),
    (
        "datasets:\n  train:\n    cropsize: 200\n    synth:\n      max_short_side: 64\n",
        ["datasets.train.synth", "cropsize 200 is larger than synth.max_short_side 64"],
    ),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {low_mean_range: [0.5, 0.1]}\n",
        ["datasets.train.synth.degradation", "low_mean_range (0.5, 0.1): its low end is above its high end"],
    ),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {photons_range: [-5, -1], blur_prob: 7}\n",
        ["photons_range (-5.0, -1.0): must be above 0", "blur_prob 7.0: a probability is in [0, 1]"],
    ),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {jpeg_quality_range: [500, 900]}\n",
        ["jpeg_quality_range (500, 900): JPEG qualities are in [1, 100]"],
    ),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {photons_range: [400, .inf], glow_range: [0, 0.4]}\n",
        ["photons_range.1: Input should be a finite number"],
    ),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {glow_range: [0, 0.4], target_keep_range: [0.5, 0.2]}\n",
        ["glow_range (0.0, 0.4): must be above 0", "target_keep_range (0.5, 0.2): must be (low, high) with 0 < low"],
    ),
    ("train:\n  lr_initial: 1.0e-7\n", ["train.eta_min", "eta_min 1e-06 is above lr_initial 1e-07"]),
    ("train:\n  epochs: yes\n", ["train.epochs: a boolean where a number or name goes", "(got True)"]),
    ("train:\n  lr_initial: on\n", ["train.lr_initial: a boolean where a number or name goes"]),
    ("network:\n  width: true\n", ["network.width: a boolean where a number or name goes"]),
    (
        "datasets:\n  train:\n    synth:\n      degradation: {photons_range: [true, 5000]}\n",
        ["photons_range: a boolean where a number goes (got [True, 5000])"],
    ),
    (
        "datasets:\n  train:\n    cropsize: 128\n    synth:\n      max_short_side: 128\n",
        ["datasets.train.synth", "synth.val_cropsize 256 is larger than synth.max_short_side 128"],
    ),
    ("save:\n  path: run/\n", ["save.path: ends in /, so it names a folder", "e.g. run/last.pt"]),
    (
        "datasets:\n  train:\n    synth:\n      split_seed: -1\n",
        ["datasets.train.synth.split_seed", "greater than or equal to 0"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_OPTIONS, ids=[text.split()[1] for text, _ in BAD_OPTIONS])
def test_bad_option_values_are_named_as_the_file_loads(tmp_path, text, expected):
    path = _options_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_options(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("text", "key", "first", "line"),
    [
        ("train:\n  lr_initial: !!float 5e-4\n  epochs: 3\nsave:\n  path: x.pt\ntrain:\n  epochs: 1\n", "train", 1, 6),
        ("train:\n  lr_initial: 1.0e-4\n  lr_initial: 5.0e-4\n", "lr_initial", 2, 3),
        ("network:\n  width: 32\n  dilations: [1, 4, 9]\n  width: 64\n", "width", 2, 4),
    ],
    ids=["section", "key", "network"],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, capsys, text, key, first, line):
    # YAML itself keeps the last of two equal keys: a second train: section silently dropped the first one's settings.
    path = _options_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_options(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"key '{key}' appears twice (first on line {first})" in message and f'"{path}", line {line}' in message
    assert main(["complexity", "-p", str(path)]) == 2
    assert f"key '{key}' appears twice" in capsys.readouterr().err


def test_merge_keys_still_load_and_may_be_overridden(tmp_path):
    # YAML merge keys (`<<:`) are not repeats: a key they merge may be set again beside them.
    text = "network:\n  <<: [{width: 16, use_csf: true}, {csf_reduction: 2}]\n  width: 8\n"
    options = load_options(_options_file(tmp_path, text))
    assert (options.network.width, options.network.use_csf, options.network.csf_reduction) == (8, True, 2)
    with pytest.raises(ConfigError, match="key 'width' appears twice"):
        load_options(_options_file(tmp_path, text + "  width: 4\n"))


def test_a_non_utf8_options_file_names_the_byte_in_the_file(tmp_path):
    path = tmp_path / "opts.yml"
    path.write_bytes(b"# " + b"x" * 20000 + b"\n" + b"\xff\n")
    with pytest.raises(ConfigError, match=r"not a UTF-8 text file \(byte 20003\)"):
        load_options(path)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ("middle_blk_num_enc: 1180591620717411303424", r"network\.middle_blk_num_enc: Input should be less than or"),
        ("width: 1180591620717411303424", r"network\.width: Input should be less than or equal to 1073741824"),
        ("enc_blk_nums: [1, 1, 1, 1, 1, 1, 1, 1, 1]", r"network\.enc_blk_nums: List should have at most 8 items"),
        ("dilations: [1, 4000]", r"network\.dilations\.1: Input should be less than or equal to 1024"),
    ],
)
def test_a_network_size_past_any_darkir_is_named_before_the_model_is_made(tmp_path, network, message):
    """2**70 middle blocks hung ``complexity`` and ``train`` (the model was being built); a width of 2**70 ended in
    "unexpected error: TypeError ... Overflow when unpacking long long"."""
    with pytest.raises(ConfigError, match=message):
        load_options(_options_file(tmp_path, f"network:\n  {network}\n"))
    with pytest.raises(ConfigError, match=r"invalid model config: width: must be at most 1073741824"):
        ModelConfig(width=2**70)
    with pytest.raises(ConfigError, match=r"dec_blk_nums: each entry must be at most 1000, got \[1, 2000\]"):
        ModelConfig(enc_blk_nums=(1, 1), dec_blk_nums=(1, 2000))


def test_a_model_config_refuses_vast_values_in_a_short_message():
    """``ModelConfig(width=10**5000)`` raised Python's ValueError (an integer too long to write out) from the message
    meant to refuse it, and a million dilations wrote a 3 MB message."""
    with pytest.raises(ConfigError, match=r"width: must be at most 1073741824, got <a 16610-bit whole number>"):
        ModelConfig(width=10**5000)
    with pytest.raises(ConfigError) as refused:
        ModelConfig(dilations=list(range(1, 10**6)))
    assert "must hold at most 8 values" in str(refused.value) and len(str(refused.value)) < 500


def test_a_yaml_alias_bomb_is_refused_in_a_short_line(tmp_path):
    """Nine levels of nine aliases (9**9 values, a few hundred bytes of YAML) hung every command: the error message
    wrote the whole value out."""
    lines, previous = ["a: &a [x, x, x, x, x, x, x, x, x]"], "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join([*lines, "quali: *i", ""]))
    with pytest.raises(ConfigError, match=r"quali\.0: Input should be a valid string \(got \[\[\[") as error:
        load_options(path)
    assert len(str(error.value)) < 10_000


def test_an_image_or_weights_given_as_the_options_file_is_named_as_such(tmp_path, tiny_checkpoint):
    """``train -p photo.png`` said "not a UTF-8 text file (byte 0)", where ``convert`` on it says what it is."""
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConfigError, match=r"photo\.png: not an options file: it is a PNG image; give a YAML file"):
        load_options(tmp_path / "photo.png")
    with pytest.raises(ConfigError, match=r"tiny\.pt: not an options file: it is a PyTorch weights file \(weights go"):
        load_options(tiny_checkpoint)
    (tmp_path / "bm.yml").write_text("BMX: 1\n")  # text that starts as a BMP does: read as YAML
    with pytest.raises(ConfigError, match=r"bm\.yml: unknown key 'BMX'"):
        load_options(tmp_path / "bm.yml")
    packaged = REPO / "src" / "darkir" / "weights" / "darkir-w32-synth.safetensors"  # starts with NUL bytes: UTF-8
    with pytest.raises(ConfigError, match=r"synth\.safetensors: not an options file: it is a safetensors weights"):
        load_options(packaged)


@pytest.mark.parametrize(("text", "expected"), BAD_OPTIONS[:3] + BAD_OPTIONS[5:7] + [BAD_OPTIONS[8], BAD_OPTIONS[10]])
def test_complexity_reports_bad_network_as_one_line(tmp_path, capsys, text, expected):
    code, _, err = _run(capsys, "complexity", "-p", str(_options_file(tmp_path, text)), "--size", "16")
    line = _one_line_error(code, err)
    assert all(part in line for part in expected)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("network.enc_blk_nums=[1,2]", "network.enc_blk_nums"),
        ("network.dilations=[]", "network.dilations"),
        ("network.img_channels=4", "network.img_channels"),
        ("train.betas=[1.5,0.9]", "train.betas.0"),
        ("train.enhance_criterion=foo", "train.enhance_criterion"),
        ("train.seed=-5", "train.seed"),
        ("train.eta_min=1.0", "train.eta_min"),
        ("train.weight_decay=.inf", "train.weight_decay"),
    ],
)
def test_train_refuses_bad_overrides_before_any_work(tmp_path, capsys, override, key):
    """The options are refused before the data, the device or the save folder are touched."""
    run = tmp_path / "run"
    code, _, err = _run(
        capsys,
        "train",
        "-p",
        str(REPO / "options" / "train" / "tiny_csf.yml"),
        f"save.path={run / 'last.pt'}",
        f"save.best={run / 'best.pt'}",
        override,
        "--max-steps",
        "1",
    )
    assert key in _one_line_error(code, err)
    assert not run.exists()


def test_train_refuses_a_side_loss_reduction_it_does_not_apply(tmp_path, capsys):
    run = tmp_path / "run"
    options = str(REPO / "options" / "train" / "tiny_csf.yml")
    overrides = [f"save.path={run / 'last.pt'}", "train.enhance=true", "train.enhance_reduction=Sum"]
    code, _, err = _run(capsys, "train", "-p", options, *overrides, "--max-steps", "1")
    assert "train.enhance_reduction: 'sum' is not supported" in _one_line_error(code, err)
    assert not run.exists()


def test_names_are_case_insensitive_and_official_values_load(tmp_path):
    options = load_options(
        _options_file(
            tmp_path,
            """
            train:
              pixel_criterion: Charbonnier
              enhance_criterion: L2
              perceptual_criterion: FRO
              edge_reduction: Mean
              betas: [0, 0.999]
            """,
        )
    )
    train = options.train
    assert (train.pixel_criterion, train.enhance_criterion, train.perceptual_criterion) == ("charbonnier", "l2", "fro")
    assert train.edge_reduction == "mean" and train.betas == (0.0, 0.999)
    empty_stages = options_from_dict({"network": {"enc_blk_nums": [], "dec_blk_nums": [], "width": 8}})
    assert build_model(empty_stages.network.model_kwargs())(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_option_criteria_are_the_losses_training_has():
    assert set(get_args(PixelCriterion)) == set(PIXEL_LOSSES)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"enc_blk_nums": [1, 2], "dec_blk_nums": [1, 1, 1]}, "enc_blk_nums: [1, 2] and dec_blk_nums [1, 1, 1]"),
        ({"enc_blk_nums": [1, -2, 3]}, "enc_blk_nums: each entry must be at least 0, got [1, -2, 3]"),
        ({"dilations": []}, "dilations: must hold at least 1 value(s), got []"),
        ({"dilations": [0, 1]}, "dilations: each entry must be at least 1, got [0, 1]"),
        ({"dilations": [1.5]}, "dilations: must be a list of whole numbers"),
        ({"width": 0}, "width: must be at least 1, got 0"),
        ({"width": "wide"}, "width: must be a whole number, got 'wide'"),
        ({"use_csf": "false"}, "use_csf: must be true or false, got 'false'"),  # a string is truthy: it made CSF
        ({"extra_depth_wise": 0}, "extra_depth_wise: must be true or false, got 0"),
    ],
)
def test_model_config_raises_config_errors_naming_the_field(fields, expected):
    """A ConfigError (reported as one line), which is still the ValueError callers catch."""
    with pytest.raises(ConfigError) as info:
        ModelConfig.from_kwargs(fields)
    assert isinstance(info.value, ValueError)
    assert expected in str(info.value)
    with pytest.raises(ConfigError, match="invalid model config"):
        DarkIR(**fields)


# 6. Devices: one check for every --device, naming the value and what is available.


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mps", "unsupported device 'mps': darkir runs on the CPU or on CUDA GPUs"),
        ("meta", "unsupported device 'meta'"),
        ("tpu", "unknown device 'tpu'"),
        ("cuda:x", "unknown device 'cuda:x'"),
        ("", "unknown device ''"),
        ("cpu:1", "device 'cpu:1' does not exist"),
    ],
)
def test_unusable_devices_are_named_with_the_available_ones(name, expected):
    with pytest.raises(DarkIRError) as info:
        resolve_device(name)
    assert expected in str(info.value)
    assert str(info.value).endswith(f"available here: {', '.join(available_devices())}")


def test_cuda_devices_are_checked_against_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        DarkIRError, match=r"device 'cuda:7' was requested but no CUDA device is available; .*: auto, cpu$"
    ):
        resolve_device("cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        DarkIRError, match=r"'cuda:7' does not exist: this machine has 2 CUDA devices; .*cuda:0, cuda:1$"
    ):
        resolve_device("cuda:7")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
    assert available_devices() == ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]


def _png(path: Path, height: int = 40, width: int = 56, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(path)
    return path


def _truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its bytes (an image keeps its header, so listing still accepts it)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _paired(root: Path, names: tuple[str, ...] = ("a", "b", "c")) -> Path:
    for seed, name in enumerate(names):
        _png(root / "low" / f"{name}.png", seed=seed)
        _png(root / "high" / f"{name}.png", seed=seed + 10)
    return root


@pytest.mark.parametrize(
    "command",
    [
        ["restore", "{data}/low", "-o", "{tmp}/out"],
        ["test", "--data", "{data}", "--no-lpips", "--save", "0"],
        ["test-unpaired", "--data", "{data}/low", "-o", "{tmp}/unpaired"],
        ["compare", "--data", "{data}", "-o", "{tmp}/report", "--no-lpips"],
    ],
    ids=lambda command: command[0],
)
def test_every_command_refuses_an_unusable_device(tmp_path, capsys, tiny_checkpoint, command):
    data = _paired(tmp_path / "set")
    argv = [part.format(data=data, tmp=tmp_path) for part in command]
    code, _, err = _run(capsys, *argv, "--weights", str(tiny_checkpoint), "--device", "mps", "-q")
    line = _one_line_error(code, err)
    assert "unsupported device 'mps'" in line and "available here: auto, cpu" in line


def test_train_refuses_an_unusable_device(tmp_path, capsys):
    code, _, err = _run(
        capsys,
        "train",
        "-p",
        str(REPO / "options" / "train" / "tiny_csf.yml"),
        f"save.path={tmp_path / 'run' / 'last.pt'}",
        "--device",
        "tpu",
        "--max-steps",
        "1",
    )
    assert "unknown device 'tpu'; available here: auto, cpu" in _one_line_error(code, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["restore", "{data}/low", "-o", "{tmp}/out"],
        ["test", "--data", "{data}", "--no-lpips", "--save", "0"],
        ["compare", "--data", "{data}", "-o", "{tmp}/report", "--no-lpips"],
        ["demo"],
    ],
    ids=lambda command: command[0],
)
def test_the_device_is_checked_before_the_weights_are_read(tmp_path, capsys, command):
    data = _paired(tmp_path / "set")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    argv = [part.format(data=data, tmp=tmp_path) for part in command]
    code, _, err = _run(capsys, *argv, "--weights", str(broken), "--device", "cuda:9")
    assert "device 'cuda:9'" in _one_line_error(code, err)
    assert not [*(tmp_path / "out").glob("*"), *(tmp_path / "report").glob("*")]


# 7-8. Checkpoints: unsafe, truncated and foreign files are named with what is wrong with them.


class _Custom:
    """An object torch's weights-only loader refuses."""


def test_unsafe_pickles_are_refused_without_unsafe_advice(tmp_path, tiny_checkpoint, capsys):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": build_model({"width": 8}).state_dict(), "extra": _Custom()}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {path}: it holds pickled Python objects")
    assert "_Custom" in message and "does not load it, for safety" in message
    assert "weights_only" not in message and "will likely succeed" not in message and "\n" not in message
    assert info.value.__cause__ is None  # torch's advice is not chained into --debug tracebacks either
    with pytest.raises(CheckpointError, match=r"unsafe.pt: it holds pickled Python objects .*; expected X$"):
        load_weights_file(path, "expected X")
    legacy = tmp_path / "legacy.pt"  # torch's legacy format (a pickle, no zip archive)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": _Custom()}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="it holds pickled Python objects"):
        read_checkpoint(legacy)
    code, _, err = _run(
        capsys, "restore", str(_png(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--weights", str(path)
    )
    assert "does not load it, for safety" in _one_line_error(code, err)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.99, 0.002])
def test_truncated_checkpoints_say_so(tmp_path, capsys, suffix, keep):
    path = save_checkpoint(tmp_path / f"whole{suffix}", build_model({"width": 8}))
    cut = _truncate(path, keep)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(cut)
    message = str(info.value)  # (the test's folder is named "...truncated...": look after the file's name)
    assert f"{cut}: it is truncated" in message and "Errno" not in message
    code, _, err = _run(
        capsys, "restore", str(_png(tmp_path / "a.png")), "-o", str(tmp_path / "out"), "--weights", str(cut)
    )
    assert f"{cut}: it is truncated" in _one_line_error(code, err)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.pt", b"", "the file is empty"),
        ("notes.pt", b"some notes, not weights\n", "not a PyTorch weights file"),
        ("empty.safetensors", b"", "the file is empty"),
        ("notes.safetensors", b"some notes, not weights\n", "not a safetensors file"),
    ],
)
def test_files_that_are_no_checkpoint_say_so(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_weights_under_each_others_suffix_say_which_suffix_they_need(tmp_path):
    """A PyTorch file named .safetensors was 'not a safetensors file (its first 8 bytes are not the length of a
    header)', where a safetensors file named .pt was told its suffix."""
    model = build_model({"width": 8})
    torch_file = save_checkpoint(tmp_path / "model.pt", model).rename(tmp_path / "torch.safetensors")
    with pytest.raises(CheckpointError, match=r"it is a PyTorch weights file: give it the \.pt suffix"):
        read_checkpoint(torch_file)
    safetensors_file = save_checkpoint(tmp_path / "model.safetensors", model).rename(tmp_path / "safe.pt")
    with pytest.raises(CheckpointError, match=r"it is a safetensors file: give it the \.safetensors suffix"):
        read_checkpoint(safetensors_file)


def test_truncated_weights_of_other_projects_say_so(tmp_path):
    path = tmp_path / "alex.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, path)
    with pytest.raises(CheckpointError, match=r"alex.pth: it is truncated \(\d+ bytes.*; expected AlexNet$"):
        load_weights_file(_truncate(path), "expected AlexNet")


# 9. An options path that is a folder.


@pytest.mark.parametrize("command", ["complexity", "test"])
def test_options_folder_is_named_as_a_folder(tmp_path, capsys, command):
    (tmp_path / "train.yml").write_text("train:\n  epochs: 1\n")
    code, _, err = _run(capsys, command, "-p", str(tmp_path))
    line = _one_line_error(code, err)
    assert f"{tmp_path} is a folder, not an options file" in line and "train.yml" in line
    assert "not found" not in line
    with pytest.raises(ConfigError, match="options file not found"):
        load_options(tmp_path / "missing.yml")
    os.mkfifo(tmp_path / "pipe.yml")  # read, it would block until something writes to it
    with pytest.raises(ConfigError, match=r"pipe\.yml is not a regular file \(a pipe or device\?\)"):
        load_options(tmp_path / "pipe.yml")


# 10. Evaluation: an unreadable image is skipped, named and counted; the other scores are kept.


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("side", ["low", "high"])
def test_test_skips_an_unreadable_image_and_keeps_the_other_scores(tmp_path, capsys, tiny_checkpoint, side):
    data = _paired(tmp_path / "set")
    args = ["test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "--save", "0", "-q"]
    code, _, _ = _run(capsys, *args, "--csv", str(tmp_path / "whole.csv"))
    assert code == 0
    broken = _truncate(data / side / "b.png")
    code, out, err = _run(capsys, *args, "--csv", str(tmp_path / "scores.csv"))
    assert code == 1
    assert f"darkir: skipped unreadable image: {broken}: cannot decode image" in err
    assert f"scored 2 of 3 images; 1 unreadable, skipped: {broken}" in out
    assert "(2 images;" in out
    whole, rows = _csv_rows(tmp_path / "whole.csv"), _csv_rows(tmp_path / "scores.csv")
    assert list(rows) == ["a.png", "c.png"]
    assert all(rows[name]["psnr"] == whole[name]["psnr"] for name in rows)


def test_metrics_skip_unreadable_outputs(tmp_path, capsys):
    data = _paired(tmp_path / "set")
    broken = _truncate(data / "low" / "c.png")
    csv_path = tmp_path / "m.csv"
    code, out, err = _run(
        capsys, "metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q", "--csv", str(csv_path)
    )
    assert code == 1 and str(broken) in err
    assert f"scored 2 of 3 images; 1 unreadable, skipped: {broken}" in out
    assert list(_csv_rows(csv_path)) == ["a.png", "b.png"]
    code, out, _ = _run(capsys, "metrics", str(data / "low"), "-q", "--csv", str(csv_path), "--overwrite")
    assert code == 1 and f"scored 2 of 3 images; 1 unreadable, skipped: {broken}" in out
    assert list(_csv_rows(csv_path)) == ["a.png", "b.png"]


@pytest.mark.parametrize("command", ["test", "metrics"])
def test_a_pair_whose_size_changes_mid_run_is_skipped_and_the_other_scores_kept(
    tmp_path, capsys, tiny_checkpoint, monkeypatch, command
):
    """A reference replaced by one of another size while the run went on (after the pairs were checked) stopped the
    whole run, with exit 2 and no CSV: the scores of the other pairs were lost (found by an outside test)."""
    import darkir.eval.paired

    data = _paired(tmp_path / "set")

    class Replacing(darkir.eval.paired.PairedDataset):
        def __getitem__(self, index: int) -> dict:
            if index == 1:
                _png(data / "high" / "b.png", height=20, width=24)
            return super().__getitem__(index)

    monkeypatch.setattr(darkir.eval.paired, "PairedDataset", Replacing)
    args = [command, "--weights", str(tiny_checkpoint), "--data", str(data), "--save", "0"]
    if command == "metrics":
        args = [command, str(data / "low"), str(data / "high")]
    code, out, err = _run(capsys, *args, "--no-lpips", "-q", "--csv", str(tmp_path / "scores.csv"))
    broken = data / "low" / "b.png"
    assert code == 1 and f"darkir: skipped unreadable image: {broken}: size " in err
    assert f"scored 2 of 3 images; 1 unreadable, skipped: {broken}" in out
    assert list(_csv_rows(tmp_path / "scores.csv")) == ["a.png", "c.png"]


def test_an_unreadable_image_named_with_a_newline_is_named_whole(tmp_path, capsys):
    """``skipped unreadable image: .../tr`` and ``skipped: .../tr`` named a file ``tr\\nunc.png`` by the part before
    its newline, a path that does not exist (found in review)."""
    data = _paired(tmp_path / "set")
    broken = data / "low" / "tr\nunc.png"
    _truncate(_png(broken))
    _png(data / "high" / "tr\nunc.png")
    code, out, err = _run(capsys, "metrics", str(data / "low"), str(data / "high"), "--no-lpips", "-q")
    escaped = str(broken).replace("\n", "\\n")
    assert code == 1 and f"darkir: skipped unreadable image: {escaped}: cannot decode image" in err.splitlines()[0]
    assert f"1 unreadable, skipped: {escaped}" in out


def test_test_unpaired_skips_an_unreadable_input(tmp_path, capsys, tiny_checkpoint):
    data = _paired(tmp_path / "set") / "low"
    broken = _truncate(data / "a.png")
    output = tmp_path / "out"
    code, out, err = _run(
        capsys, "test-unpaired", "--weights", str(tiny_checkpoint), "--data", str(data), "-o", str(output), "-q"
    )
    assert code == 1 and f"darkir: skipped unreadable image: {broken}" in err
    assert f"scored 2 of 3 images; 1 unreadable, skipped: {broken}" in out
    assert "input (2 images)" in out
    assert list(_csv_rows(output / "stats.csv")) == ["b.png", "c.png"]
    assert sorted(p.name for p in output.glob("*.png")) == ["b.png", "c.png"]


def test_all_images_unreadable_still_reports(tmp_path, capsys, tiny_checkpoint):
    data = _paired(tmp_path / "set", ("a",))
    _truncate(data / "low" / "a.png")
    code, out, _ = _run(
        capsys, "test", "--weights", str(tiny_checkpoint), "--data", str(data), "--no-lpips", "-q", "--save", "0"
    )
    assert code == 1 and "scored 0 of 1 images; 1 unreadable" in out


def test_evaluate_raises_unless_asked_to_skip(tmp_path):
    """``darkir compare`` needs every method scored on every image, so it still stops, naming the file."""
    from darkir.data.pairs import find_pairs

    data = _paired(tmp_path / "set")
    broken = _truncate(data / "low" / "b.png")
    pairs = find_pairs(data)
    with pytest.raises(ImageReadError, match=str(broken)):
        evaluate(identity(), pairs, progress=False)
    scores = evaluate(identity(), pairs, progress=False, skip_unreadable=True)
    assert scores.names == ["a.png", "c.png"] and len(scores.values["psnr"]) == len(scores.seconds) == 2
    assert scores.unreadable == [f"{broken}: cannot decode image (truncated PNG: the file ends inside its IDAT chunk)"]


def test_load_options_refuses_one_string_of_overrides():
    """A string was taken as a list of its characters: "override 'n' is not of the form key.sub=value"."""
    from darkir.options import load_options

    with pytest.raises(ConfigError, match=re.escape("got one string; pass ['network.width=16']")):
        load_options(REPO / "options" / "test" / "LOLBlur.yml", "network.width=16")
    assert load_options(REPO / "options" / "test" / "LOLBlur.yml", ["network.width=16"]).network.width == 16
