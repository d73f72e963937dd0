"""The DarkIR U-Net (CVPR 2025), with an optional Cross-Scale Fusion (CSF) skip merge."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from darkir.models.blocks import BlockStack, DBlock, EBlock
from darkir.models.config import DEFAULTS, ModelConfig
from darkir.models.fusion import AddMerge, CSFBlock


class DarkIR(nn.Module):
    """Encoder-decoder for joint low-light enhancement, denoising and deblurring.

    Built from a :class:`ModelConfig` (``DarkIR(config=...)``; :func:`darkir.create_model` makes one from a name,
    checkpoint or config). Keywords and parameter names are the reference's (cidautai/DarkIR; CSF from
    lutfiozark/darkir-csf-lowlight-restoration), so their checkpoints load strictly.
    """

    def __init__(self, *, config: ModelConfig = DEFAULTS, **fields: Any) -> None:
        """The network ``config`` describes; ``fields`` (the reference constructor's keywords) replace some of it."""
        super().__init__()
        config = config.replace(**fields)
        #: The config in its stored form (:meth:`ModelConfig.as_kwargs`), saved with checkpoints.
        self.config = config.as_kwargs()
        self.use_csf = config.use_csf
        self.intro = nn.Conv2d(config.img_channel, config.width, kernel_size=3, padding=1)
        self.ending = nn.Conv2d(config.width, config.img_channel, kernel_size=3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        # Skip merges; named ``csf_blocks`` because that is the CSF checkpoints' key prefix
        # (the parameter-free AddMerge contributes no keys, as in the baseline checkpoints).
        self.csf_blocks = nn.ModuleList()

        chan, extra, dilations = config.width, config.extra_depth_wise, config.dilations
        for num in config.enc_blk_nums:
            self.encoders.append(BlockStack([EBlock(chan, extra_depth_wise=extra) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, kernel_size=2, stride=2))
            chan *= 2
        self.middle_blks_enc = BlockStack(
            [EBlock(chan, extra_depth_wise=extra) for _ in range(config.middle_blk_num_enc)]
        )
        self.middle_blks_dec = BlockStack(
            [DBlock(chan, dilations=dilations, extra_depth_wise=extra) for _ in range(config.middle_blk_num_dec)]
        )
        for num in config.dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, kernel_size=1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.csf_blocks.append(CSFBlock(chan, reduction=config.csf_reduction) if config.use_csf else AddMerge())
            self.decoders.append(
                BlockStack([DBlock(chan, dilations=dilations, extra_depth_wise=extra) for _ in range(num)])
            )
        self.padder_size = 2 ** len(self.encoders)
        # Only used for the side (middle) loss during training.
        self.side_out = nn.Conv2d(config.width * 2 ** len(self.encoders), config.img_channel, kernel_size=3, padding=1)

    def forward(
        self,
        input: torch.Tensor,
        side_loss: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore ``input`` (N, C, H, W in [0, 1]); with ``side_loss`` also return the low-res side output."""
        height, width = input.shape[-2:]
        padded = self._pad_to_multiple(input)
        x = self.intro(padded)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x_light = self.middle_blks_enc(x)
        x = self.middle_blks_dec(x_light) + x_light
        for decoder, up, merge in zip(self.decoders, self.ups, self.csf_blocks, strict=True):
            x = decoder(merge(skips.pop(), up(x)))  # pop: each skip is freed once merged
        out = (self.ending(x) + padded)[:, :, :height, :width]
        if side_loss:
            return self.side_out(x_light), out
        return out

    def _pad_to_multiple(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad bottom/right so that H and W are multiples of ``padder_size``."""
        pad_h = (self.padder_size - x.shape[-2] % self.padder_size) % self.padder_size
        pad_w = (self.padder_size - x.shape[-1] % self.padder_size) % self.padder_size
        return F.pad(x, (0, pad_w, 0, pad_h))  # unconditional, so exported graphs pad any size
