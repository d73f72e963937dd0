"""Checkpoint files: the permissions they are written with, files that are no checkpoint, empty and folder paths,
and the demo refusing bad weights (and ports) before it serves anything."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from darkir.checkpoint import read_checkpoint, save_checkpoint
from darkir.cli import main
from darkir.errors import CheckpointError, DarkIRError
from darkir.imageio import ImageReadError
from darkir.infer import Restorer
from darkir.models.factory import build_model
from darkir.models.weights import read_weights
from darkir.replacing import save_text
from darkir.weightfiles import load_weights_file
from tests.conftest import REPO


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Run with the usual umask 022, whatever the test runner's is."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The single ``darkir: error:`` line of ``darkir argv`` (exit 2, no traceback)."""
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("darkir: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# 8. Checkpoints are written with the permissions of any new file (or those of the file they replace).


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoints_get_the_umask_permissions(tmp_path, umask_022, suffix):
    path = save_checkpoint(tmp_path / f"model{suffix}", build_model({"width": 8}))
    assert _mode(path) == 0o644
    os.umask(0o027)
    again = save_checkpoint(tmp_path / f"other{suffix}", build_model({"width": 8}))
    assert _mode(again) == 0o640
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_replaced_checkpoint_keeps_its_permissions(tmp_path, umask_022, suffix):
    path = save_checkpoint(tmp_path / f"model{suffix}", build_model({"width": 8}))
    path.chmod(0o600)
    save_checkpoint(path, build_model({"width": 8}))
    assert _mode(path) == 0o600
    read_checkpoint(path)


def test_text_beside_a_checkpoint_gets_the_umask_permissions(tmp_path, umask_022):
    path = save_text(tmp_path / "options.yml", "a: 1\n")
    assert _mode(path) == 0o644
    path.chmod(0o640)
    save_text(path, "a: 2\n")
    assert _mode(path) == 0o640 and path.read_text() == "a: 2\n"


@pytest.mark.parametrize("official", [False, True])
def test_convert_keeps_a_file_made_at_its_output_while_it_ran(tmp_path, tiny_checkpoint, monkeypatch, capsys, official):
    """The output was checked before the weights were loaded, and then replaced whatever had appeared there meanwhile
    (a parallel job's file), without --overwrite."""
    import darkir.models

    output = tmp_path / ("out.pt" if official else "out.safetensors")
    create = darkir.models.create_model

    def create_while_another_writes(*args: object, **kwargs: object) -> torch.nn.Module:
        output.write_text("another job's file\n")
        return create(*args, **kwargs)

    monkeypatch.setattr(darkir.models, "create_model", create_while_another_writes)
    argv = ["convert", str(tiny_checkpoint), "-o", str(output), *(["--official"] if official else [])]
    assert main(argv) == 2
    assert f"{output} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert output.read_text() == "another job's file\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == [output.name]  # no temporary file left
    assert main([*argv, "--overwrite"]) == 0
    assert read_checkpoint(output)[0].keys() == read_checkpoint(tiny_checkpoint)[0].keys()


def test_convert_to_safetensors_is_readable_by_others(tmp_path, umask_022, tiny_checkpoint, capsys):
    assert main(["convert", str(tiny_checkpoint), "-o", str(tmp_path / "a.safetensors")]) == 0
    assert _mode(tmp_path / "a.safetensors") == 0o644


# 10. Files that are no pickle are not said to hold pickled Python objects.


def _png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["png", "yaml"])
def test_images_and_yaml_are_not_pytorch_weights(tmp_path, capsys, monkeypatch, kind):
    path = _png(tmp_path / "photo.png") if kind == "png" else REPO / "options" / "train" / "tiny_csf.yml"
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {path}: not a PyTorch weights file")
    assert "pickled" not in message and "\n" not in message
    assert ("PNG image" in message) == (kind == "png")
    assert info.value.__cause__ is None  # not torch's weights_only advice either
    with pytest.raises(CheckpointError, match=r": not a PyTorch weights file.*; expected X$"):
        load_weights_file(path, "expected X")
    with pytest.raises(CheckpointError, match="not a PyTorch weights file"):
        Restorer.from_pretrained(str(path), device="cpu")
    commands = [["convert", str(path), "-o", str(tmp_path / "out.pt")]]
    if importlib.util.find_spec("gradio") is not None:
        monkeypatch.setattr("darkir.demo.build_app", lambda engine: pytest.fail("the demo was served"))
        commands.append(["demo", "--weights", str(path), "--device", "cpu"])
    for argv in commands:
        line = _one_line_error(capsys, *argv)
        assert f"{path}: not a PyTorch weights file" in line and "pickled" not in line


