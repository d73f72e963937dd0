"""Options files: the shipped and official formats load; bad keys, types and paths are named."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from darkir.errors import ConfigError
from darkir.models import get_spec
from darkir.models.factory import build_model
from darkir.options import load_options, options_from_dict
from darkir.optionsfile import parse_overrides
from tests.conftest import REPO

OPTION_FILES = sorted((REPO / "options").rglob("*.yml"))

# An official cidautai/DarkIR training file (keys the reference train.py reads), verbatim in shape.
OFFICIAL_TRAIN = """
device:
  cuda: True
  gpus: 0,1
  ids: [0,1]
datasets:
  name: LOLBlur
  train:
    train_path: /data/LOLBlur/train
    n_workers: 4  # per GPU
    batch_size_train: 2
    cropsize: 256
    flips: True
    verbose: True
    crop_type: Random
  val:
    test_path: /data/LOLBlur/test
    batch_size_test: 1
network:
  name: Network
  resume_training: True
  img_channels: 3
  width: 32
  middle_blk_num_enc: 8
  middle_blk_num_dec: 8
  enc_blk_nums: [1, 1, 1]
  dec_blk_nums: [1, 1, 1]
  dilations: [1, 1, 1]
  extra_depth_wise: True
train:
  lr_initial: !!float 5e-4
  lr_scheme: CosineAnnealing
  betas: [0.9, 0.9]
  epochs: 500
  lr_gamma: 0.5
  weight_decay: !!float 1e-3
  eta_min: !!float 1e-6
  pixel_criterion: l1
  pixel_weight: 1.0
  perceptual: False
  perceptual_criterion: l1
  perceptual_weight: 0.01
  perceptual_reduction: mean
  edge: True
  edge_criterion: l2
  edge_weight: 50.0
  edge_reduction: mean
  frequency: False
  frequency_criterion: l2
  frequency_weight: 0.01
  frequency_reduction: sum
  enhance: False
  enhance_criterion: l1
  enhance_weight: 0.8
  enhance_reduction: mean
save:
  path: ./models/Network.pt
  best: ./models/bests
  new: ./models/Network.pt
wandb:
  init: False
  project: GOPRO_LOLBlur
  entity: cidautai
  name: Network_LOLBlur_dilation1
  save_code: True
  resume: never
  id: None
