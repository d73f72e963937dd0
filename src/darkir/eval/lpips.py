"""LPIPS (Zhang et al. 2018, AlexNet variant v0.1) without network access.

The network is the published one: torchvision's AlexNet ``features`` (weights
``alexnet-owt-7be5be79.pth``, normally cached by torchvision under ``torch.hub.get_dir()/checkpoints``)
and the LPIPS linear heads ``weights/v0.1/alex.pth`` shipped in the ``lpips`` wheel. Neither is
downloaded: when a file is missing, :class:`LPIPSUnavailableError` says which and how to get it, and
callers report LPIPS as unavailable while still reporting everything else. A file that is there but holds
something else is a :class:`~darkir.errors.CheckpointError` naming it and what it should hold.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from darkir.errors import CheckpointError, DarkIRError
from darkir.eval.metrics import check_pair
from darkir.weightfiles import load_weights_file, state_mismatch

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
#: Images smaller than this on either side get NaN: AlexNet's third pooling would have no pixel left
#: (31 px -> 7 after conv1 (11, stride 4) -> 3 after the first pooling -> 1 after the second).
MIN_SIZE = 31
#: Input normalization of the LPIPS paper's ScalingLayer (for inputs in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
#: (in, out, kernel, stride, padding) of AlexNet's five convolutions, at torchvision's ``features`` indices.
_ALEX_CONVS = {
    0: (3, 64, 11, 4, 2),
    3: (64, 192, 5, 1, 2),
    6: (192, 384, 3, 1, 1),
    8: (384, 256, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}


#: The tensors LPIPS takes from each file, with their shapes.
BACKBONE_SHAPES = {
    f"features.{i}.{part}": shape
    for i, (cin, cout, k, _, _) in _ALEX_CONVS.items()
    for part, shape in (("weight", (cout, cin, k, k)), ("bias", (cout,)))
}
HEADS_SHAPES = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
#: Each LPIPS file: the tensors it holds and how errors name it.
_FILES = {
    "backbone": (BACKBONE_SHAPES, f"torchvision's AlexNet weights ({BACKBONE_FILE})"),
    "heads": (HEADS_SHAPES, "the LPIPS v0.1 alex linear heads (weights/v0.1/alex.pth of the lpips package)"),
}


class LPIPSUnavailableError(DarkIRError):
    """A weights file LPIPS needs is not on this machine."""


def default_backbone_path() -> Path:
    """Where torchvision caches the AlexNet weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILE


def default_heads_path() -> Path | None:
    """The linear heads inside an installed ``lpips`` package (found without importing it)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "alex.pth"


class LPIPS(nn.Module):
    """LPIPS distance per image for (N, 3, H, W) inputs in [0, 1]; lower is more similar."""

    def __init__(self, backbone: dict[str, torch.Tensor], heads: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {str(i): nn.Conv2d(cin, cout, k, stride=s, padding=p) for i, (cin, cout, k, s, p) in _ALEX_CONVS.items()}
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 192, 384, 256, 256))
        weights = {f"convs.{key.removeprefix('features.')}": backbone[key] for key in BACKBONE_SHAPES}
        weights.update({f"heads.{i}.weight": heads[f"lin{i}.model.1.weight"] for i in range(5)})
        self.load_state_dict(weights, strict=True)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2 - 1) - self.shift) / self.scale
        taps = []
        for index in sorted(_ALEX_CONVS):
            if index in (3, 6):
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(self.convs[str(index)](x))
            taps.append(x)
        return taps

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The distance of each pair of (N, 3, H, W) float images in [0, 1] (as :func:`~darkir.eval.metrics.psnr`
        takes them); NaN for images under :data:`MIN_SIZE` px on a side."""
        check_pair(pred, target, 1.0, "lpips")
        if pred.shape[1] != 3:
            raise ValueError(f"lpips: images must be RGB, (N, 3, H, W), got {tuple(pred.shape)}")
        if min(pred.shape[-2:]) < MIN_SIZE:
            return torch.full((pred.shape[0],), float("nan"), device=pred.device)
        total = torch.zeros(pred.shape[0], device=pred.device)
        for head, a, b in zip(self.heads, self._features(pred.float()), self._features(target.float()), strict=True):
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            total = total + head((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips(backbone: str | os.PathLike[str] | None = None, heads: str | os.PathLike[str] | None = None) -> LPIPS:
    """LPIPS from local files (defaults: torch hub cache and the installed ``lpips`` package). A file named is read
    first: what it holds is checked before a default file is looked for."""
    given = (("backbone", backbone), ("heads", heads))
    named = {kind: _read_weights(Path(path), kind) for kind, path in given if path and Path(path).is_file()}
    backbone_path = Path(backbone) if backbone else default_backbone_path()
    heads_path = Path(heads) if heads else default_heads_path()
    missing = []  # both named at once: the second was told only once the first was there
    if not backbone_path.is_file():
        missing.append(
            f"AlexNet weights {backbone_path} are missing (copy {BACKBONE_FILE} from a machine where "
            "torchvision.models.alexnet(weights='IMAGENET1K_V1') has run)"
        )
    if heads_path is None or not heads_path.is_file():
        missing.append(
            f"linear heads {heads_path or 'lpips/weights/v0.1/alex.pth'} are missing (pip install --no-deps lpips "
            "ships them)"
        )
    if missing:
        raise LPIPSUnavailableError(f"LPIPS unavailable: {'; '.join(missing)}")
    return LPIPS(
        named["backbone"] if backbone else _read_weights(backbone_path, "backbone"),
        named["heads"] if heads else _read_weights(heads_path, "heads"),
    )


def _read_weights(path: Path, kind: str) -> dict[str, torch.Tensor]:
    """The tensors of the LPIPS file ``kind`` (``backbone`` or ``heads``) at ``path``; a CheckpointError naming
    the file and what it should hold otherwise (and saying so when it holds the other file: the two swapped)."""
    shapes, what = _FILES[kind]
    state = load_weights_file(path, f"expected {what}")
    problem = state_mismatch(state, shapes)
    if problem is None:
        return state
    other = next(name for name in _FILES if name != kind)
    if state_mismatch(state, _FILES[other][0]) is None:
        problem = f"it holds the LPIPS {other} instead (were the backbone and heads files swapped?)"
    raise CheckpointError(f"{path}: not {what}: {problem}")
