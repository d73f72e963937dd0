"""The Python API: ``from darkir import Restorer``; restoring what users have gives what ``darkir restore`` gives."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from darkir import Restorer, create_model
from darkir.cli import main
from darkir.errors import DarkIRError
from darkir.imageio import ImageReadError
from darkir.runtime import resolve_precision


@pytest.fixture(scope="module")
def default_restorer() -> Restorer:
    return Restorer.from_pretrained("darkir-csf-w32-synth", device="cpu")


@pytest.fixture(scope="module")
def tiny_restorer(tiny_checkpoint) -> Restorer:
    return Restorer.from_pretrained(str(tiny_checkpoint), device="cpu", tile=64)


def _dark(shape, dtype=np.uint8, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = {np.uint8: 70, np.uint16: 18000}[dtype]
    return rng.integers(0, top, shape).astype(dtype)


def test_api_equals_darkir_restore_for_a_path_a_pil_image_and_a_uint8_array(default_restorer, tmp_path):
    rgb = _dark((48, 760, 3))  # wider than the default tile: restored in tiles, as darkir restore does
    photo = tmp_path / "in" / "night.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert main(["restore", str(photo), "-o", str(tmp_path / "out"), "--device", "cpu", "-q"]) == 0
    expected = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "night.png")), cv2.COLOR_BGR2RGB)
    from_path = default_restorer(str(photo))
    from_array = default_restorer(rgb)
    from_pil = default_restorer(PILImage.fromarray(rgb))
    assert from_path.dtype == from_array.dtype == np.uint8 and from_path.shape == rgb.shape
    assert np.array_equal(from_path, expected)
    assert np.array_equal(from_array, expected)
    assert isinstance(from_pil, PILImage.Image) and from_pil.mode == "RGB"
    assert np.array_equal(np.asarray(from_pil), expected)


def test_every_input_kind_comes_back_alike(tiny_restorer, tmp_path):
    rgb16 = _dark((30, 70, 3), np.uint16)
    out16 = tiny_restorer(rgb16)
    assert out16.dtype == np.uint16 and out16.shape == rgb16.shape and out16.max() > 255  # 16 bits kept
    gray = _dark((30, 70)).astype(np.float32) / 255
    out_gray = tiny_restorer(gray)
    assert out_gray.dtype == np.float32 and out_gray.shape == gray.shape and 0 <= out_gray.min() <= out_gray.max() <= 1
    rgba = np.dstack([_dark((30, 70, 3)), np.linspace(0, 255, 70, dtype=np.uint8)[None].repeat(30, 0)])
    out_rgba = tiny_restorer(rgba.astype(np.float64) / 255)
    assert out_rgba.dtype == np.float64 and out_rgba.shape == (30, 70, 4)
    assert np.allclose(out_rgba[..., 3], rgba[..., 3] / 255, atol=1e-6)  # alpha passes through
    for mode, array in (("L", _dark((30, 70))), ("RGBA", rgba), ("I;16", _dark((30, 70), np.uint16))):
        restored = tiny_restorer(PILImage.fromarray(array))
        assert restored.mode == mode and restored.size == (70, 30)
    assert np.array_equal(np.asarray(tiny_restorer(PILImage.fromarray(rgba)))[..., 3], rgba[..., 3])
    batch = torch.from_numpy(_dark((2, 3, 30, 70)).astype(np.float32) / 255).to(torch.float64)
    out = tiny_restorer(batch)
    assert out.shape == batch.shape and out.dtype == torch.float64
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not tiny_restorer(batch.clone().requires_grad_(True)).requires_grad
    assert not [w for w in caught if "detach" in str(w.message)]  # no "Consider using tensor.detach()" from inside
    single = tiny_restorer(batch[1:2])
    assert torch.allclose(out[1:2], single, atol=1e-6)  # items are independent
    path = tmp_path / "gray16.png"
    cv2.imwrite(str(path), _dark((30, 70), np.uint16))
    from_file = tiny_restorer(path)
    assert from_file.dtype == np.uint16 and from_file.shape == (30, 70)


def test_big_endian_16_bit_pil_images_are_restored_as_their_values(tiny_restorer):
    """Pillow opens a big-endian 16-bit TIFF as mode I;16B: it was refused with the hint convert('RGB') (8 bits)."""
    gray = _dark((30, 70), np.uint16)
    little = PILImage.fromarray(gray)
    big = PILImage.frombytes("I;16B", little.size, gray.astype(">u2").tobytes())
    restored = tiny_restorer(big)
    assert restored.mode == "I;16" and np.array_equal(np.asarray(restored), np.asarray(tiny_restorer(little)))


@pytest.mark.parametrize(
    ("image", "hint"),
    [
        (PILImage.new("RGB", (8, 8)), "mode 'RGB' with a transparency key are not supported; .*convert\\('RGBA'\\)"),
        (PILImage.new("L", (8, 8)), "mode 'L' with a transparency key are not supported; .*convert\\('RGBA'\\)"),
        (PILImage.new("I;16", (8, 8)), "mode 'I;16' with a transparency key .*; restore the file by its path"),
        (PILImage.new("RGBa", (8, 8)), "convert\\('RGBA'\\)"),
        (PILImage.new("LAB", (8, 8)), "convert\\('RGB'\\)"),
        (PILImage.new("I", (8, 8)), "convert\\('I;16'\\) \\(16-bit gray\\)"),
        (PILImage.new("F", (8, 8)), "restore np.asarray\\(image\\) \\(float values in \\[0, 1\\]\\) instead"),
    ],
    ids=["rgb-trns", "l-trns", "i16-trns", "rgba-premultiplied", "lab", "int32", "float"],
)
def test_refused_pil_modes_get_a_conversion_that_keeps_what_they_hold(tiny_restorer, image, hint):
    """An RGB or L image with a transparency key lost it without a word (the file's path kept it as alpha); LAB was
    told to convert to RGBA (its "A" is a colour), RGBa and La to RGB (dropping their alpha), I and F to 8-bit RGB."""
    if image.mode in ("RGB", "L", "I;16"):
        image.info["transparency"] = (0, 0, 0) if image.mode == "RGB" else 0
    with pytest.raises(DarkIRError, match=hint):
        tiny_restorer(image)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((8, 8, 3), np.int32), "unsupported array dtype int32"),
        (np.full((8, 8, 3), 2.0, np.float32), r"values in \[0, 1\]; this one spans \[2, 2\]"),
        (np.zeros((8, 8, 2), np.uint8), r"unsupported array shape \(8, 8, 2\)"),
        (np.full((8, 8), np.nan, np.float32), "NaN or infinite"),
        (torch.zeros(3, 8, 8), r"expected a \(N, 3, H, W\) tensor"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "expected a float tensor"),
        (torch.full((1, 3, 8, 8), -0.5), r"tensor values must be in \[0, 1\]"),
        (PILImage.new("P", (8, 8)), "mode 'P' are not supported"),
        ([[0.1, 0.2]], "cannot restore a list"),
    ],
)
def test_wrong_inputs_are_named(tiny_restorer, bad, message):
    with pytest.raises(DarkIRError, match=message):
        tiny_restorer(bad)


def test_bad_paths_and_names(tiny_restorer, tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        tiny_restorer(tmp_path / "missing.png")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="cannot decode"):
        tiny_restorer(str(junk))
    with pytest.raises(DarkIRError, match="neither a file nor a model name"):
        Restorer.from_pretrained("darkir-nonexistent")
    with pytest.raises(DarkIRError, match=r"source: a model name, a checkpoint path or a ModelConfig, not a int \(5\)"):
        create_model(5)


def test_a_model_given_where_its_name_is_expected_is_named_in_one_line():
    """``Restorer.from_pretrained(model)`` printed the model's repr in the error: 12 KB, 332 lines."""
    model = create_model("darkir-w32", width=8, enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1))
    with pytest.raises(DarkIRError) as error:
        Restorer.from_pretrained(model)
    assert str(error.value) == (
        "source: a model name, a checkpoint path or a ModelConfig, not a DarkIR; a model made already goes to "
        "Restorer(model) as it is"
    )