"""


def _write(tmp_path: Path, text: str, name: str = "opts.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: str(p.relative_to(REPO / "options")))
def test_shipped_options_load_and_build(path):
    options = load_options(path)
    model = build_model(options.network.model_kwargs())
    assert model.config["use_csf"] == ("csf" in path.stem.lower())


def test_expected_option_files_exist():
    names = {str(p.relative_to(REPO / "options")) for p in OPTION_FILES}
    assert {
        "train/LOLBlur.yml",
        "train/LOLBlur_csf.yml",
        "test/LOLBlur.yml",
        "test/LOLBlur_CSF.yml",
        "test/RealBlur_Night.yml",
        "inference/LOLBlur.yml",
        "inference_video/Baseline.yml",
    } <= names


@pytest.mark.parametrize("name", ["LOLBlur", "LOLBlur_csf"])
def test_training_options_follow_the_seed_recipe(name):
    options = load_options(REPO / "options" / "train" / f"{name}.yml")
    assert options.network.model_kwargs() == get_spec("darkir-csf-w32" if "csf" in name else "darkir-w32").config
    data, train = options.datasets.train, options.train
    assert (data.cropsize, data.batch_size_train, data.flips) == (256, 4, True)
    assert (train.lr_initial, train.weight_decay, train.betas, train.eta_min) == (1e-4, 1e-4, (0.9, 0.99), 1e-6)
    assert (train.lr_scheme, train.pixel_criterion, train.grad_clip, train.epochs) == (
        "CosineAnnealing",
        "charbonnier",
        5.0,
        100,
    )


def test_official_training_file_loads_unchanged(tmp_path):
    options = load_options(_write(tmp_path, OFFICIAL_TRAIN))
    assert options.network.middle_blk_num_enc == 8
    assert options.train.lr_initial == 5e-4
    assert options.device.gpus == "0,1"


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = _write(tmp_path, "network:\n  widht: 32\n")
    with pytest.raises(ConfigError) as info:
        load_options(path)
    assert str(path) in str(info.value)
    assert "unknown key 'network.widht' (did you mean 'network.width'?)" in str(info.value)


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'netwrok' \\(did you mean 'network'\\?\\)"):
        load_options(_write(tmp_path, "netwrok:\n  width: 32\n"))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("network:\n  width: wide\n", "network.width"),
        ("network:\n  use_csf: maybe\n", "network.use_csf"),
        ("train:\n  betas: [0.9]\n", "train.betas"),
        ("train:\n  pixel_criterion: huber\n", "train.pixel_criterion"),
        ("datasets:\n  train:\n    batch_size_train: 0\n", "datasets.train.batch_size_train"),
    ],
)
def test_wrong_types_and_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=r"opts\.yml: .*" + re.escape(key)):
        load_options(_write(tmp_path, text))


def test_float_written_without_tag_is_accepted(tmp_path):
    assert load_options(_write(tmp_path, "train:\n  lr_initial: 2e-4\n")).train.lr_initial == 2e-4


def test_numbers_read_as_written_not_as_yaml_1_1_octal_or_base_60(tmp_path):
    """YAML 1.1 read ``epochs: 017`` as 15 and ``1:30`` as 90, and a run trained on them without a word."""
    options = load_options(_write(tmp_path, "train:\n  epochs: 017\nnetwork:\n  dilations: [1, 4, 010]\n"))
    assert (options.train.epochs, options.network.dilations) == (17, [1, 4, 10])
    assert load_options(_write(tmp_path, "train:\n  epochs: 2\n"), ["train.epochs=017"]).train.epochs == 17
    assert load_options(_write(tmp_path, "train:\n  epochs: 0x10\n")).train.epochs == 16
    with pytest.raises(ConfigError, match=r"opts\.yml: train\.epochs: .*got '1:30'"):
        load_options(_write(tmp_path, "train:\n  epochs: 1:30\n"))
    with pytest.raises(ConfigError, match=r"train\.epochs: .*got '1:30'"):
        load_options(_write(tmp_path, "train:\n  epochs: 2\n"), ["train.epochs=1:30"])


def test_a_path_of_the_wrong_kind_is_named_as_such(tmp_path):
    """A save.path that is a folder was "save.path: file not found"."""
    options = load_options(
        _write(tmp_path, f"save:\n  path: {tmp_path}\ndatasets:\n  val:\n    test_path: {tmp_path / 'opts.yml'}\n")
    )
    with pytest.raises(
        ConfigError, match=rf"opts\.yml: save\.path: {re.escape(str(tmp_path))} is a directory; give a file$"
    ):
        options.require_path("save.path", "file")
    with pytest.raises(
        ConfigError, match=r"datasets\.val\.test_path: .*opts\.yml is not a directory; give a directory$"
    ):
        options.require_path("datasets.val.test_path", "dir")


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_options(_write(tmp_path, "network: [unclosed\n"))
    with pytest.raises(ConfigError, match="options file not found"):
        load_options(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_options(_write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("a: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply to read"),
        ("train:\n  epochs: " + "9" * 5000 + "\n", r"a value cannot be read \(Exceeds the limit"),
        ("train:\n  epochs: 2020-13-45\n", r"a value cannot be read \(month must be in 1..12\)"),
    ],
    ids=["deep", "digits", "date"],
)
def test_yaml_python_cannot_read_is_invalid_yaml_naming_the_file(tmp_path, text, why):
    """Limits Python puts on reading YAML (recursion, integer digits) and values its constructors refuse are
    errors that name the file, not unexpected errors."""
    with pytest.raises(ConfigError, match=rf"opts\.yml: invalid YAML: {why}"):
        load_options(_write(tmp_path, text))


@pytest.mark.parametrize("value", ["[[[", "[" * 20000, "9" * 5000])
def test_an_override_value_that_is_not_yaml_is_named(value):
    with pytest.raises(ConfigError, match=r"override 'train.epochs=.*': invalid YAML value: "):
        parse_overrides([f"train.epochs={value}"])


def test_an_override_value_cut_by_a_yaml_comment_is_refused():
    """``save.path=/runs/a #1.pt`` was read as ``/runs/a``: YAML drops what follows `` #``."""
    with pytest.raises(ConfigError) as caught:
        parse_overrides(["save.path=/runs/a #1.pt"])
    assert str(caught.value) == (
        "override 'save.path=/runs/a #1.pt': '#1.pt' would be read as a YAML comment and dropped; remove it, or quote "
        """a text value that holds it: save.path='"/runs/a #1.pt"'"""
    )
    quoted = parse_overrides(['save.path="/runs/a #1.pt"', "a.b=c#d"])
    assert quoted == {"save": {"path": "/runs/a #1.pt"}, "a": {"b": "c#d"}}


