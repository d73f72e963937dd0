"""Wrong inputs to the Python API and the input listing: DarkIRErrors that name them, never a raw torch/numpy error,
and no silent guesses (an empty path, inputs inside the output folder, bytes taken as [0, 1] floats)."""

from __future__ import annotations

import re
import warnings

import cv2
import numpy as np
import pytest
import torch

from darkir import Restorer, create_model
from darkir.cli import main
from darkir.errors import DarkIRError, DarkIRWarning
from darkir.infer.jobs import plan_jobs
from darkir.memory_sizes import format_memory, parse_memory
from tests.conftest import TINY, randomize


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return randomize(create_model("darkir-w32", **TINY), seed=5)


@pytest.fixture(scope="module")
def restorer(model) -> Restorer:
    return Restorer(model, device="cpu", precision="fp32", tile=0)


def _photo(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (np.random.default_rng(seed).random((16, 16, 3)) * 60).astype(np.uint8))
    return path


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(0, 3, 8, 8), r"\(N, 3, H, W\) tensor, non-empty, got shape \(0, 3, 8, 8\)"),
        (torch.rand(1, 3, 0, 8), r"non-empty, got shape \(1, 3, 0, 8\)"),
    ],
)
def test_empty_tensors_are_named_before_their_values_are_read(restorer, bad, message):
    with pytest.raises(DarkIRError, match=message):
        restorer(bad)


@pytest.mark.parametrize("channels", [1, 4])
def test_restore_tensor_names_a_wrong_channel_count(restorer, channels):
    with pytest.raises(DarkIRError, match=rf"\(N, 3, H, W\) tensor, non-empty, got shape \(1, {channels}, 8, 8\)"):
        restorer.restore_tensor(torch.rand(1, channels, 8, 8))
    with pytest.raises(DarkIRError, match="float tensor"):
        restorer.restore_tensor(torch.zeros(1, 3, 8, 8, dtype=torch.int64))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_restore_tensor_blames_a_nan_input_on_the_input(restorer, value):
    """It said the weights may be broken."""
    x = torch.rand(1, 3, 16, 16)
    x[0, 1, 3, 4] = value
    with pytest.raises(DarkIRError, match=r"^the input has NaN or infinite values$"):
        restorer.restore_tensor(x)


def test_tensors_come_back_in_the_layout_given(restorer):
    """A contiguous batch came back channels_last (the model's layout): ``.view`` on it failed."""
    x = torch.rand(2, 3, 16, 16)
    assert restorer(x).is_contiguous() and restorer.restore_tensor(x).is_contiguous()
    restorer(x).view(-1)
    last = x.contiguous(memory_format=torch.channels_last)
    assert restorer(last).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(restorer(last), restorer(x)) and torch.equal(
        restorer.restore_tensor(last), restorer.restore_tensor(x)
    )


def test_float64_tensors_are_computed_in_float32(restorer):
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    out = restorer.restore_tensor(x)
    assert out.dtype == torch.float32 and torch.equal(out, restorer.restore_tensor(x.float()))
    called = restorer(x)
    assert called.dtype == torch.float64 and torch.equal(called, restorer(x.float()).double())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((8, 8, 3), object), "float array with values in \\[0, 1\\], got dtype object"),
        (np.zeros((8, 8, 3), np.uint8), "got dtype uint8; pass it to restorer\\(array\\)"),
        (np.zeros((8, 8, 3), np.uint16), "got dtype uint16"),
        (np.full((8, 8, 3), 7.0, np.float32), r"values in \[0, 1\]; this array spans \[7, 7\]"),
        (np.full((8, 8, 3), -0.1, np.float64), r"spans \[-0.1, -0.1\]"),
    ],
)
def test_restore_array_refuses_what_is_not_float_in_0_1(restorer, bad, message):
    with pytest.raises(DarkIRError, match=message):
        restorer.restore_array(bad)


def test_restore_array_takes_any_float_in_range_and_rounding_noise(restorer):
    rgb = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    expected = restorer.restore_array(rgb)
    assert np.array_equal(restorer.restore_array(rgb.astype(np.float64)), restorer.restore_array(rgb))
    noisy = rgb.copy()
    noisy[0, 0] = [1.001, -0.001, 0.5]  # within half an 8-bit step: rounding noise, taken as it is
    assert restorer.restore_array(noisy).shape == expected.shape


