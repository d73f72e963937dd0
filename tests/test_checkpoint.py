"""Every checkpoint layout loads strictly; configs are stored or inferred; mismatches are named."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from darkir.checkpoint import read_checkpoint, save_checkpoint
from darkir.errors import CheckpointError
from darkir.models.factory import build_model, load_model
from darkir.models.state_dict import infer_config
from tests.conftest import TINY, randomize


@pytest.fixture(scope="module")
def tiny_csf():
    return randomize(build_model("darkir-csf-w32", **TINY), seed=5).eval()


def _same_output(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


LAYOUTS = {
    "raw": lambda sd: sd,
    "params": lambda sd: {"params": sd},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}, "epoch": 3},
    "state_dict": lambda sd: {"state_dict": sd},
    "ddp_raw": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "ddp_params": lambda sd: {"params": {f"module.{k}": v for k, v in sd.items()}},
    "compiled": lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
    "lightning": lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
    "net_g": lambda sd: {"net_g": sd},
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_torch_layouts_load_with_inferred_config(tmp_path, tiny_csf, layout, suffix):
    path = tmp_path / f"ckpt{suffix}"
    torch.save(LAYOUTS[layout](tiny_csf.state_dict()), path)
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == tiny_csf.config
    assert _same_output(loaded, tiny_csf)


def test_safetensors_without_metadata_infers_config(tmp_path, tiny_csf):
    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_csf.state_dict().items()}, str(path))
    loaded = load_model(path)
    assert loaded.config == tiny_csf.config
    assert _same_output(loaded, tiny_csf)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_own_checkpoints_carry_their_config(tmp_path, suffix):
    # dilations [1, 2, 3] cannot be inferred from shapes: only a stored config gets them right.
    model = randomize(build_model(**TINY, dilations=[1, 2, 3]), seed=2).eval()
    state = {"epoch": 7} if suffix == ".pt" else {}  # training state in .safetensors is refused (test_silent_settings)
    path = save_checkpoint(tmp_path / "sub" / f"ours{suffix}", model, **state)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temp file left behind
    _, config, payload = read_checkpoint(path)
    assert config == model.config
    if suffix == ".pt":
        assert payload["epoch"] == 7
    loaded = load_model(path)
    assert loaded.config["dilations"] == [1, 2, 3]
    assert _same_output(loaded, model)


def test_explicit_config_wins(tmp_path, tiny_csf):
    path = tmp_path / "c.pt"
    torch.save(tiny_csf.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): csf_blocks\.0\.fuse\.0\.weight"):
        load_model(path, config={**tiny_csf.config, "use_csf": False})


@pytest.mark.parametrize("name", ["darkir_w32", "darkir_csf_w32"])
def test_infer_config_on_reference_state_dicts(shared, name):
    fixture = torch.load(shared / "conformance" / f"{name}.pt", weights_only=True)
    assert infer_config(fixture["state_dict"]) == fixture["config"]


def test_reference_checkpoint_loads_and_reproduces(shared, tmp_path):
    fixture = torch.load(shared / "conformance" / "darkir_csf_w32.pt", weights_only=True)
    path = tmp_path / "official.pth"
    torch.save({"params": fixture["state_dict"]}, path)
    model = load_model(path)
    with torch.no_grad():
        assert (model(fixture["input"]) - fixture["output"]).abs().max().item() <= 1e-4


def test_csf_weights_into_baseline_name_the_keys(shared, tmp_path):
    fixture = torch.load(shared / "conformance" / "darkir_csf_w32.pt", weights_only=True)
    path = tmp_path / "csf.pt"
    torch.save(fixture["state_dict"], path)
    with pytest.raises(CheckpointError) as info:
        load_model(path, config="darkir-w32")
    message = str(info.value)
    assert "18 unexpected key(s): csf_blocks.0.fuse.0.weight" in message
    assert "missing" not in message


def test_wrong_width_names_shape_mismatches(shared, tmp_path):
    fixture = torch.load(shared / "conformance" / "darkir_w32.pt", weights_only=True)
    path = tmp_path / "w32.pt"
    torch.save(fixture["state_dict"], path)
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch key\(s\): intro\.weight: checkpoint \(32, 3, 3, 3\) vs model \(64, 3, 3, 3\)",
    ):
        load_model(path, config="darkir-w64")


def test_missing_keys_are_named(tmp_path, tiny_csf):
    state = dict(tiny_csf.state_dict())
    del state["ending.bias"]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): ending\.bias"):
        load_model(path, config=tiny_csf.config)


def test_a_csf_checkpoint_without_its_first_gate_names_the_key(tmp_path, tiny_csf):
    """A bare CSF state_dict without ``csf_blocks.0.gate.1.weight`` gave ``KeyError: 'csf_blocks.0.gate.1.weight'``."""
    state = dict(tiny_csf.state_dict())
    del state["csf_blocks.0.gate.1.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): csf_blocks\.0\.gate\.1\.weight$"):
        load_model(tmp_path / "partial.pt")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda tensor: tensor.to("meta"), r"holds tensors without values \(on the meta device\): intro\.weight"),
        (lambda tensor: tensor.to_sparse(), r"holds sparse tensors: intro\.weight, .*; save them dense"),
    ],
    ids=["meta", "sparse"],
)
def test_tensors_without_plain_values_are_named(tmp_path, tiny_csf, change, message):
    """Meta and sparse tensors leaked torch's errors ("Tensor.item() cannot be called on meta tensors",
    "Could not run 'aten::ne.Scalar' ... SparseCPU")."""
    state = {key: change(value) if value.dim() == 4 else value for key, value in tiny_csf.state_dict().items()}
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "odd.pt")


@pytest.mark.parametrize("blocks", [{"enc_blk_nums": (1, 2, 0)}, {"dec_blk_nums": (1, 1, 0)}])
def test_stages_of_no_blocks_at_the_end_are_read_off_the_weights(blocks):
    """The stages were counted by their blocks alone, so a last stage of none was lost: an official file of such a
    network read back as ``enc_blk_nums: [1, 2]``, which contradicts three decoder stages."""
    model = build_model("darkir-w32", **{**TINY, **blocks})
    config = infer_config(model.state_dict())
    assert {key: tuple(config[key]) for key in blocks} == blocks


def test_a_pipe_and_an_onnx_model_are_named_for_what_they_are(tmp_path):
    """A named pipe was "checkpoint not found" (it exists); an ONNX model only "not a PyTorch weights file"."""
    import os

    os.mkfifo(tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match=r"weights\.pth is not a regular file \(a pipe or a device\?\)"):
        read_checkpoint(tmp_path / "weights.pth")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x0a\x12\x07pytorch")
    with pytest.raises(CheckpointError, match=r"not a PyTorch weights file \(an ONNX model"):
        read_checkpoint(tmp_path / "model.onnx")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"not a checkpoint at all", "cannot read checkpoint"),
        (None, "checkpoint not found"),
    ],
)
def test_unreadable_files(tmp_path, content, pattern):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=pattern):
        read_checkpoint(path)


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="cannot read safetensors file"):
        read_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    """Checkpoints are read with weights_only=True: arbitrary pickled objects never execute."""
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": {"x": torch.zeros(1)}, "payload": pickle.Pickler}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)


def test_non_darkir_weights(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="no 'intro.weight'"):
        load_model(path)
    torch.save({"epoch": 3, "optimizer": {"lr": 1}}, path)
    with pytest.raises(CheckpointError, match="has no model weights"):
        load_model(path)


def test_a_config_entry_of_training_settings_is_left_out_with_a_warning(tmp_path, tiny_csf):
    """Another code's ``{"params": ..., "config": {"lr": ..., "epochs": ...}}`` could not be loaded at all: "unusable
    model config: unknown model config key(s) 'lr', 'epochs'"."""
    from darkir.errors import DarkIRWarning

    torch.save({"params": tiny_csf.state_dict(), "config": {"lr": 1e-4, "epochs": 100}}, tmp_path / "theirs.pth")
    with pytest.warns(DarkIRWarning, match=r"its 'config' entry holds no network settings \(lr, epochs\): left out"):
        assert _same_output(load_model(tmp_path / "theirs.pth"), tiny_csf)
    torch.save({"params": tiny_csf.state_dict(), "config": {"width": 16, "lr": 1e-4}}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"unknown model config key\(s\) 'lr'"):
        load_model(tmp_path / "mixed.pth")


