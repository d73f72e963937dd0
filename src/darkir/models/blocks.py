"""Building blocks of DarkIR: normalization, gates, the frequency MLP and the encoder/decoder blocks.

Module and parameter names follow the reference implementation (cidautai/DarkIR) so that its
checkpoints load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from darkir.models.cuda_convs import compute_dtype, depthwise, grouped


class LayerNorm2d(nn.Module):
    """Layer normalization over the channel dimension of an NCHW tensor.

    Computed with the native ``layer_norm`` kernel on an NHWC view, which is numerically the
    reference's ``(x - mean) / sqrt(var + eps)`` and free for channels_last inputs.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them (NAFNet's gate)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class FreMLP(nn.Module):
    """Pointwise MLP on the FFT magnitude, phase kept: a global receptive field at 1x1 cost."""

    def __init__(self, nc: int, expand: int = 2) -> None:
        super().__init__()
        #: Use the real (half) spectrum; the full complex one gives the same result and exports to ONNX.
        self.onesided = True
        self.process1 = nn.Sequential(
            nn.Conv2d(nc, expand * nc, 1, 1, 0),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(expand * nc, nc, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        spectrum = torch.fft.rfft2(x.float()) if self.onesided else torch.fft.fft2(x.float())
        if compute_dtype(x) == torch.float16:
            # The DC term is a sum over the whole image and overflows float16 (max 65504): keep the MLP in float32.
            with torch.autocast(x.device.type, enabled=False):
                magnitude = self.process1(spectrum.abs())
        else:
            magnitude = self.process1(spectrum.abs().to(x.dtype)).float()
        restored = torch.polar(magnitude, spectrum.angle())
        if self.onesided:
            return torch.fft.irfft2(restored, s=(height, width)).to(x.dtype)
        return torch.fft.ifft2(restored).real.to(x.dtype)


class Branch(nn.Module):
    """One depth-wise (optionally dilated) 3x3 convolution; blocks sum several of them."""

    def __init__(self, c: int, DW_Expand: int, dilation: int = 1) -> None:  # noqa: N803 - reference name
        super().__init__()
        channels = DW_Expand * c
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=dilation, groups=channels, dilation=dilation)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise(self.branch[0], x)


class _GatedConvBlock(nn.Module):
    """Shared first half of EBlock/DBlock: norm, 1x1 expand, depth-wise branches, gate, channel attention."""

    def _spatial_step(self, inp: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = self.branches[0](x)
        for branch in self.branches[1:]:
            z += branch(x)  # in place: one full-size buffer fewer (a convolution's output is not saved for backward)
        z = self.sg1(z)
        x = self.conv3(self.sca(z) * z)
        return inp + self.beta * x


class EBlock(_GatedConvBlock):
    """Encoder block: depth-wise spatial step, then a frequency-domain (FreMLP) step."""

    def __init__(
        self,
        c: int,
        DW_Expand: int = 2,  # noqa: N803 - reference name
        dilations: Sequence[int] = (1,),
        extra_depth_wise: bool = False,
    ) -> None:
        super().__init__()
        dw_channel = DW_Expand * c
        self.extra_conv = nn.Conv2d(c, c, kernel_size=3, padding=1, groups=c) if extra_depth_wise else nn.Identity()
        self.conv1 = nn.Conv2d(c, dw_channel, kernel_size=1)
        self.branches = nn.ModuleList(Branch(c, DW_Expand, dilation=d) for d in dilations)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw_channel // 2, dw_channel // 2, kernel_size=1))
        self.sg1 = SimpleGate()
        self.conv3 = nn.Conv2d(dw_channel // 2, c, kernel_size=1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.freq = FreMLP(nc=c, expand=2)
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        y = self._spatial_step(inp, self.conv1(self.extra_conv(self.norm1(inp))))
        x = y * self.freq(self.norm2(y))
        return y + x * self.gamma


class DBlock(_GatedConvBlock):
    """Decoder block: dilated depth-wise spatial step, then a gated feed-forward step."""

    def __init__(
        self,
        c: int,
        DW_Expand: int = 2,  # noqa: N803 - reference name
        FFN_Expand: int = 2,  # noqa: N803 - reference name
        dilations: Sequence[int] = (1,),
        extra_depth_wise: bool = False,
    ) -> None:
        super().__init__()
        dw_channel = DW_Expand * c
        self.conv1 = nn.Conv2d(c, dw_channel, kernel_size=1)
        # The reference groups this 3x3 by ``c`` over ``2c`` channels (two channels per group).
        self.extra_conv = (
            nn.Conv2d(dw_channel, dw_channel, kernel_size=3, padding=1, groups=c) if extra_depth_wise else nn.Identity()
        )
        self.branches = nn.ModuleList(Branch(dw_channel, DW_Expand=1, dilation=d) for d in dilations)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw_channel // 2, dw_channel // 2, kernel_size=1))
        self.sg1 = SimpleGate()
        self.sg2 = SimpleGate()
        self.conv3 = nn.Conv2d(dw_channel // 2, c, kernel_size=1)
        ffn_channel = FFN_Expand * c
        self.conv4 = nn.Conv2d(c, ffn_channel, kernel_size=1)
        self.conv5 = nn.Conv2d(ffn_channel // 2, c, kernel_size=1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.gamma = nn.Parameter(torch.zeros((1, c, 1, 1)))
        self.beta = nn.Parameter(torch.zeros((1, c, 1, 1)))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        y = self._spatial_step(inp, grouped(self.extra_conv, self.conv1(self.norm1(inp))))
        x = self.conv5(self.sg2(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class BlockStack(nn.Module):
    """A sequence of blocks stored under ``modules_list`` (the reference's parameter prefix)."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.modules_list = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.modules_list:
            x = block(x)
        return x
