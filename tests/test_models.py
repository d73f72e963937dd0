"""DarkIR and DarkIR+CSF reproduce the reference forward pass and behave for every zoo variant."""

from __future__ import annotations

import re

import pytest
import torch

from darkir.errors import ConfigError
from darkir.models import DarkIR, get_spec, list_models
from darkir.models.factory import build_model
from tests.conftest import TINY, randomize
from tests.reference import reference_forward

FIXTURES = ["darkir_w32", "darkir_csf_w32"]


@pytest.mark.parametrize("name", FIXTURES)
def test_conformance_fixture_reproduced(shared, name):
    fixture = torch.load(shared / "conformance" / f"{name}.pt", weights_only=True)
    model = build_model(fixture["config"]).eval()
    model.load_state_dict(fixture["state_dict"], strict=True)
    with torch.no_grad():
        side, out = model(fixture["input"], side_loss=True)
        plain = model(fixture["input"])
    assert out.shape == fixture["output"].shape
    assert (out - fixture["output"]).abs().max().item() <= 1e-4
    assert (side - fixture["side_output"]).abs().max().item() <= 1e-4
    assert torch.equal(plain, out)


@pytest.mark.parametrize("name", FIXTURES)
def test_functional_reference_matches_fixture(shared, name):
    """The functional baseline used by other tests and benchmarks is itself the reference."""
    fixture = torch.load(shared / "conformance" / f"{name}.pt", weights_only=True)
    with torch.no_grad():
        side, out = reference_forward(fixture["state_dict"], fixture["config"], fixture["input"], side_loss=True)
    assert (out - fixture["output"]).abs().max().item() <= 1e-4
    assert (side - fixture["side_output"]).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [
        ({"width": 16}, (1, 3, 37, 53)),
        ({"width": 16, "use_csf": True, "csf_reduction": 2}, (3, 3, 29, 40)),
        ({"width": 24, "use_csf": True, "extra_depth_wise": False}, (2, 3, 64, 33)),
        ({"width": 8, "enc_blk_nums": [2, 1], "dec_blk_nums": [1, 2], "dilations": [1, 2]}, (2, 1, 21, 19)),
        ({"width": 40, "img_channel": 1, "middle_blk_num_enc": 1, "middle_blk_num_dec": 3}, (1, 1, 16, 16)),
    ],
)
def test_matches_reference_for_other_configs(overrides, shape):
    model = randomize(build_model(**overrides), seed=len(overrides)).eval()
    x = torch.rand(shape[0], model.config["img_channel"], *shape[2:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        side, out = model(x, side_loss=True)
        ref_side, ref_out = reference_forward(model.state_dict(), model.config, x, side_loss=True)
    assert out.shape == x.shape
    assert (out - ref_out).abs().max().item() <= 1e-4
    assert (side - ref_side).abs().max().item() <= 1e-4


def test_batch_items_are_independent():
    model = randomize(build_model("darkir-csf-w32", **TINY)).eval()
    x = torch.rand(3, 3, 30, 45)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(3)])
    assert (batched - single).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", list_models())