def test_from_pretrained_settings_reach_the_restorer(tiny_checkpoint):
    restorer = Restorer.from_pretrained(str(tiny_checkpoint), device="cpu", tile=96)
    assert (restorer.plan_for(200, 200).tile, restorer.dtype) == (96, resolve_precision("auto", torch.device("cpu")))
    assert restorer.tiles_for(200, 200) == 9  # 3 x 3 windows overlapping by the default 24 px
    auto = Restorer.from_pretrained(str(tiny_checkpoint), device="cpu", max_memory="300GB")
    assert auto.tile == "auto" and auto.planner.budget == 300_000_000_000


def test_the_settings_of_the_engines_and_of_from_pretrained_are_the_restorers_with_its_defaults():
    """RestoreSettings (the command line's and the engines'), Restorer() and Restorer.from_pretrained list the same
    settings with the same defaults (three lists kept by hand)."""
    import dataclasses
    import inspect

    from darkir.infer.restorer import RestoreSettings

    def defaults(function: object, left_out: set[str]) -> dict[str, object]:
        parameters = inspect.signature(function).parameters.values()
        return {p.name: p.default for p in parameters if p.name not in left_out}

    settings = {field.name: field.default for field in dataclasses.fields(RestoreSettings)}
    assert defaults(Restorer.__init__, {"self", "model", "guide_scale", "memory_setting"}) == settings
    assert defaults(Restorer.from_pretrained, {"name_or_path"}) == settings


