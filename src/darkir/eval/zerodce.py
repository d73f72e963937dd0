"""Zero-DCE (Guo et al., CVPR 2020) as a comparison peer: a 7-layer CNN predicting 8 quadratic curves.

darkir never ships its weights: pass the official ``Epoch99.pth`` (from the authors' public repository)
by path. The layer names match that file, so it loads strictly.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.nn import functional as F

from darkir.errors import CheckpointError
from darkir.weightfiles import load_weights_file, state_mismatch


class ZeroDCE(nn.Module):
    """Light-enhancement curve estimation: ``x <- x + r_i * (x^2 - x)`` for 8 predicted per-pixel maps."""

    def __init__(self, features: int = 32, iterations: int = 8) -> None:
        super().__init__()
        self.iterations = iterations
        self.e_conv1 = nn.Conv2d(3, features, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(features, features, 3, 1, 1)
        self.e_conv3 = nn.Conv2d(features, features, 3, 1, 1)
        self.e_conv4 = nn.Conv2d(features, features, 3, 1, 1)
        self.e_conv5 = nn.Conv2d(features * 2, features, 3, 1, 1)
        self.e_conv6 = nn.Conv2d(features * 2, features, 3, 1, 1)
        self.e_conv7 = nn.Conv2d(features * 2, 3 * iterations, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The enhanced image for an (N, 3, H, W) batch in [0, 1]."""
        f1 = F.relu(self.e_conv1(x))
        f2 = F.relu(self.e_conv2(f1))
        f3 = F.relu(self.e_conv3(f2))
        f4 = F.relu(self.e_conv4(f3))
        f5 = F.relu(self.e_conv5(torch.cat([f3, f4], 1)))
        f6 = F.relu(self.e_conv6(torch.cat([f2, f5], 1)))
        curves = torch.tanh(self.e_conv7(torch.cat([f1, f6], 1)))
        for r in torch.split(curves, 3, dim=1):
            x = x + r * (x * x - x)
        return x


def load_zero_dce(path: str | os.PathLike[str]) -> ZeroDCE:
    """The Zero-DCE network with the weights of ``path`` (the official ``Epoch99.pth``), in eval mode; a
    CheckpointError naming the file and what it should hold when it cannot be read or holds something else."""
    model = ZeroDCE()
    expected = "expected the official Zero-DCE Epoch99.pth"
    state = load_weights_file(path, expected)
    if isinstance(state, dict):  # saved from a DataParallel model
        state = {key.removeprefix("module.") if isinstance(key, str) else key: value for key, value in state.items()}
    wanted = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    problem = state_mismatch(state, wanted)
    extra = sorted(set(state) - set(wanted)) if problem is None else []
    if problem is not None or extra:
        raise CheckpointError(f"{path}: not a Zero-DCE checkpoint ({problem or f'unexpected {extra[0]}'}); {expected}")
    model.load_state_dict(state, strict=True)
    return model.eval()