def test_zoo_variant_forward_backward(name):
    model = randomize(build_model(name, **TINY))
    x = torch.rand(2, 3, 27, 35, requires_grad=True)
    side, out = model(x, side_loss=True)
    assert out.shape == x.shape
    assert side.shape == (2, 3, 32 // 8, 40 // 8)
    (out.mean() + side.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", list_models())
def test_zoo_specs_are_consistent(name):
    spec = get_spec(name)
    model = build_model(name)
    assert model.config == spec.config
    assert model.use_csf == ("csf" in name)
    assert model.config["width"] == int(re.search(r"-w(\d+)", name)[1])


def test_baseline_has_no_csf_parameters_and_csf_has_them():
    base = build_model("darkir-w32")
    csf = build_model("darkir-csf-w32")
    assert not [k for k in base.state_dict() if k.startswith("csf_blocks")]
    assert {k.split(".")[1] for k in csf.state_dict() if k.startswith("csf_blocks")} == {"0", "1", "2"}


def test_new_model_is_identity_plus_residual():
    """gamma/beta start at zero as in the reference: an untrained model returns ending(intro(x)) + x."""
    model = build_model("darkir-w16").eval()
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith(("gamma", "beta")))


def test_unknown_keys_and_names_are_rejected():
    with pytest.raises(ConfigError, match="'widht'"):
        build_model({"widht": 32})
    with pytest.raises(ConfigError, match="did you mean darkir-w32"):
        build_model("darkir-w23")
    with pytest.raises(ValueError, match="same length"):
        DarkIR(enc_blk_nums=[1, 2], dec_blk_nums=[1, 1, 1])


def test_list_models_filters():
    assert list_models("darkir-csf-*") == ["darkir-csf-w32", "darkir-csf-w64", "darkir-csf-w32-synth"]
    assert list_models(pretrained=True) == ["darkir-w32-synth", "darkir-csf-w32-synth"]
    assert "darkir-w32" in list_models()


def test_list_models_without_a_pattern_lists_all_and_a_wrong_type_is_named():
    assert list_models(None) == list_models("") == list_models() != []
    with pytest.raises(TypeError, match="glob pattern .* got int"):
        list_models(5)


def test_list_models_filters_ignore_case():
    """The paper spells it DarkIR: 'DarkIR-CSF*' lists the CSF variants (it listed nothing)."""
    assert list_models("DarkIR-CSF*") == list_models("darkir-csf-*") != []


@pytest.mark.parametrize("name", ["darkir-w32-synth", "darkir-csf-w32-synth"])
def test_packaged_weights_load_by_name(name):
    from darkir.models.factory import load_model

    model = load_model(name)
    assert model.config == get_spec(name).config
    assert any(torch.count_nonzero(p) > 0 for n, p in model.named_parameters() if n.endswith("gamma"))


@pytest.mark.parametrize("name", ["darkir-w32-synth", "darkir-csf-w32-synth"])
def test_float16_autocast_stays_finite_and_close(name):
    """Mixed-precision training and --precision fp16 run under float16 autocast; the FFT magnitude's DC term
    (a sum over the whole image) overflowed float16 and turned every output into NaN at 256x256."""
    from darkir.models.factory import load_model

    model = load_model(name).eval()
    x = torch.rand(1, 3, 256, 192, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.float16):
            half = model(x)
    assert torch.isfinite(half).all()
    assert (half.float() - expected).abs().max() < 5e-3


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_every_zoo_variant_round_trips_at_its_real_width(name, suffix, tmp_path):
    from darkir.checkpoint import save_checkpoint
    from darkir.models.factory import load_model

    model = randomize(build_model(name), seed=5).eval()
    assert model.config == get_spec(name).config
    loaded = load_model(save_checkpoint(tmp_path / f"m{suffix}", model))
    assert loaded.config == model.config
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0,), "size must be a whole number of at least 1, got 0"),
        ((64, 1), r"the model takes images of 3 channel\(s\) \(img_channel\), not 1"),
        ((2.5,), "size must be a whole number of at least 1, got 2.5"),
    ],
)
def test_measure_complexity_names_a_bad_argument(arguments, message):
    """Size 0 and a channel count the model does not take failed with torch's words ("Kernel size can't be greater
    than actual input size", "expected input ... to have 3 channels")."""
    from darkir.complexity import measure_complexity
    from darkir.errors import DarkIRError

    with pytest.raises(DarkIRError, match=message):
        measure_complexity(build_model("darkir-w32", **TINY), *arguments)
    with pytest.raises(DarkIRError, match="model must be a torch.nn.Module, got str"):
        measure_complexity("darkir-w32")
    gray = build_model("darkir-w32", **{**TINY, "img_channel": 1})
    assert measure_complexity(gray, 32).input_shape == (1, 32, 32)  # the model's channels by default


def test_complexity_at_a_side_the_model_pads_says_the_side_it_counts():
    """``--size 255`` was labelled "at 3x255x255" with the MACs of 256x256, which the model computes."""
    from darkir.complexity import measure_complexity

    model = build_model("darkir-w32", **TINY)
    at_255, at_256 = measure_complexity(model, 255), measure_complexity(model, 256)
    assert at_255.macs == at_256.macs and at_255.summary().endswith("at 3x255x255, computed as 256x256")
    assert at_256.summary().endswith("GMac at 3x256x256")


def test_a_model_too_large_for_memory_is_named_before_torch_allocates(monkeypatch):
    """create_model(width=10**6) raised torch's allocator error (8000000000000 bytes, no word of the width)."""
    import darkir.hostmemory
    from darkir import create_model
    from darkir.errors import OutOfMemoryError

    monkeypatch.setattr(darkir.hostmemory, "cpu_available_memory", lambda: 1 << 20)
    with pytest.raises(OutOfMemoryError, match=r"a DarkIR of width 32 holds 13 MB of weights, more than the 1 MB free"):
        create_model("darkir-w32")
    with pytest.raises(OutOfMemoryError, match=r"a DarkIR of width 32 holds 14 MB of weights"):
        create_model("darkir-csf-w32-synth")  # weights too: checked on the meta model their shapes were checked on
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"no model can be made of this config \(.*overflow"):
        create_model("darkir-w32", width=10**9)
    assert isinstance(create_model("darkir-w32", width=4), DarkIR)