def test_a_safetensors_file_named_pt_is_said_to_be_safetensors(tmp_path):
    stored = save_checkpoint(tmp_path / "model.safetensors", build_model({"width": 8}))
    misnamed = stored.rename(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"model.pt: not a PyTorch weights file \(it is a safetensors file"):
        read_checkpoint(misnamed)


def test_real_pickles_with_objects_are_still_refused(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "when": range(3)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="it holds pickled Python objects"):
        read_checkpoint(legacy)


@pytest.mark.parametrize("protocol", [2, 3])
def test_torchs_legacy_format_of_any_pickle_protocol_it_reads_still_loads(tmp_path, protocol, recwarn):
    """A plain pickle is now told apart from torch's legacy format by its first bytes; a legacy file of protocol 3
    (not only 2) is still read, without torch's warning about its protocol."""
    state = build_model({"width": 8}).state_dict()
    path = tmp_path / "legacy.pt"
    torch.save({"params": state}, path, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    loaded, _, _ = read_checkpoint(path)
    assert all(torch.equal(loaded[key], value) for key, value in state.items()) and not recwarn.list


@pytest.mark.parametrize("protocol", [4, 5])
def test_torchs_legacy_format_of_protocol_4_or_5_is_named_with_the_way_to_save_it_again(tmp_path, protocol):
    """torch's weights-only loader cannot read these (their frames); they were said to hold Python objects."""
    path = tmp_path / "legacy.pt"
    torch.save({"x": torch.zeros(1)}, path, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert f"legacy format pickled with protocol {protocol}" in message and "weights_only=False" in message
    assert "Python objects" not in message


@pytest.mark.parametrize("protocol", [4, 5])
def test_torchs_zip_format_of_protocol_4_or_5_is_named_with_the_way_to_save_it_again(tmp_path, protocol):
    """The same refusal for torch's usual (zip) format saved with ``pickle_protocol=4`` or ``5``: it was said to hold
    pickled Python objects, "so darkir does not load it, for safety", of a file of tensors alone."""
    path = tmp_path / "weights.pt"
    torch.save({"x": torch.zeros(1)}, path, pickle_protocol=protocol)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert f"it is pickled with protocol {protocol}, which torch's weights-only loader cannot read" in message
    assert "weights_only=False" in message and "Python objects" not in message


@pytest.mark.parametrize("member", ["m.pt", "models/m.pt"])
def test_a_zip_download_holding_the_weights_says_to_extract_them(tmp_path, member):
    """A model downloaded as a zip of its .pt showed torch's internals ("[enforce fail at inline_container.cc:180]
    ... file in archive is not in a subdirectory", or "Expected hasRecord(\"version\") ... report an enhancement
    request to PyTorch")."""
    import zipfile

    torch.save({"x": torch.zeros(1)}, tmp_path / "m.pt")
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as archive:
        archive.write(tmp_path / "m.pt", member)
    expected = f"a zip archive, not a PyTorch weights file (it holds {member}: extract the weights file from it)"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        read_checkpoint(tmp_path / "download.zip")


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_of_other_data_is_said_to_be_no_pytorch_file_without_torchs_warning(tmp_path, protocol, recwarn):
    """A pickle that torch did not write was said to hold Python objects (protocol 4, after torch's warning asking to
    file an issue) or to have an invalid magic number (protocol 2)."""
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3], "b": "x"}, protocol=protocol))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert (
        str(info.value)
        == f"cannot read checkpoint {path}: not a PyTorch weights file (it is a Python pickle of other data)"
    )
    assert not recwarn.list


# 11. Empty names and folders are called so.


@pytest.mark.parametrize("empty", ["", "  "])
def test_empty_checkpoint_names_say_they_are_empty(empty):
    with pytest.raises(CheckpointError, match="empty") as info:
        Restorer.from_pretrained(empty)
    assert "not found" not in str(info.value)
    for read in (read_checkpoint, read_weights):
        with pytest.raises(CheckpointError, match="empty") as info:
            read(empty)
        assert "not found: ." not in str(info.value)


def test_a_folder_is_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=rf"^checkpoint {tmp_path} is a folder, not a checkpoint file$"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="is a folder"):
        Restorer.from_pretrained(tmp_path)


def test_restoring_a_folder_or_an_empty_path_says_what_it_is(tmp_path, tiny_checkpoint):
    restorer = Restorer.from_pretrained(tiny_checkpoint, device="cpu")
    with pytest.raises(ImageReadError, match=rf"^{tmp_path} is a folder; .*darkir restore") as info:
        restorer(tmp_path)
    assert "no such file" not in str(info.value)
    with pytest.raises(ImageReadError, match="the image path is empty"):
        restorer("")


