"""Parameter and multiply-accumulate counts, measured the way the published GMac figures were (ptflops)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from torch import nn


@dataclass(frozen=True)
class Complexity:
    """Model size and cost for one ``channels x size x size`` input."""

    params: int
    macs: int
    input_shape: tuple[int, int, int]

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {**asdict(self), "input_shape": list(self.input_shape)}

    def summary(self) -> str:
        """One human line, e.g. ``3.32 M params, 7.25 GMac at 3x256x256``."""
        shape = "x".join(map(str, self.input_shape))
        return f"{self.params / 1e6:.2f} M params, {self.macs / 1e9:.2f} GMac at {shape}"


def measure_complexity(model: nn.Module, size: int = 256, channels: int = 3) -> Complexity:
    """Count parameters and MACs with ptflops' module hooks (conv, linear, norm, activations, pooling).

    Like the published figures, elementwise tensor math and FFTs are not counted. The model is
    copied first, so ptflops' hooks never touch the caller's instance.
    """
    from ptflops import get_model_complexity_info

    probe = copy.deepcopy(model).cpu().eval()
    macs, params = get_model_complexity_info(
        probe,
        (channels, size, size),
        as_strings=False,
        print_per_layer_stat=False,
        verbose=False,
        backend="pytorch",
    )
    return Complexity(params=int(params), macs=int(macs), input_shape=(channels, size, size))
