"""Skip merges: how a decoder stage combines the upsampled features with the encoder skip."""

from __future__ import annotations

import torch
from torch import nn


class AddMerge(nn.Module):
    """DarkIR's merge: plain addition of encoder skip and decoder features (no parameters)."""

    def forward(self, enc_feat: torch.Tensor, dec_feat: torch.Tensor) -> torch.Tensor:
        return enc_feat + dec_feat


class CSFBlock(nn.Module):
    """Cross-Scale Fusion: a learned per-channel gate ``g`` giving ``g * enc + (1 - g) * dec``.

    ``fuse`` summarizes both inputs (1x1 conv 2C->C + ReLU); ``gate`` pools it globally and maps it
    through a bottleneck (C -> C/r -> C) to a sigmoid.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fuse = nn.Sequential(nn.Conv2d(channels * 2, channels, kernel_size=1), nn.ReLU(inplace=True))
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
            nn.Sigmoid(),
        )

    def forward(self, enc_feat: torch.Tensor, dec_feat: torch.Tensor) -> torch.Tensor:
        gate = self.gate(self.fuse(torch.cat([enc_feat, dec_feat], dim=1)))
        return gate * enc_feat + (1 - gate) * dec_feat