# Found by an outside test of the Python API (fourteenth session).


def test_restore_tensor_gives_an_ordinary_tensor(tiny_restorer):
    """It gave an inference tensor: ``out.clamp_(0, 1)`` raised 'Inplace update to inference tensor'."""
    out = tiny_restorer.restore_tensor(torch.rand(1, 3, 32, 40) * 0.3)
    assert not torch.is_inference(out)
    out.clamp_(0, 1)
    (out * torch.ones(1, requires_grad=True)).sum().backward()


def test_loading_weights_leaves_the_callers_random_state_as_it_was(tiny_checkpoint):
    """The random init that the weights replace drew from the global generator."""
    torch.manual_seed(0)
    state = torch.get_rng_state()
    Restorer.from_pretrained(str(tiny_checkpoint), device="cpu")
    assert torch.equal(state, torch.get_rng_state())


def test_a_basicsr_file_with_averaged_weights_loads_them_as_spandrel_does(tiny_checkpoint, tmp_path):
    """Of ``params`` and ``params_ema`` darkir took ``params``, spandrel (and Real-ESRGAN) the averaged ones."""
    state = create_model(str(tiny_checkpoint)).state_dict()
    averaged = {key: value + 0.01 if value.is_floating_point() else value for key, value in state.items()}
    torch.save({"params": state, "params_ema": averaged}, tmp_path / "ema.pth")
    loaded = create_model(str(tmp_path / "ema.pth")).state_dict()
    assert all(torch.equal(loaded[key], averaged[key]) for key in averaged)