def test_plain_values_beside_the_weights_are_left_out_with_a_warning(tmp_path, tiny_csf):
    """A state_dict with a ``version: 2`` entry was "has no model weights: ...; top-level keys are 'intro.weight',
    ...", which contradicted itself."""
    from darkir.errors import DarkIRWarning

    torch.save(tiny_csf.state_dict() | {"version": 2, "note": "ours"}, tmp_path / "versioned.pt")
    with pytest.warns(DarkIRWarning, match=r"left out what holds no tensor: 'version' \(2\), 'note' \('ours'\)$"):
        assert _same_output(load_model(tmp_path / "versioned.pt"), tiny_csf)
    torch.save({"params": tiny_csf.state_dict() | {"step": 10}}, tmp_path / "nested.pt")
    with pytest.warns(DarkIRWarning, match=r"'step' \(10\)"):
        assert _same_output(load_model(tmp_path / "nested.pt"), tiny_csf)


def test_a_darkir_inside_a_larger_module_is_named_as_such(tmp_path, tiny_csf):
    """A Lightning module's weights beside a loss network's were "unusable model config: ... not a DarkIR
    checkpoint?"."""
    state = {f"model.{k}": v for k, v in tiny_csf.state_dict().items()} | {"criterion.weight": torch.zeros(1)}
    torch.save({"state_dict": state}, tmp_path / "lightning.ckpt")
    with pytest.raises(CheckpointError, match=r"its keys start with 'model\.' beside others") as error:
        load_model(tmp_path / "lightning.ckpt")
    assert "unusable model config" not in str(error.value)