def test_overrides_win_and_are_validated(tmp_path):
    path = _write(tmp_path, "network:\n  width: 32\ntrain:\n  epochs: 100\n")
    options = load_options(path, ["network.width=16", "train.epochs=3", "network.dilations=[1, 2]"])
    assert (options.network.width, options.train.epochs, options.network.dilations) == (16, 3, [1, 2])
    with pytest.raises(ConfigError, match="unknown key 'train.epoch' \\(did you mean 'train.epochs'\\?\\)"):
        load_options(path, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="not of the form"):
        parse_overrides(["train.epochs"])


def test_an_error_in_an_override_names_the_override_not_only_the_file(tmp_path):
    """``train.seed=-1`` on the command line was reported as ``base.yml: train.seed: ...``: a value the file does
    not hold."""
    path = _write(tmp_path, "train:\n  seed: 3\n  epochs: 100\n")
    with pytest.raises(ConfigError) as error:
        load_options(path, ["train.seed=-1", "train.epochz=3", "network.width=16"])
    message = str(error.value)
    assert (
        "train.seed: Input should be greater than or equal to 0 (got -1), set on the command line (train.seed=-1)"
        in message
    )
    assert (
        "unknown key 'train.epochz' (did you mean 'train.epochs'?), set on the command line (train.epochz=3)" in message
    )
    for override in ("train.epochs=3", "train={epochs: 3}"):  # a section given as a mapping is merged, not replaced
        with pytest.raises(ConfigError) as error:
            load_options(_write(tmp_path, "train:\n  seed: -1\n"), [override])
        assert "(got -1)" in str(error.value) and "command line" not in str(error.value)
    with pytest.raises(ConfigError, match=r"train.seed: .*\(got -2\), set on the command line \(train=\{seed: -2\}\)"):
        load_options(path, ["train={seed: -2}"])


def test_an_override_of_a_file_name_in_another_encoding_is_taken_as_it_is():
    """Bytes the locale cannot decode reach Python as surrogate escapes, which YAML refused ("unacceptable
    character"): a dataset or run folder named in Latin-1 could not be given."""
    assert parse_overrides(["save.path=/runs/caf\udce9/last.pt"]) == {"save": {"path": "/runs/caf\udce9/last.pt"}}


@pytest.mark.parametrize("item", ["datasets.val.test_path=", "datasets.val.test_path=  "])
def test_an_override_without_a_value_is_refused(item):
    """``datasets.val.test_path=$VAL`` with $VAL unset turned validation off without a word."""
    with pytest.raises(ConfigError, match=r"has no value \(an unset variable\?\); write datasets.val.test_path=null"):
        parse_overrides([item])


def test_a_key_given_twice_among_overrides_takes_the_later(tmp_path):
    """As documented: a script may append its own override of a key the command line already gave."""
    path = _write(tmp_path, "train:\n  epochs: 100\n")
    assert load_options(path, ["train.epochs=1", "train.lr_initial=0.001", "train.epochs=2"]).train.epochs == 2