# 9. The demo checks its weights, and --port, before it serves.


def test_demo_refuses_bad_weights_before_serving(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from darkir import demo

    def served(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo was served")

    monkeypatch.setattr(demo, "build_app", served)
    with pytest.raises(CheckpointError, match="weights not found: '/nonexistent/nope.pt'"):
        demo.launch(weights="/nonexistent/nope.pt", device="cpu")
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights")
    with pytest.raises(CheckpointError, match=r"notes.pt: not a PyTorch weights file$"):
        demo.launch(weights=str(notes), device="cpu")


def test_demo_command_refuses_missing_weights_with_one_line(capsys, monkeypatch):
    pytest.importorskip("gradio")
    monkeypatch.setattr("darkir.demo.build_app", lambda engine: pytest.fail("the demo was served"))
    line = _one_line_error(capsys, "demo", "--weights", "/nonexistent/nope.pt", "--device", "cpu")
    assert "weights not found: '/nonexistent/nope.pt'" in line


@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_demo_port_is_checked_by_the_parser(capsys, monkeypatch, port):
    monkeypatch.setattr("darkir.demo.launch", lambda **kwargs: pytest.fail("the demo was started"))
    with pytest.raises(SystemExit) as info:
        main(["demo", "--port", port])
    assert info.value.code == 2
    assert f"argument --port: expected a port number from 1 to 65535, got {port!r}" in capsys.readouterr().err


def test_demo_engine_load_all_loads_every_variant(tiny_checkpoint):
    pytest.importorskip("gradio")
    from darkir.demo import DemoEngine

    engine = DemoEngine({"tiny": str(tiny_checkpoint)}, device="cpu")
    try:
        engine.load_all()
        assert isinstance(engine._restorers["tiny"], Restorer)
    finally:
        engine.close()
    with pytest.raises(DarkIRError):
        DemoEngine({})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"width": 10**9}, r"no model can be made of its config \(Storage size calculation overflowed"),
        ({"use_csf": "no"}, "use_csf: must be true or false, got 'no'"),
    ],
)
def test_a_checkpoint_whose_stored_config_cannot_be_built_is_a_checkpoint_error(tmp_path, change, expected):
    """A config past what torch can allocate raised a bare RuntimeError; a switch stored as text built the wrong
    model (any text is truthy)."""
    from darkir.errors import CheckpointError
    from darkir.models.factory import build_model, load_model

    model = build_model("darkir-w16")
    path = tmp_path / "odd.pt"
    torch.save({"state_dict": model.state_dict(), "config": {**model.config, **change}}, path)
    with pytest.raises(CheckpointError, match=expected):
        load_model(path)


def test_a_checkpoint_whose_bytes_were_altered_is_refused_as_damaged(tmp_path):
    """torch.load does not check the archive's checksums: a damaged copy loaded altered weights without a word."""
    import struct
    import zipfile

    from darkir.errors import CheckpointError
    from darkir.models.factory import build_model, load_model

    state = build_model("darkir-w16").state_dict()
    path = tmp_path / "copy.pth"
    torch.save({"params": state}, path)
    target = state["intro.weight"].numpy().tobytes()
    with zipfile.ZipFile(path) as archive:
        member = next(info for info in archive.infolist() if archive.read(info) == target)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, member.header_offset + 26)  # its local header's
    start = member.header_offset + 30 + name_length + extra_length  # the member's data (stored uncompressed)
    data[start : start + 8] = struct.pack("<2f", 0.5, 0.5)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"copy\.pth.*it is damaged: .* fails its checksum"):
        load_model(path)


def test_a_damaged_checkpoint_names_its_record_not_the_folder_torch_roots_its_archive_in(tmp_path):
    """torch roots a checkpoint's archive in a folder named after the file it was saved to (a checkpoint's own
    temporary file: ``.last.pt.14986/data/451``), which the message named."""
    import struct
    import zipfile

    from darkir.errors import CheckpointError
    from darkir.models.factory import build_model, load_model

    saved, path = tmp_path / ".last.pt.14986", tmp_path / "last.pt"
    torch.save({"params": build_model("darkir-w16").state_dict()}, saved)
    with zipfile.ZipFile(saved) as archive:
        member = next(info for info in archive.infolist() if info.filename.endswith("/data/0"))
    data = bytearray(saved.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, member.header_offset + 26)
    start = member.header_offset + 30 + name_length + extra_length
    data[start : start + 4] = b"\xff\xff\xff\xff"  # its CRC kept: the record no longer matches it
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"last\.pt.*it is damaged: its data/0 fails its checksum"):
        load_model(path)


