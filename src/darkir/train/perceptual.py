"""The official code's perceptual loss (``train.perceptual``): distances between VGG19 features of the output and the
reference, from ImageNet weights the user already has (darkir downloads nothing)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from darkir.errors import CheckpointError, ConfigError
from darkir.weightfiles import load_weights_file, state_mismatch

#: VGG19's convolution widths, ``"M"`` a 2x2 max-pool, up to its fifth block's first convolution (the last features
#: the loss takes): the start of torchvision's ``vgg19().features``, whose ImageNet weights load into
#: :class:`VGG19Features` by the same keys (``features.<index>.weight``).
_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
#: The indices in ``features`` after which the official loss takes its features (relu1_1, relu2_1, relu3_1,
#: relu4_1, relu5_1), and the weight of each.
_TAPS = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}
#: The file torchvision caches VGG19's ImageNet weights in (``torch.hub.get_dir()/checkpoints``).
VGG19_FILE = "vgg19-dcbb9e9d.pth"


def vgg19_weights_path() -> Path:
    """Where VGG19's ImageNet weights are read from: torchvision's cache of them under ``torch.hub.get_dir()``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def check_vgg19_weights(path: Path | None = None) -> None:
    """Refuse ``train.perceptual`` where VGG19's weights file (by default :func:`vgg19_weights_path`) is missing."""
    path = vgg19_weights_path() if path is None else path
    if not path.is_file():
        raise ConfigError(
            f"train.perceptual: needs VGG19's ImageNet weights at {path} (torchvision's {VGG19_FILE}, 548 MB), and "
            "darkir downloads nothing: copy the file there (torch.hub.get_dir() follows $TORCH_HOME), or set "
            "train.perceptual to False"
        )


class VGG19Features(nn.Module):
    """VGG19's convolutional part up to relu5_1, frozen, giving the features at :data:`_TAPS`."""

    def __init__(self) -> None:
        """The layers of :data:`_LAYOUT`, each convolution followed by its ReLU, randomly initialized."""
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in _LAYOUT:
            if width == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.ReLU()]
            channels = int(width)
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The features of ``x`` at each of :data:`_TAPS`, in order."""
        taken = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                taken.append(x)
        return taken


class PerceptualLoss:
    """``train.perceptual``: the weighted sum over :data:`_TAPS` of ``criterion`` (``l1``/``l2``, with
    ``reduction``) between the VGG19 features of the output and of the reference, the images fed as they are in
    [0, 1] (as the official loss feeds them)."""

    def __init__(self, criterion: str, reduction: str, device: torch.device) -> None:
        """The loss of ``criterion`` and ``reduction``, its VGG19 (:func:`load_vgg19`) on ``device``."""
        self.criterion = F.l1_loss if criterion == "l1" else F.mse_loss
        self.reduction = reduction
        self.vgg = load_vgg19().to(device)

    def __call__(self, out: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The loss of the output ``out`` against the reference ``high`` (its gradient flows to ``out`` only)."""
        with torch.no_grad():
            targets = self.vgg(high.float())
        features = self.vgg(out.float())
        terms = [
            weight * self.criterion(feature, target, reduction=self.reduction)
            for weight, feature, target in zip(_TAPS.values(), features, targets, strict=True)
        ]
        return torch.stack(terms).sum()


def load_vgg19(path: str | os.PathLike[str] | None = None) -> VGG19Features:
    """:class:`VGG19Features` with the ImageNet weights of torchvision's file at ``path`` (by default
    :func:`vgg19_weights_path`); a ConfigError naming ``train.perceptual`` and the file where it is missing, cannot
    be read, or holds no such weights (other tensors, or values that are not finite)."""
    path = vgg19_weights_path() if path is None else Path(path)
    check_vgg19_weights(path)
    expected = f"train.perceptual needs torchvision's VGG19 ImageNet weights ({VGG19_FILE}) there"
    try:
        state = load_weights_file(path, expected)
    except CheckpointError as exc:
        raise ConfigError(f"train.perceptual: {exc}") from None
    model = VGG19Features()
    wanted = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    problem = state_mismatch(state, wanted)
    if problem is None and not all(torch.isfinite(state[key]).all() for key in wanted):
        problem = "some of its weights are not finite"
    if problem is not None:
        raise ConfigError(f"train.perceptual: {path}: not VGG19's weights ({problem}); {expected}")
    model.load_state_dict({key: state[key] for key in wanted}, strict=True)  # (the classifier's are not used)
    return model.requires_grad_(False).eval()
