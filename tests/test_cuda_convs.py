"""The CUDA formulations of DarkIR's dilated depth-wise and grouped convolutions compute the same sums as the
convolutions they replace (checked on the CPU in float64, values and gradients; on a GPU, tests/test_gpu.py compares
whole models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from darkir.models.cuda_convs import compute_dtype, dense_grouped, depthwise, dilated_depthwise, grouped


def _close_with_gradients(formulation, conv: nn.Conv2d, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_(True)
    ours = formulation(x, conv)
    ours.backward(torch.ones_like(ours))
    grads = (x.grad, conv.weight.grad, conv.bias.grad)
    x.grad = conv.weight.grad = conv.bias.grad = None
    theirs = conv(x)
    theirs.backward(torch.ones_like(theirs))
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-12)
    for mine, reference in zip(grads, (x.grad, conv.weight.grad, conv.bias.grad), strict=True):
        assert torch.allclose(mine, reference, atol=1e-10)


@pytest.mark.parametrize("dilation", [1, 4, 9])
@pytest.mark.parametrize("size", [(37, 50), (36, 45), (8, 5), (1, 1)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_dilated_depthwise_is_the_dilated_convolution(dilation, size, memory_format):
    torch.manual_seed(dilation)
    conv = nn.Conv2d(6, 6, 3, padding=dilation, dilation=dilation, groups=6).double()
    x = torch.randn(2, 6, *size, dtype=torch.float64).contiguous(memory_format=memory_format)
    _close_with_gradients(dilated_depthwise, conv, x)


@pytest.mark.parametrize("channels, groups", [(8, 4), (12, 3), (64, 32)])
def test_dense_grouped_is_the_grouped_convolution(channels, groups):
    torch.manual_seed(channels)
    conv = nn.Conv2d(channels, channels, 3, padding=1, groups=groups).double()
    _close_with_gradients(dense_grouped, conv, torch.randn(2, channels, 19, 23, dtype=torch.float64))


def test_on_the_cpu_the_modules_run_as_they_are():
    """The CPU path stays the convolution modules themselves (bit-identical CPU outputs, hooks such as ptflops')."""
    calls = []
    dilated = nn.Conv2d(4, 4, 3, padding=4, dilation=4, groups=4)
    split = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    for conv in (dilated, split):
        conv.register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(1, 4, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(depthwise(dilated, x), dilated(x)) and torch.equal(grouped(split, x), split(x))
        assert compute_dtype(x) == torch.bfloat16
    assert len(calls) == 4 and compute_dtype(x) == torch.float32
