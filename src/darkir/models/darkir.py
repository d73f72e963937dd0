"""The DarkIR U-Net (CVPR 2025), with an optional Cross-Scale Fusion (CSF) skip merge."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from darkir.models.blocks import BlockStack, DBlock, EBlock
from darkir.models.config import DEFAULTS, ModelConfig
from darkir.models.fusion import AddMerge, CSFBlock


class DarkIR(nn.Module):
    """Encoder-decoder for joint low-light enhancement, denoising and deblurring.

    Arguments and parameter names are the reference's (cidautai/DarkIR; CSF from
    lutfiozark/darkir-csf-lowlight-restoration), so their checkpoints load strictly.
    """

    def __init__(
        self,
        img_channel: int = DEFAULTS.img_channel,
        width: int = DEFAULTS.width,
        middle_blk_num_enc: int = DEFAULTS.middle_blk_num_enc,
        middle_blk_num_dec: int = DEFAULTS.middle_blk_num_dec,
        enc_blk_nums: Sequence[int] = DEFAULTS.enc_blk_nums,
        dec_blk_nums: Sequence[int] = DEFAULTS.dec_blk_nums,
        dilations: Sequence[int] = DEFAULTS.dilations,
        extra_depth_wise: bool = DEFAULTS.extra_depth_wise,
        use_csf: bool = DEFAULTS.use_csf,
        csf_reduction: int = DEFAULTS.csf_reduction,
    ) -> None:
        super().__init__()
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError(
                f"enc_blk_nums {list(enc_blk_nums)} and dec_blk_nums {list(dec_blk_nums)} must have the same length"
            )
        #: Constructor kwargs, saved with checkpoints so that they load without a config.
        self.config = ModelConfig(
            img_channel, width, middle_blk_num_enc, middle_blk_num_dec, tuple(enc_blk_nums), tuple(dec_blk_nums),
            tuple(dilations), extra_depth_wise, use_csf, csf_reduction,
        ).as_kwargs()  # fmt: skip
        self.use_csf = use_csf
        self.intro = nn.Conv2d(img_channel, width, kernel_size=3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, kernel_size=3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        self.ups = nn.ModuleList()
        # Skip merges; named ``csf_blocks`` because that is the CSF checkpoints' key prefix
        # (the parameter-free AddMerge contributes no keys, as in the baseline checkpoints).
        self.csf_blocks = nn.ModuleList()

        chan = width
        for num in enc_blk_nums:
            self.encoders.append(BlockStack([EBlock(chan, extra_depth_wise=extra_depth_wise) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, kernel_size=2, stride=2))
            chan *= 2
        self.middle_blks_enc = BlockStack(
            [EBlock(chan, extra_depth_wise=extra_depth_wise) for _ in range(middle_blk_num_enc)]
        )
        self.middle_blks_dec = BlockStack(
            [DBlock(chan, dilations=dilations, extra_depth_wise=extra_depth_wise) for _ in range(middle_blk_num_dec)]
        )
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, kernel_size=1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.csf_blocks.append(CSFBlock(chan, reduction=csf_reduction) if use_csf else AddMerge())
            self.decoders.append(
                BlockStack([DBlock(chan, dilations=dilations, extra_depth_wise=extra_depth_wise) for _ in range(num)])
            )
        self.padder_size = 2 ** len(self.encoders)
        # Only used for the side (middle) loss during training.
        self.side_out = nn.Conv2d(width * 2 ** len(self.encoders), img_channel, kernel_size=3, padding=1)

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