@pytest.mark.parametrize("shape", [(16, 16, 3), (16, 16), (16, 16, 4)])
def test_float16_arrays_come_back_as_float16(restorer, shape):
    """A float16 array is a float array in [0, 1] as the README promises: restored as its float32 values are."""
    half = np.random.default_rng(2).random(shape).astype(np.float16)
    restored = restorer(half)
    assert restored.dtype == np.float16 and restored.shape == shape
    assert np.array_equal(restored, restorer(half.astype(np.float32)).astype(np.float16))


def test_arrays_and_tensors_take_the_same_rounding_noise_as_restore_array(restorer):
    """A float a hair above 1 (rounding) is taken by every input path, as restore_array takes it; the call paths
    refused it with a message showing a range that looked within [0, 1] ('spans [0.5, 1]')."""
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    rgb[0, 0, 0] = np.nextafter(np.float32(1), np.float32(2))
    assert restorer(rgb).shape == rgb.shape and restorer.restore_array(rgb).shape == rgb.shape
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    assert restorer(x).shape == x.shape
    rgb[0, 0, 0] = 1.01
    with pytest.raises(DarkIRError, match=r"this one spans \[0\.5, 1\.01\]"):
        restorer(rgb)
    with pytest.raises(DarkIRError, match=r"this one spans \[0\.5, 1\.01\]"):
        restorer(torch.from_numpy(rgb).permute(2, 0, 1)[None])


def test_integer_arrays_through_the_call_still_convert_by_bit_depth(restorer):
    rgb = (np.random.default_rng(2).random((16, 16, 3)) * 60).astype(np.uint8)
    out = restorer(rgb)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    deep = restorer(rgb.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == rgb.shape


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_memory": float("nan")}, "max_memory: memory size nan must be a finite number"),
        ({"max_memory": float("inf")}, "max_memory: memory size inf must be a finite number"),
        ({"max_memory": True}, "max_memory must be a number of bytes or a memory size"),
        ({"max_memory": [1]}, "max_memory must be a number of bytes"),
        ({"tile": 64, "overlap": "8"}, "overlap must be a whole number of pixels or None, got '8'"),
        ({"tile": 64, "overlap": 8.0}, "overlap must be a whole number of pixels"),
    ],
)
def test_restorer_settings_of_the_wrong_kind_are_named(model, settings, message):
    with pytest.raises(DarkIRError, match=message):
        Restorer(model, device="cpu", **settings)


def test_a_numpy_integer_overlap_is_taken(model):
    assert Restorer(model, device="cpu", tile=64, overlap=np.int64(8)).overlap == 8


def test_restorer_without_a_model_is_named():
    with pytest.raises(DarkIRError, match=r"model must be a torch.nn.Module .*got NoneType"):
        Restorer(None)


@pytest.mark.parametrize(("text", "size"), [("1e9", 1e9), ("2.5e3MB", 2.5e9), (".5GB", 5e8), ("3.", 3), (1e9, 1e9)])
def test_memory_sizes_in_scientific_notation(text, size):
    assert parse_memory(text) == int(size)


@pytest.mark.parametrize(("text", "size"), [("1TB", 1e12), ("2 TiB", 2 * 2**40), ("+3GB", 3e9)])
def test_memory_sizes_in_terabytes_and_with_a_sign(text, size):
    """ "1TB" was "cannot read memory size"; so was "-1", which an integer -1 calls a size under 1 byte."""
    assert parse_memory(text) == int(size)
    with pytest.raises(DarkIRError, match="memory size '-1' must be a finite number of bytes of at least 1"):
        parse_memory("-1")


@pytest.mark.parametrize("number", [np.int64(10**9), np.float32(1e9), np.uint32(10**9)])
def test_memory_sizes_take_numpy_numbers(number):
    assert parse_memory(number) == int(number)


