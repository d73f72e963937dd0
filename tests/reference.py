"""A functional restatement of the reference DarkIR/CSF forward pass, in the reference's formulation.

It runs on a state_dict (reference key names) with plain ``torch.nn.functional`` calls, computing
LayerNorm from explicit mean/variance and the frequency MLP through ``abs``/``angle``/``cos``/``sin``
exactly as cidautai/DarkIR does. It is the independent baseline (a test oracle, so it lives in ``tests/`` and does
not ship) that conformance tests compare :class:`~darkir.models.DarkIR` against and that benchmarks time ours
against (they import it as ``tests.reference`` from the repository root); it is not used to restore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

Params = Mapping[str, torch.Tensor]


def _conv(params: Params, name: str, x: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    weight = params[f"{name}.weight"]
    kernel = weight.shape[-1]
    return F.conv2d(
        x,
        weight,
        params.get(f"{name}.bias"),
        padding=dilation * (kernel // 2),
        dilation=dilation,
        groups=x.shape[1] // weight.shape[1],
    )


def _layer_norm(params: Params, name: str, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    y = (x - mu) / (var + eps).sqrt()
    return params[f"{name}.weight"].view(1, -1, 1, 1) * y + params[f"{name}.bias"].view(1, -1, 1, 1)


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


def _spatial(params: Params, p: str, inp: torch.Tensor, x: torch.Tensor, dilations: list[int]) -> torch.Tensor:
    z = 0
    for i, dilation in enumerate(dilations):
        z = z + _conv(params, f"{p}.branches.{i}.branch.0", x, dilation)
    z = _gate(z)
    x = _conv(params, f"{p}.sca.1", F.adaptive_avg_pool2d(z, 1)) * z
    return inp + params[f"{p}.beta"] * _conv(params, f"{p}.conv3", x)


def _eblock(params: Params, p: str, inp: torch.Tensor, extra: bool) -> torch.Tensor:
    x = _layer_norm(params, f"{p}.norm1", inp)
    if extra:
        x = _conv(params, f"{p}.extra_conv", x)
    y = _spatial(params, p, inp, _conv(params, f"{p}.conv1", x), [1])
    x = _layer_norm(params, f"{p}.norm2", y)
    height, width = x.shape[-2:]
    spectrum = torch.fft.rfft2(x, norm="backward")
    mag, pha = torch.abs(spectrum), torch.angle(spectrum)
    mag = _conv(params, f"{p}.freq.process1.2", F.leaky_relu(_conv(params, f"{p}.freq.process1.0", mag), 0.1))
    freq = torch.fft.irfft2(torch.complex(mag * torch.cos(pha), mag * torch.sin(pha)), s=(height, width))
    return y + (y * freq) * params[f"{p}.gamma"]


def _dblock(params: Params, p: str, inp: torch.Tensor, extra: bool, dilations: list[int]) -> torch.Tensor:
    x = _conv(params, f"{p}.conv1", _layer_norm(params, f"{p}.norm1", inp))
    if extra:
        x = _conv(params, f"{p}.extra_conv", x)
    y = _spatial(params, p, inp, x, dilations)
    x = _conv(params, f"{p}.conv5", _gate(_conv(params, f"{p}.conv4", _layer_norm(params, f"{p}.norm2", y))))
    return y + x * params[f"{p}.gamma"]


def _csf(params: Params, p: str, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
    summary = F.relu(_conv(params, f"{p}.fuse.0", torch.cat([enc, dec], dim=1)))
    hidden = F.relu(_conv(params, f"{p}.gate.1", F.adaptive_avg_pool2d(summary, 1)))
    gate = torch.sigmoid(_conv(params, f"{p}.gate.3", hidden))
    return gate * enc + (1 - gate) * dec


def reference_forward(
    params: Params, config: Mapping[str, Any], x: torch.Tensor, side_loss: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The reference DarkIR(+CSF) forward of ``x`` with weights ``params`` and constructor kwargs ``config``."""
    extra, dilations = config["extra_depth_wise"], list(config["dilations"])
    n_stages = len(config["enc_blk_nums"])
    height, width = x.shape[-2:]
    multiple = 2**n_stages
    x = F.pad(x, (0, (multiple - width % multiple) % multiple, 0, (multiple - height % multiple) % multiple))
    inp = x
    x = _conv(params, "intro", x)
    skips = []
    for stage, count in enumerate(config["enc_blk_nums"]):
        for block in range(count):
            x = _eblock(params, f"encoders.{stage}.modules_list.{block}", x, extra)
        skips.append(x)
        x = F.conv2d(x, params[f"downs.{stage}.weight"], params[f"downs.{stage}.bias"], stride=2)
    for block in range(config["middle_blk_num_enc"]):
        x = _eblock(params, f"middle_blks_enc.modules_list.{block}", x, extra)
    x_light = x
    for block in range(config["middle_blk_num_dec"]):
        x = _dblock(params, f"middle_blks_dec.modules_list.{block}", x, extra, dilations)
    x = x + x_light
    for stage, count in enumerate(config["dec_blk_nums"]):
        x = F.pixel_shuffle(F.conv2d(x, params[f"ups.{stage}.0.weight"]), 2)
        skip = skips[n_stages - 1 - stage]
        x = _csf(params, f"csf_blocks.{stage}", skip, x) if config["use_csf"] else x + skip
        for block in range(count):
            x = _dblock(params, f"decoders.{stage}.modules_list.{block}", x, extra, dilations)
    out = (_conv(params, "ending", x) + inp)[:, :, :height, :width]
    if side_loss:
        return _conv(params, "side_out", x_light), out
    return out