def test_a_checkpoint_saved_without_checksums_still_loads(tmp_path):
    """torch can save archives with no CRCs (recorded as 0): not damage."""
    from darkir.models.factory import build_model, load_model

    model = build_model("darkir-w16")
    path = tmp_path / "nocrc.pth"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"params": model.state_dict()}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    loaded = load_model(path)
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in model.state_dict().items())


def test_safetensors_with_json_nested_too_deeply_is_a_checkpoint_error(tmp_path):
    """JSON nested 100000 deep, in the config metadata or as the header itself, is refused as unreadable (it was
    an unexpected RecursionError, also on the error path that explains a damaged file)."""
    from safetensors.torch import save_file

    deep = "[" * 100000 + "]" * 100000
    save_file({"w": torch.zeros(2)}, str(tmp_path / "config.safetensors"), metadata={"darkir_config": deep})
    with pytest.raises(CheckpointError, match=r"config\.safetensors: its 'darkir_config' metadata is not valid JSON"):
        read_checkpoint(tmp_path / "config.safetensors")
    header = deep.encode()
    (tmp_path / "header.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(CheckpointError, match=r"cannot read safetensors file .*header\.safetensors"):
        read_checkpoint(tmp_path / "header.safetensors")


def test_a_checkpoint_of_a_legal_long_name_is_written(tmp_path):
    """A name of 250 bytes is legal; its temporary file's (``.<name>.<pid>.tmp``) would not be, and is shortened."""
    model = build_model("darkir-w32", width=8, enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1))
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / ("m" * (250 - len(suffix)) + suffix)
        assert save_checkpoint(path, model) == path
        assert read_checkpoint(path)[0].keys() == model.state_dict().keys()
    text = tmp_path / ("t" * 246 + ".yml")
    save_text(text, "a: 1\n")
    assert text.read_text() == "a: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.fill_(float("inf")), r"holds NaN or infinite weights \(intro\.weight\): the file is damaged"),
        (lambda t: t.to(torch.int8), r"holds weights that are not real numbers: intro\.weight \(torch\.int8\)"),
        (lambda t: t.bool(), r"holds weights that are not real numbers: intro\.weight \(torch\.bool\)"),
        (lambda t: t.to(torch.complex64), r"not real numbers: intro\.weight \(torch\.complex64\)"),
    ],
    ids=["inf", "int8", "bool", "complex"],
)
def test_weights_that_are_not_finite_real_numbers_are_refused_as_they_load(tmp_path, change, message):
    """Such weights loaded (cast without a word, or with torch's warning about the imaginary part) and then failed on
    every image, blamed on bf16 overflow; they are refused once, naming the tensor."""
    from safetensors.torch import save_file

    from darkir.models.factory import load_model

    model = build_model("darkir-w32", width=8, enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state["intro.weight"] = change(state["intro.weight"])
    save_file(state, str(tmp_path / "w.safetensors"), metadata={"darkir_config": json.dumps(dict(model.config))})
    with pytest.raises(CheckpointError, match=message):
        load_model(tmp_path / "w.safetensors")


def test_weights_of_an_8_bit_float_type_load_as_before(tmp_path):
    """torch.isfinite has no kernel for float8_e4m3fn: the finiteness check failed on such a checkpoint, which had
    loaded."""
    from darkir.models.factory import load_model

    model = build_model("darkir-w32", width=8, enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1))
    state = {key: value.to(torch.float8_e4m3fn) for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "config": dict(model.config)}, tmp_path / "f8.pt")
    loaded = load_model(tmp_path / "f8.pt")
    assert torch.equal(loaded.intro.weight, state["intro.weight"].float())


def test_a_safetensors_file_whose_header_length_starts_with_a_pickles_byte_is_read_as_safetensors(tmp_path):
    """One safetensors file in 256 (a JSON header of 128 bytes plus a multiple of 256) starts with the byte 0x80 a
    pickle starts with: it was refused as "a Python pickle of other data" (found by an outside test, as LPIPS
    heads)."""
    from safetensors.torch import save_file

    path = tmp_path / "heads.safetensors"
    tensors = {f"key{index}": torch.full((2,), float(index)) for index in range(11)}
    save_file(tensors, path)
    assert path.read_bytes()[:1] == b"\x80"
    loaded = load_weights_file(path, "expected LPIPS heads")
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[key], tensors[key]) for key in tensors)