@pytest.mark.parametrize(("size", "text"), [(1, "1 byte"), (512, "512 bytes"), (2600, "3 KB"), (6.4e8, "640 MB")])
def test_small_memory_sizes_are_shown_in_bytes_or_kb(size, text):
    assert format_memory(size) == text
    assert format_memory(2.75e9) == "2.75 GB"
    assert format_memory(1.2e13) == "12.00 TB"  # was "12000.00 GB"


def test_max_memory_of_one_byte_is_reported_as_one_byte(tmp_path, tiny_checkpoint, capsys):
    photo = _photo(tmp_path / "a.png")
    command = ["restore", str(photo), "-o", str(tmp_path / "out"), "--weights", str(tiny_checkpoint), "-q"]
    assert main([*command, "--max-memory", "1"]) == 2
    err = capsys.readouterr().err
    assert "--max-memory 1 byte is less than" in err and "--max-memory 0 MB" not in err
    assert main([*command, "--max-memory", "1e12"]) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["restore", "", "-o", "out"], "empty input path: an unset variable?"),
        (["restore", "a.png", "", "-o", "out"], r"empty input path \(argument 2 of 2\)"),
        (["restore", "a.png", "-o", ""], "-o is empty"),
        (["restore", "a.png", "-o", "out", "-p", ""], "-p is empty"),
        (["video", "", "-o", "out.mp4"], "empty input path"),
        (["video", "clip.mp4", "-o", ""], "-o is empty"),
        # synth took every image under the current folder (the home folder, run from there) as its photos
        (["synth", "--source", "", "-o", "out"], "--source is empty"),
        (["synth", "--source", "sub", "-o", ""], "-o is empty"),
        (["train", "-p", ""], "-p is empty"),
    ],
)
def test_an_empty_path_is_an_error_not_the_current_folder(tmp_path, monkeypatch, capsys, arguments, message):
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "sub" / "b.png")
    assert main([*arguments, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("darkir: error:") and len(err.splitlines()) == 1
    assert re.search(message, err)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == ["a.png", "sub/b.png"]


def test_an_empty_split_root_is_an_error_not_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["split", "", "-o", str(tmp_path / "m.json")]) == 2
    assert "ROOT is empty" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_an_empty_weights_path_is_named(tmp_path, capsys):
    photo = _photo(tmp_path / "a.png")
    assert main(["restore", str(photo), "-o", str(tmp_path / "out"), "--weights", "", "-q"]) == 2
    assert "--weights is empty" in capsys.readouterr().err


def test_plan_jobs_refuses_an_empty_input(tmp_path):
    with pytest.raises(DarkIRError, match=r"empty input path \(input 1 of 1\)"):
        plan_jobs([""], tmp_path / "out")


def test_inputs_left_out_inside_the_output_folder_are_said(tmp_path, tiny_checkpoint, capsys):
    root = tmp_path / "r" / "in"
    _photo(root / "1.png")
    for index in range(2, 7):
        _photo(root / "sub" / f"{index}.png", seed=index)
    command = ["--weights", str(tiny_checkpoint), "-q", "--tile", "0"]
    assert main(["restore", str(root), "-o", str(root / "sub"), *command]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("darkir: warning:")]
    assert len(warning) == 1 and "left out 5 files inside the output folder" in warning[0]
    assert f"{root / 'sub' / '2.png'}" in warning[0] and "and 2 more" in warning[0]
    assert "restored 1," in captured.out
    assert main(["restore", str(root / "**" / "*.png"), "-o", str(root / "sub"), *command, "--overwrite"]) == 0
    assert "left out 6 files" in capsys.readouterr().err  # 1.png restored into sub/ by the first run


def test_images_in_formats_darkir_does_not_read_are_named(tmp_path):
    """A GIF or HEIC in a folder (or matched by a glob) is left out with one warning naming it, not silently; other
    files (notes, sidecars) are left out silently as before."""
    _photo(tmp_path / "in" / "a.png")
    for name in ("b.gif", "sub/c.HEIC", "notes.txt", "a.png.xmp"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"x")
    for inputs in ([str(tmp_path / "in")], [str(tmp_path / "in" / "**" / "*")]):
        with pytest.warns(DarkIRWarning) as caught:
            jobs, problems = plan_jobs(inputs, tmp_path / "out")
        assert [job.source.name for job in jobs] == ["a.png"] and not problems
        assert len(caught) == 1
        message = str(caught[0].message)
        assert "left out 2 files in formats darkir does not read (.gif, .heic: " in message
        assert str(tmp_path / "in" / "b.gif") in message and "c.HEIC" in message and "notes" not in message


def test_an_unknown_users_home_is_named(tmp_path, capsys):
    missing = "~darkir-no-such-user-4711/x.png"
    assert main(["restore", missing, "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: cannot expand ~darkir-no-such-user-4711: no such user" in err
    assert "RuntimeError" not in err


def test_a_truncated_pil_image_is_named_not_a_raw_os_error(restorer, tmp_path):
    """Image.open decodes lazily: a cut-off file failed inside restorer(image) with Pillow's bare OSError."""
    from PIL import Image

    cv2.imwrite(str(tmp_path / "whole.png"), (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with Image.open(tmp_path / "cut.png") as image, pytest.raises(DarkIRError, match=r"cut\.png: cannot decode it"):
        restorer(image)


def test_numpy_numbers_are_taken_for_tile_and_exposure(model):
    """A NumPy integer tile and a float32 exposure (what an array's statistics give) were refused, while a NumPy
    overlap and float64 exposure were taken."""
    restorer = Restorer(model, device="cpu", tile=np.int64(64), exposure=np.float32(0.5))
    assert (restorer.tile, type(restorer.tile), restorer.exposure) == (64, int, 0.5)
    assert restorer.with_exposure(np.float32(-1)).exposure == -1.0
    with pytest.raises(DarkIRError, match="exposure must be a number of EV"):
        Restorer(model, device="cpu", exposure=np.bool_(True))


@pytest.mark.parametrize("call", ["restore_array", "__call__", "restore_tensor"])
def test_warnings_point_at_the_callers_line(model, call):
    """A tiling warning was shown at a line of torch's decorator (``torch/utils/_contextlib.py``), not the caller's."""
    small_tiles = Restorer(model, device="cpu", precision="fp32", tile=64)
    image = np.random.default_rng(3).random((100, 100, 3)).astype(np.float32)
    argument = torch.from_numpy(image).permute(2, 0, 1)[None] if call == "restore_tensor" else image
    with pytest.warns(DarkIRWarning, match="restoring in 64 px tiles") as record:
        getattr(small_tiles, call)(argument)
    assert [warning.filename for warning in record] == [__file__]


def test_a_model_of_other_than_three_channels_restores_tensors_and_refuses_images(tmp_path, capsys):
    """A 1-channel model loaded and then failed on each image ("expected a (N, 1, H, W) tensor ... got shape (1, 3,
    30, 40)"), even on gray ones; ``darkir restore`` said so once per file."""
    from darkir.checkpoint import save_checkpoint

    model = randomize(create_model("darkir-w32", **{**TINY, "img_channel": 1}), seed=1).eval()
    restorer = Restorer(model, device="cpu", precision="fp32")
    assert restorer.restore_tensor(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    refusal = "this model takes 1-channel images (img_channel 1); images and videos are restored as RGB"
    for image in (np.zeros((16, 16), np.uint8), np.zeros((16, 16, 3), np.float32), torch.rand(1, 3, 16, 16)):
        with pytest.raises(DarkIRError, match=re.escape(refusal)):
            restorer(image)
    save_checkpoint(tmp_path / "gray.safetensors", model)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((16, 16), 20, np.uint8))
    weights = str(tmp_path / "gray.safetensors")
    assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--weights", weights, "-q"]) == 2
    assert refusal in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_file_too_large_for_max_memory_is_refused_before_it_is_decoded(tmp_path, model, monkeypatch):
    """``restorer(path)`` decoded the whole file (an 8000x6000 PNG took 1.5 GB and 12 s under max_memory 400MB) before
    its plan refused it, and the refusal did not name the file; ``darkir restore`` refuses from the header."""
    import darkir.imageio

    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((600, 800, 3), np.uint8))
    restorer = Restorer(model, device="cpu", precision="fp32")

    def no_plan(height: int, width: int) -> None:
        raise DarkIRError(f"a {width}x{height} image does not fit max_memory")

    monkeypatch.setattr(restorer, "plan_for", no_plan)
    monkeypatch.setattr(darkir.imageio, "_pixels", lambda *args: pytest.fail("the image was decoded"))
    refusal = f"{tmp_path / 'big.png'}: a 800x600 image does not fit max_memory; not decoded"
    with pytest.raises(DarkIRError, match=re.escape(refusal)):
        restorer(tmp_path / "big.png")


class _Pair(torch.nn.Module):
    """A module that returns two tensors, as a model with a side output does."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, x]


@pytest.mark.parametrize(
    ("module", "got"),
    [
        (torch.nn.Conv2d(3, 4, 1), r"shape \(1, 4, 24, 32\)"),
        (torch.nn.Conv2d(3, 3, 3), r"shape \(1, 3, 22, 30\)"),
        (_Pair(), "a list"),
    ],
    ids=["channels", "size", "not-a-tensor"],
)
def test_a_module_that_returns_no_image_of_the_inputs_shape_is_named(module, got):
    """A module of another kind was accepted, and its output went back as the result: an RGB array came back with 5
    channels, or 2 pixels smaller, or numpy's and Python's errors came out."""
    with pytest.raises(DarkIRError, match=f"the model returned {got} for an input of shape \\(1, 3, 24, 32\\)"):
        Restorer(module, device="cpu", precision="fp32")(np.zeros((24, 32, 3), np.uint8))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda r: r.plan_for(0, 0), "height"),
        (lambda r: r.plan_for(100, -1), "width"),
        (lambda r: r.plan_for(100, 100, -1), "batch"),
        (lambda r: r.plan_for(100, 100, 1, 0), "held"),
        (lambda r: r.plan_for("a", 1), "height"),
        (lambda r: r.tiles_for(None, 3), "height"),
    ],
)
def test_plan_for_refuses_sizes_and_counts_that_are_none(model, call, name):
    """Nonsense sizes got a "whole image" plan (a negative batch a smaller estimate); a string a raw TypeError."""
    with pytest.raises(DarkIRError, match=f"{name} must be a whole number of at least 1"):
        call(Restorer(model, device="cpu", tile="auto"))
    assert Restorer(model, device="cpu", tile="auto").plan_for(np.int64(64), 64).whole(64, 64)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: torch.empty(1, 3, 8, 8, device="meta"), "expected a dense tensor of values, got a meta tensor"),
        (lambda: torch.rand(1, 3, 8, 8).to_sparse(), "expected a dense tensor of values, got a sparse_coo tensor"),
        (lambda: np.ma.masked_array(np.zeros((8, 8), np.uint8)), r"a masked array: its mask would be ignored"),
    ],
    ids=["meta", "sparse", "masked"],
)
def test_inputs_without_plain_values_are_named(model, make, message):
    """Meta and sparse tensors raised torch's errors; a masked array was restored with its mask ignored."""
    with pytest.raises(DarkIRError, match=message):
        Restorer(model, device="cpu")(make())


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_a_matrix_is_restored_as_an_array_and_a_meta_model_is_refused(model):
    """np.matrix raised numpy's "shape too large to be a matrix"; a model on the meta device torch's errors."""
    restorer = Restorer(model, device="cpu", precision="fp32")
    gray = np.random.default_rng(0).integers(0, 60, (8, 8), dtype=np.uint8)
    restored = restorer(np.matrix(gray))
    assert type(restored) is np.ndarray and np.array_equal(restored, restorer(gray))
    with pytest.raises(DarkIRError, match="the model's weights are on the meta device"):
        Restorer(create_model("darkir-w32", **TINY).to("meta"), device="cpu")


def test_a_read_only_array_is_restored_without_torchs_warning(model):
    """``restore_array`` of a read-only float32 array (``np.load(mmap_mode="r")``, ``np.frombuffer``) let torch's
    "The given NumPy array is not writable" warning out."""
    rgb = np.full((16, 16, 3), 0.2, np.float32)
    rgb.flags.writeable = False
    restorer = Restorer(model, device="cpu", precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = restorer.restore_array(rgb)
    assert np.array_equal(restored, restorer.restore_array(rgb.copy()))