def test_wrapper_prefixes_are_stripped_in_either_order(tiny_checkpoint, tmp_path):
    """``torch.compile(DDP(model))`` names every tensor ``_orig_mod.module.``: it was "not a DarkIR checkpoint"."""
    state = create_model(str(tiny_checkpoint)).state_dict()
    torch.save({"state_dict": {f"_orig_mod.module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.pt")
    loaded = create_model(str(tmp_path / "wrapped.pt"))
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in state.items())


def test_a_home_folder_path_is_the_users_in_save_and_read_and_restore(tiny_checkpoint, tmp_path, monkeypatch):
    """``save_checkpoint('~/w.pt')`` wrote a folder named '~' in the current folder, which create_model (which
    expands '~') then did not find; a restorer called on '~/a.png' found no file."""
    from darkir.checkpoint import read_checkpoint, save_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    model = create_model(str(tiny_checkpoint))
    assert save_checkpoint("~/w.pt", model) == tmp_path / "home" / "w.pt" and not (tmp_path / "~").exists()
    assert read_checkpoint("~/w.pt")[1] == model.config
    cv2.imwrite(str(tmp_path / "home" / "a.png"), _dark((24, 32, 3)))
    restorer = Restorer.from_pretrained("~/w.pt", device="cpu")
    assert restorer("~/a.png").shape == (24, 32, 3)


def test_a_model_name_in_other_case_is_answered_with_the_names_it_may_mean():
    with pytest.raises(DarkIRError, match=r"did you mean darkir-w32-synth"):
        create_model("DARKIR-W32-SYNTH")


def test_a_pil_mode_with_alpha_is_told_to_convert_to_rgba_not_rgb(tiny_restorer):
    """The hint said image.convert('RGB'), which drops the alpha the image has."""
    with pytest.raises(DarkIRError, match=r"image\.convert\('RGBA'\)"):
        tiny_restorer(PILImage.new("LA", (8, 8)))


# Found by an outside test of the Python API as a library (twenty-fourth session).


def test_a_host_applications_float64_default_dtype_still_gives_float32_models(tiny_checkpoint, tiny_restorer):
    """Under ``torch.set_default_dtype(torch.float64)`` create_model gave float64 weights and from_pretrained was
    refused ("the model's weights are float64 ... pass model.float()"), with no model to call it on."""
    image = _dark((40, 48, 3))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert {p.dtype for p in create_model("darkir-w32").parameters()} == {torch.float32}
        restored = Restorer.from_pretrained(str(tiny_checkpoint), device="cpu", tile=64)(image)
    finally:
        torch.set_default_dtype(previous)
    assert np.array_equal(restored, tiny_restorer(image))


def test_threads_sharing_a_restorer_take_turns_within_its_budget(tiny_checkpoint):
    """Threads calling one Restorer ran their passes at once, each planned as if it had the memory budget alone: three
    threads peaked at twice ``max_memory`` (1.58 GB against 788 MB). Its with_exposure copies share the turns."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    restorer = Restorer.from_pretrained(str(tiny_checkpoint), device="cpu")  # tile auto: a budget to keep
    brighter = restorer.with_exposure(0.5)
    images = [_dark((48, 64, 3), seed=seed) for seed in range(6)]
    alone = [(brighter if index % 2 else restorer)(image) for index, image in enumerate(images)]
    counting, running, most = threading.Lock(), [0], [0]
    run = restorer._run

    def counted(x: torch.Tensor) -> torch.Tensor:
        with counting:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the other threads to arrive
        try:
            return run(x)
        finally:
            with counting:
                running[0] -= 1

    restorer._run = brighter._run = counted
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda pair: (brighter if pair[0] % 2 else restorer)(pair[1]), enumerate(images)))
    assert most[0] == 1 and all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def test_gray_arrays_of_one_channel_and_bytes_paths_are_taken(tiny_restorer, tmp_path):
    """(H, W, 1) arrays, gray as OpenCV and scikit-image give it, were "unsupported array shape", and a path as
    bytes (a valid path in Python) was "cannot restore a bytes"."""
    gray = _dark((40, 48))
    restored = tiny_restorer(gray[..., None])
    assert restored.shape == (40, 48, 1) and np.array_equal(restored[..., 0], tiny_restorer(gray))
    path = tmp_path / "night.png"
    cv2.imwrite(str(path), _dark((40, 48, 3)))
    assert np.array_equal(tiny_restorer(bytes(path)), tiny_restorer(str(path)))
    with pytest.raises(DarkIRError, match=r"cannot restore \d+ bytes of data: pass a file path .*cv2\.imdecode$"):
        tiny_restorer(path.read_bytes())  # a file's contents are no path


@pytest.mark.parametrize(
    ("counts", "problem"),
    [
        ([1, 2, 3], r"expect takes \{\(batch, height, width\): count\}, got list"),
        ({(1, -5, "a"): 3}, r"expect's keys are shapes \(batch, height, width\) of whole numbers, got \(1, -5, 'a'\)"),
        ({(1, 8): 1}, r"got \(1, 8\)"),
        ({(1, 8, 8): 2.5}, r"expect's counts are whole numbers of at least 0, got 2.5 for \(1, 8, 8\)"),
    ],
)
def test_expect_refuses_what_is_no_count_of_shapes(tiny_restorer, counts, problem):
    """On the CPU (nothing to compile) expect returned [] for anything, so a caller's mistake showed only on a GPU."""
    with pytest.raises(DarkIRError, match=problem):
        tiny_restorer.expect(counts)


def test_a_restorer_is_copied_and_pickled_with_a_lock_of_its_own(tiny_checkpoint):
    """The lock of take-turns made a Restorer that deepcopy and pickle refused ("cannot pickle '_thread.RLock'")."""
    import copy
    import pickle

    restorer = Restorer.from_pretrained(str(tiny_checkpoint), device="cpu")
    image = _dark((40, 48, 3))
    for other in (copy.deepcopy(restorer), pickle.loads(pickle.dumps(restorer))):
        assert np.array_equal(other(image), restorer(image))
        assert other._one_at_a_time is not restorer._one_at_a_time
    assert restorer.with_exposure(1.0)._one_at_a_time is restorer._one_at_a_time
