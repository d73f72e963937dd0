"""DarkIR's slow-on-cuDNN convolutions, written as the same sums in forms that cuDNN runs fast (CUDA only).

``benchmarks/gpu_forward.py`` on an H200 at 1920x1080 (fp16, channels_last) found two of them taking half of the
forward pass, though they hold a small share of its arithmetic:

- the dilated depth-wise 3x3s (dilations 4 and 9) run on cuDNN's generic grouped kernel, 2.7 ms each; a dilated
  convolution is a plain one over the ``d x d`` interleaved sub-images (space to batch), which runs on the fast
  depth-wise kernel;
- the decoder's 3x3 with two channels per group is split into one small matrix product per group (384 launches per
  forward); a dense convolution whose weight is zero outside the groups' blocks runs on the tensor cores instead.
  It does ``groups`` times the arithmetic (17 GMac at 256x256 for width 32, against 0.2), which tensor cores absorb
  in fp16 and bf16; so it is taken only there, on GPUs that have them. Both choices were measured on one H200 only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from darkir.runtime import tensor_cores


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype ops on ``x`` run in: autocast's on its device where enabled, else its own."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def dilated_depthwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a depth-wise 3x3 of dilation d and padding d, as a dilation-1 convolution of the d x d
    sub-images ``x[..., i::d, j::d]`` (the input is zero-padded to a multiple of d, as the convolution pads it). In
    training it keeps one more activation per dilated branch for the backward pass: the re-laid-out input."""
    d = conv.dilation[0]
    n, c, h, w = x.shape
    rows, cols = -(-h // d), -(-w // d)
    if (rows * d, cols * d) != (h, w):
        x = F.pad(x, (0, cols * d - w, 0, rows * d - h))
    sub = x.permute(0, 2, 3, 1).reshape(n, rows, d, cols, d, c).permute(0, 2, 4, 1, 3, 5)
    sub = sub.reshape(n * d * d, rows, cols, c).permute(0, 3, 1, 2)  # NCHW in channels_last memory
    out = F.conv2d(sub, conv.weight, conv.bias, padding=1, groups=conv.groups)
    out = out.permute(0, 2, 3, 1).reshape(n, d, d, rows, cols, c).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(n, rows * d, cols * d, c)[:, :h, :w].permute(0, 3, 1, 2)


def dense_grouped(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a grouped convolution, as a dense one whose weight is block-diagonal (zero across groups)."""
    groups, weight = conv.groups, conv.weight
    out_per_group, in_per_group = weight.shape[0] // groups, weight.shape[1]
    blocks = weight.view(groups, out_per_group, in_per_group, *weight.shape[2:])
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    dense = torch.einsum("gh,goikl->gohikl", eye, blocks)
    dense = dense.reshape(weight.shape[0], groups * in_per_group, *weight.shape[2:])
    return F.conv2d(x, dense, conv.bias, conv.stride, conv.padding, conv.dilation)


def depthwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A depth-wise 3x3 (padding = dilation) of a Branch: through :func:`dilated_depthwise` on CUDA where dilated."""
    if x.is_cuda and conv.dilation[0] > 1:
        return dilated_depthwise(x, conv)
    return conv(x)


def grouped(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A grouped convolution (or any module): through :func:`dense_grouped` where it groups several channels per
    group, on a CUDA GPU with tensor cores, in fp16 or bf16."""
    if (
        x.is_cuda
        and isinstance(conv, nn.Conv2d)
        and 1 < conv.groups < conv.in_channels
        and compute_dtype(x) in (torch.float16, torch.bfloat16)
        and tensor_cores(x.device)
    ):
        return dense_grouped(x, conv)
    return conv(x)
