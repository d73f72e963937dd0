"""Parameter and multiply-accumulate counts, measured the way the published GMac figures were (ptflops)."""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import asdict, dataclass

from torch import nn

from darkir.errors import DarkIRError, check_counts


@dataclass(frozen=True)
class Complexity:
    """Model size and cost for one ``channels x size x size`` input."""

    params: int
    macs: int
    input_shape: tuple[int, int, int]
    #: The side the model computes: ``size`` padded to the model's multiple (a DarkIR's 8), which its MACs count
    #: (None: ``size`` itself).
    computed_side: int | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {**asdict(self), "input_shape": list(self.input_shape)}

    def summary(self) -> str:
        """One human line, e.g. ``3.32 M params, 7.25 GMac at 3x256x256`` (and the side computed, where the model
        pads the input: ``at 3x255x255, computed as 256x256``)."""
        channels, side = self.input_shape[0], self.input_shape[1]
        computed = self.computed_side or side
        padded = f", computed as {computed}x{computed}" if computed != side else ""
        return f"{self.params / 1e6:.2f} M params, {self.macs / 1e9:.2f} GMac at {channels}x{side}x{side}{padded}"


def measure_complexity(model: nn.Module, size: int = 256, channels: int | None = None) -> Complexity:
    """Count parameters and MACs with ptflops' module hooks (conv, linear, norm, activations, pooling).

    Like the published figures, elementwise tensor math and FFTs are not counted. The model is
    copied first, so ptflops' hooks never touch the caller's instance. A forward that fails (an input too large to
    allocate) is a RuntimeError with its reason: ptflops would print its traceback and count nothing. A size whose
    forward pass would need more memory than is free is a MemoryError before it runs (it met the OOM killer).
    ``channels``: the input's (default: a DarkIR's ``img_channel``, else 3).
    """
    import torch
    from ptflops import get_model_complexity_info

    config = getattr(model, "config", None)
    taken = config.get("img_channel") if isinstance(config, dict) else None  # a DarkIR's channels
    channels = channels if channels is not None else taken or 3
    _check_arguments(model, size, channels)
    _check_memory(model, size)
    probe = copy.deepcopy(model).cpu().eval()
    told = io.StringIO()
    with contextlib.redirect_stdout(told), contextlib.redirect_stderr(told), torch.inference_mode():
        macs, params = get_model_complexity_info(
            probe,
            (channels, size, size),
            as_strings=False,
            print_per_layer_stat=False,
            verbose=False,
            backend="pytorch",
        )
    if macs is None or params is None:
        raise RuntimeError(_failure(told.getvalue()))
    multiple = int(getattr(model, "padder_size", 1))
    computed = -(-size // multiple) * multiple
    return Complexity(params=int(params), macs=int(macs), input_shape=(channels, size, size), computed_side=computed)


def _check_arguments(model: object, size: object, channels: object) -> None:
    """Refuse what is no model, a size or channel count that is not a whole number of at least 1, and channels other
    than a DarkIR's ``img_channel``, each by name (their forward failed with torch's words)."""
    if not isinstance(model, nn.Module):
        raise DarkIRError(
            f"model must be a torch.nn.Module, got {type(model).__name__} (darkir.create_model makes one from a name)"
        )
    check_counts(size=size, channels=channels)
    config = getattr(model, "config", None)
    if isinstance(config, dict) and config.get("img_channel", channels) != channels:
        raise DarkIRError(f"the model takes images of {config['img_channel']} channel(s) (img_channel), not {channels}")


def _check_memory(model: nn.Module, size: int) -> None:
    """Raise a MemoryError where one forward pass of a DarkIR at ``size`` x ``size`` would need more memory than is
    free (the restore planner's CPU estimate; models without a DarkIR config are not checked)."""
    from darkir.hostmemory import cpu_available_memory
    from darkir.infer.memory import CPU_BYTES_PER_PIXEL_WIDTH
    from darkir.memory_sizes import format_memory

    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "width" not in config:
        return
    need = CPU_BYTES_PER_PIXEL_WIDTH[("fp32", "heap")] * config["width"] * size * size
    free = cpu_available_memory()
    if need > free:
        raise MemoryError(
            f"its forward pass needs ~{format_memory(need)}, more than the {format_memory(free)} free; MACs grow "
            "with the pixel count: measure at a smaller size and scale"
        )


def _failure(told: str) -> str:
    """The exception ptflops printed (``<class 'RuntimeError'>: reason``), as ``reason``."""
    lines = told.splitlines()
    start = next((index + 1 for index, line in enumerate(lines) if "the following exception" in line), len(lines))
    reason = lines[start] if start < len(lines) else "the model's forward failed"
    return reason.split(">: ", 1)[-1]