@pytest.mark.parametrize("model", [torch.nn.Conv2d(3, 3, 1), None])
def test_saving_what_is_no_darkir_model_is_refused(tmp_path, model):
    """A Conv2d (or None) raised AttributeError: 'Conv2d' object has no attribute 'config'."""
    with pytest.raises(CheckpointError, match=r"save_checkpoint writes a DarkIR model with its config"):
        save_checkpoint(tmp_path / "c.pt", model)
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_holding_nothing_says_so(tmp_path):
    """It ended in "...; top-level keys are " and nothing after."""
    path = tmp_path / "empty.pt"
    torch.save({}, path)
    with pytest.raises(CheckpointError, match=r"has no model weights: .*; it holds nothing$"):
        load_model(path)


def test_unknown_weights_name():
    with pytest.raises(CheckpointError, match="neither a file nor a model name"):
        load_model("no-such-model-or-file.pt")


def test_weights_url_is_named_as_one_nothing_downloaded():
    with pytest.raises(CheckpointError, match="a URL: darkir downloads nothing; download the file"):
        load_model("https://github.com/cidautai/DarkIR/releases/download/v1/DarkIR_384.pt")


def test_convert_command_writes_safetensors_with_config(tmp_path, tiny_csf):
    from darkir.cli import main

    source = tmp_path / "official.pth"
    torch.save({"params": {f"module.{k}": v for k, v in tiny_csf.state_dict().items()}}, source)
    assert main(["convert", str(source), "-o", str(tmp_path / "clean.safetensors")]) == 0
    _, config, _ = read_checkpoint(tmp_path / "clean.safetensors")
    assert config == tiny_csf.config
    assert _same_output(load_model(tmp_path / "clean.safetensors"), tiny_csf)


def test_checkpoint_suffixes_are_read_in_any_case(tmp_path, tiny_csf):
    """``-o X.SAFETENSORS`` (a Windows habit) writes and reads back a safetensors file, as ``.safetensors`` does."""
    from darkir.cli import main

    source = tmp_path / "a.pt"
    save_checkpoint(source, tiny_csf)
    assert main(["convert", str(source), "-o", str(tmp_path / "B.SafeTensors")]) == 0
    assert (tmp_path / "B.SafeTensors").read_bytes()[8:9] == b"{"  # a safetensors header, not a torch zip
    assert _same_output(load_model(tmp_path / "B.SafeTensors"), tiny_csf)


def test_convert_official_writes_what_the_official_scripts_read(tmp_path, tiny_csf, capsys):
    # The official testing.py/inference.py read ckpt["params"] (keys without a module. prefix, which they add).
    from darkir.cli import main

    ours = save_checkpoint(tmp_path / "ours.pt", tiny_csf, step=3)
    assert main(["convert", str(ours), "-o", str(tmp_path / "official.pth"), "--official"]) == 0
    assert "in the official layout" in capsys.readouterr().out
    payload = torch.load(tmp_path / "official.pth", weights_only=True)
    assert list(payload) == ["params"] and list(payload["params"]) == list(tiny_csf.state_dict())
    assert all(torch.equal(payload["params"][k], v) for k, v in tiny_csf.state_dict().items())
    assert _same_output(load_model(tmp_path / "official.pth"), tiny_csf)
    assert main(["convert", str(ours), "-o", str(tmp_path / "official.safetensors"), "--official"]) == 2
    assert "an official checkpoint is written to a .pt or .pth file" in capsys.readouterr().err