def test_a_relative_path_not_found_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """The official scripts read relative paths from the current folder, and so does darkir; "path not found:
    ./root" did not say so, and a user looked beside the options file."""
    path = _write(tmp_path, "datasets:\n  val:\n    test_path: ./root\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(f"(a relative path is read from the current folder, {tmp_path})")):
        load_options(path).require_path("datasets.val.test_path")


def test_require_path_names_key_and_file(tmp_path):
    path = _write(tmp_path, f"datasets:\n  val:\n    test_path: {tmp_path / 'missing'}\n")
    options = load_options(path)
    with pytest.raises(ConfigError, match=rf"{path}: datasets\.val\.test_path: directory not found"):
        options.require_path("datasets.val.test_path", kind="dir")
    with pytest.raises(ConfigError, match=r"save\.path is not set"):
        options.require_path("save.path")
    (tmp_path / "missing").mkdir()
    assert options.require_path("datasets.val.test_path", kind="dir") == tmp_path / "missing"


def test_resolved_options_round_trip(tmp_path):
    options = load_options(REPO / "options" / "train" / "LOLBlur_csf.yml", ["train.epochs=7"])
    again = load_options(_write(tmp_path, options.to_yaml(), "resolved.yml"))
    assert again.model_dump() == options.model_dump()
    assert again.train.epochs == 7


def test_empty_file_gives_defaults(tmp_path):
    options = options_from_dict({})
    assert options.network.model_kwargs() == get_spec("darkir-w32").config
    assert load_options(_write(tmp_path, "")).train.epochs == 100


def test_crop_types_in_any_case_and_betas_written_as_a_tuple_are_told_how_to_write_them():
    """``crop_type: center`` was refused where ``pixel_criterion: L1`` is taken in any case, and ``betas: (0.9,
    0.99)`` (a string to YAML) read 'Input should be a valid tuple'."""
    from darkir.options import options_from_dict

    for written, taken in (("center", "Center"), ("RANDOM", "Random"), ("Center", "Center")):
        assert options_from_dict({"datasets": {"train": {"crop_type": written}}}).datasets.train.crop_type == taken
    with pytest.raises(ConfigError, match=r"train\.betas: expected two numbers \[beta1, beta2\] \(a YAML list: in"):
        options_from_dict({"train": {"betas": "(0.9, 0.99)"}})


def test_an_older_official_training_file_loads(tmp_path):
    """The official repository's earlier train options were refused: unknown key 'network.enc_blk_nums_map' (and
    middle_blk_num_map, residual_layers, spatial, ksize, all None there), unknown key 'resume_training' (a top-level
    section), and save.best './models/bests/' (a folder, in which the official code named the best file)."""
    path = tmp_path / "LOLBlur.yml"
    path.write_text(
        textwrap.dedent(
            """\
            resume_training:
              resume_training: True
              resume: must
              id: 78ladjjx
            network:
              width: 32
              enc_blk_nums_map: None
              middle_blk_num_map: None
              residual_layers: None
              spatial: None
              ksize: None
            save:
              path: ./models/Network_LOLBlur.pt
              best: ./models/bests/
            """
        )
    )
    options = load_options(path)
    assert options.network.resume_training and options.save.best == "./models/bests/Network_LOLBlur.pt"
    assert options.network.model_kwargs() == build_model("darkir-w32").config  # the older keys build nothing else
    path.write_text("network:\n  ksize: 3\n")
    with pytest.raises(ConfigError, match=r"network\.ksize: a setting of an older official network .*only None"):
        load_options(path)


@pytest.mark.parametrize("section", ["resume_training", "wandb"])
def test_wandb_resume_and_id_take_what_wandb_takes(section):
    """``resume: true`` (wandb takes true/false as well as allow/must/never/auto) was refused as "a boolean where a
    number or name goes", and a numeric ``id`` as no string (found by an outside test); darkir does not use them."""
    from darkir.options import options_from_dict

    for resume, run_id in ((True, 12345), (False, "78ladjjx"), ("allow", None)):
        options = options_from_dict({section: {"resume": resume, "id": run_id}})
        assert (getattr(options, section).resume, getattr(options, section).id) == (resume, run_id)
