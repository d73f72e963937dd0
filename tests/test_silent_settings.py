"""Settings that used to be accepted and silently wrong now raise or warn, naming the setting."""

from __future__ import annotations

import argparse
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
    from darkir.train.trainer import check_trainable

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
