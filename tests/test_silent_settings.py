"""Settings that used to be accepted and silently wrong now raise or warn, naming the setting."""

from __future__ import annotations

import argparse
import re
import warnings

import pytest

from darkir.checkpoint import save_checkpoint
from darkir.cli import main
from darkir.errors import CheckpointError, ConfigError, DarkIRWarning
from darkir.models.factory import build_model, load_model
from darkir.models.zoo import DEFAULT_WEIGHTS
from darkir.options import load_options, options_from_dict
from tests.conftest import REPO, TINY


def test_explicit_config_contradicting_the_stored_one_is_refused(tiny_checkpoint):
    same_shapes = {**TINY, "use_csf": True, "dilations": [1, 2, 3]}  # loads strictly, but computes another model
    with pytest.raises(CheckpointError, match=r"contradicts.*dilations \[1, 2, 3\] vs \[1, 4, 9\]"):
        load_model(tiny_checkpoint, config=same_shapes)
    assert load_model(tiny_checkpoint, config={**TINY, "use_csf": True}).config["dilations"] == [1, 4, 9]


def test_training_state_is_never_dropped_into_safetensors(tmp_path):
    with pytest.raises(CheckpointError, match="optimizer, step would be lost"):
        save_checkpoint(tmp_path / "x.safetensors", build_model("darkir-w32", **TINY), optimizer={}, step=3)
    from darkir.train.checks import check_trainable

    options = load_options(REPO / "options/train/tiny_csf.yml", [f"save.path={tmp_path / 'last.safetensors'}"])
    with pytest.raises(ConfigError, match=r"save\.path: training checkpoints hold the optimizer"):
        check_trainable(options)


def test_official_keys_without_effect_warn_once_naming_them(tmp_path, capsys):
    with pytest.warns(DarkIRWarning, match=r"Resize \(darkir tiles.*wandb\.init") as record:
        options_from_dict({"Resize": True, "wandb": {"init": True}, "device": {"cuda": True}}, source="seed.yml")
    assert "device.cuda" not in str(record[0].message)  # set, but to the value darkir behaves as
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        options_from_dict({"Resize": True}, source="again.yml")  # once per key and process
    options = tmp_path / "o.yml"
    options.write_text("train:\n  lr_gamma: 0.1\n")
    main(["complexity", "-p", str(options)])
    err = capsys.readouterr().err
    assert err.startswith("darkir: warning:") and "train.lr_gamma" in err and len(err.strip().splitlines()) == 1


def test_metrics_has_no_convention_to_ignore(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["metrics", str(tmp_path), str(tmp_path), "--convention", "reference"])
    assert exit_info.value.code == 2


def test_test_names_the_default_model():
    from darkir.cli.evaluate import _method_name

    assert _method_name(argparse.Namespace(weights=None, options=None)) == DEFAULT_WEIGHTS
    assert _method_name(argparse.Namespace(weights="runs/x/best.pt", options=None)) == "best"


def test_demo_without_gradio_is_one_clear_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["demo"]) == 2
    assert "the demo needs gradio" in capsys.readouterr().err


def test_official_unpaired_test_files_with_quali_load_and_run(tmp_path, tiny_checkpoint, capsys):
    # The official DICM/LIME/MEF/NPE/VV test files list testing_unpaired.py's metrics under `quali`.
    from tests.conftest import make_photos

    photos = tmp_path / "DICM"
    make_photos(photos, count=2)
    options = tmp_path / "DICM.yml"
    options.write_text(
        f"datasets:\n  name: DICM\n  val:\n    test_path: {photos}\n    batch_size_test: 1\n"
        f"save:\n  path: {tiny_checkpoint}\nResize: False\nquali: ['musiq', 'niqe', 'nrqm', 'brisque']\n"
    )
    with pytest.warns(DarkIRWarning, match=r"quali \(test-unpaired reports NIQE, brightness and noise"):
        assert load_options(options).quali == ["musiq", "niqe", "nrqm", "brisque"]
    out = tmp_path / "out"
    assert main(["test-unpaired", "-p", str(options), "--weights", str(tiny_checkpoint), "-o", str(out), "-q"]) == 0
    assert (out / "stats.csv").is_file() and len(list(out.glob("*.png"))) == 2


def test_network_settings_left_out_of_an_options_file_come_from_the_weights(tmp_path, tiny_checkpoint):
    # No network: section asks for nothing: a bare (official-layout) checkpoint gets its inferred config and one of ours
    # its stored config; a setting the file does write must still agree with the weights.
    import torch

    from darkir.cli.common import trained_model

    bare = tmp_path / "official.pth"
    torch.save({"params": load_model(tiny_checkpoint).state_dict()}, bare)
    for weights in (bare, tiny_checkpoint):
        options = tmp_path / f"{weights.stem}.yml"
        options.write_text(f"save:\n  path: {weights}\n")
        assert trained_model(None, load_options(options)).config == load_model(tiny_checkpoint).config
    options.write_text(f"network:\n  width: 16\nsave:\n  path: {tiny_checkpoint}\n")
    # named by file and key: the options file's network: setting against the weights' stored one
    expected = f"{options}: network: width: 16 contradicts the one stored with these weights ({tiny_checkpoint}: width:"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        trained_model(None, load_options(options))
    options.write_text(f"network:\n  use_csf: false\n  dilations: [1, 2, 3]\nsave:\n  path: {tiny_checkpoint}\n")
    with pytest.raises(CheckpointError, match=re.escape("network: dilations: [1, 2, 3], use_csf: false contradicts")):
        trained_model(None, load_options(options))


def test_network_settings_that_an_official_checkpoints_tensors_contradict_are_named_by_key(tmp_path, tiny_checkpoint):
    """Against a checkpoint that stores no config (the official {'params': ...}), a wrong width or use_csf in the
    options failed the load with a list of 300 tensors ("341 shape mismatch key(s): intro.weight: checkpoint ...")."""
    import torch

    from darkir.cli.common import trained_model

    model = load_model(tiny_checkpoint)
    bare = tmp_path / "official.pth"
    torch.save({"params": model.state_dict()}, bare)
    options = tmp_path / "official.yml"
    width = model.config["width"]
    for setting, shown in ((f"width: {2 * width}", f"width: {width}"), ("use_csf: false", "use_csf: true")):
        options.write_text(f"network:\n  {setting}\nsave:\n  path: {bare}\n")
        expected = f"{options}: network: {setting} contradicts the one these weights' tensors show ({bare}: {shown})"
        with pytest.raises(CheckpointError, match=re.escape(expected)) as error:
            trained_model(None, load_options(options))
        assert "key(s)" not in str(error.value)
    options.write_text(f"network:\n  dilations: [1, 2, 3]\n  csf_reduction: 4\nsave:\n  path: {bare}\n")
    assert trained_model(None, load_options(options)).config["dilations"] == [1, 2, 3]  # values no tensor shows
    torch.save(model.state_dict() | {"version": 2}, bare)  # a file read twice (the load, then what it shows) ...
    options.write_text(f"network:\n  width: {2 * width}\nsave:\n  path: {bare}\n")
    with pytest.warns(DarkIRWarning) as warned, pytest.raises(CheckpointError, match="tensors show"):
        trained_model(None, load_options(options))
    assert [str(w.message).count("left out") for w in warned] == [1]  # ... warns once