@pytest.mark.parametrize("dilations", [(1, 2, 3), (1, 2)])
def test_convert_official_names_the_settings_the_weights_do_not_tell(tmp_path, dilations, capsys):
    # Dilations leave no trace in the tensors (every kernel is 3x3): an official file of a model with other dilations
    # loads as the reference's [1, 4, 9] (or not at all) unless its options say them, so convert says so.
    from darkir.cli import main

    model = randomize(build_model("darkir-w16", **TINY, dilations=dilations))
    ours = save_checkpoint(tmp_path / "ours.pt", model)
    assert main(["convert", str(ours), "-o", str(tmp_path / "official.pth"), "--official"]) == 0
    error = capsys.readouterr().err
    assert f"the network: section that loads this file must state dilations: {list(dilations)}" in error
    reference = save_checkpoint(tmp_path / "reference.pt", randomize(build_model("darkir-w16", **TINY)))
    assert main(["convert", str(reference), "-o", str(tmp_path / "reference.pth"), "--official"]) == 0
    assert "warning" not in capsys.readouterr().err


def _as_numpy1_pickle(path, target):
    """``path`` rewritten as numpy 1 pickles it (``numpy.core.multiarray``, not numpy 2's ``numpy._core``)."""
    import zipfile

    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            out.writestr(info, data)
    return target


@pytest.mark.parametrize("numpy_version", [2, 1])
def test_official_training_checkpoints_with_numpy_numbers_load(tmp_path, tiny_csf, numpy_version):
    # The official save_checkpoint stores the epoch's mean loss as a numpy float (np.mean of a list), with the
    # optimizer and scheduler states and DDP's module. prefix.
    import numpy as np

    model = {f"module.{k}": v for k, v in tiny_csf.state_dict().items()}
    optimizer = torch.optim.AdamW(tiny_csf.parameters(), lr=5e-4)
    payload = {
        "epoch": 3,
        "model_state_dict": model,
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": np.mean([0.1, 0.2]),
        "scheduler_state_dict": torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10).state_dict(),
        "history": np.array([0.3, 0.2], dtype=np.float32),
    }
    path = tmp_path / "official_train.pt"
    torch.save(payload, path)
    if numpy_version == 1:
        path = _as_numpy1_pickle(path, tmp_path / "official_train_numpy1.pt")
        assert b"numpy.core.multiarray" in path.read_bytes()
    _, _, loaded_payload = read_checkpoint(path)
    assert loaded_payload["loss"] == pytest.approx(0.15) and loaded_payload["history"].tolist() == pytest.approx(
        [0.3, 0.2]
    )
    loaded = load_model(path)
    assert loaded.config == tiny_csf.config
    assert _same_output(loaded, tiny_csf)


def test_numpy_objects_are_still_refused(tmp_path, tiny_csf):
    import numpy as np

    path = tmp_path / "objects.pt"
    torch.save({"state_dict": tiny_csf.state_dict(), "extra": np.array([{"a": 1}], dtype=object)}, path)
    with pytest.raises(CheckpointError, match=r"it holds pickled Python objects \(numpy data of dtype '\|O'\)"):
        read_checkpoint(path)
    for extra, kind in ((np.array(["text"]), "'<U4'"), (np.zeros(2, dtype=[("x", "f4")]), "'|V4'")):
        torch.save({"state_dict": tiny_csf.state_dict(), "extra": extra}, path)
        with pytest.raises(CheckpointError, match=rf"pickled Python objects \(numpy data of dtype {kind}\)"):
            read_checkpoint(path)


def test_a_config_that_does_not_fit_is_refused_before_its_model_is_built(tmp_path, tiny_csf):
    # A typo'd width of 100000 would need some 80 GB for the model alone: under a 6 GB address-space limit the
    # shapes are compared on the meta device first, so the error names the mismatch instead of failing to allocate.
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "bare.pt"
    torch.save(tiny_csf.state_dict(), path)
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        from darkir.errors import CheckpointError
        from darkir.models.factory import load_model
        try:
            load_model({str(path)!r}, config={{"width": 100000}})
        except CheckpointError as exc:
            print(exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "shape mismatch key(s): intro.weight: checkpoint (8, 3, 3, 3) vs model (100000, 3, 3, 3)" in result.stdout


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_stored_config_may_name_img_channels_as_options_files_do(tmp_path, tiny_csf, suffix):
    """A config copied from an options file's network: section was refused: "unknown model config key(s)
    'img_channels'", the name those files use."""
    import json

    from safetensors.torch import save_file

    config = dict(tiny_csf.config)
    config["img_channels"] = config.pop("img_channel")
    path = tmp_path / f"theirs{suffix}"
    if suffix == ".pt":
        torch.save({"params": tiny_csf.state_dict(), "config": config}, path)
    else:
        save_file(tiny_csf.state_dict(), str(path), metadata={"darkir_config": json.dumps(config)})
    loaded = load_model(path)
    assert loaded.config == tiny_csf.config and _same_output(loaded, tiny_csf)
