"""How much memory restoring an image takes, and the plan that keeps a run within a budget (``tile="auto"``).

The rule, the same for the CLI, the Python API, the demo and videos: restore the whole image (the model's own
output) when its estimated peak fits the budget; on the CPU, when only the slower allocation mode that returns
freed memory to the OS fits (:func:`darkir.runtime.memory_returned_to_os`), use it for that image; otherwise use
the largest square tiles that fit. Estimates are per input pixel and model width, from the calibration table
below, plus what the process already holds when the :class:`MemoryPlanner` is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from darkir.errors import DarkIRError
from darkir.hostmemory import cpu_available_memory, resident_memory
from darkir.memory_sizes import format_memory, parse_memory, without_unit

#: Peak bytes per input pixel per unit of model width on the CPU (channels_last), by precision and allocation
#: mode: ``heap`` keeps freed memory for reuse (fast, the default; glibc's heap grows to 2-3x the live peak) and
#: ``lean`` returns freed blocks to the OS (the live peak; about 1.8x slower at 1120x640). From
#: ``python benchmarks/memory_calibration.py`` (widths 16, 32 and 64, with and without CSF, 384x384 and 768x512,
#: three calls per process; 2-core AMD EPYC, torch 2.13): the lean figures are the largest measured; the heap ones
#: vary by +-15% from run to run (allocation order), so they are the typical value at 0.4-0.7 megapixels and a
#: run's peak can exceed its estimate by that much.
CPU_BYTES_PER_PIXEL_WIDTH = {
    ("fp32", "heap"): 100.0,
    ("fp32", "lean"): 43.0,
    ("bf16", "heap"): 71.0,
    ("bf16", "lean"): 34.0,
}
#: How much more the working memory of a full-speed (``heap``) pass on the CPU can peak when passes of other image
#: shapes ran in the process before it: the heap keeps their freed blocks, which the new shape's tensors fit badly
#: (folders of 4 to 10 images of 0.2-0.9 megapixels, each of another size, planned within their budget, peaked at
#: up to 1.5x the ``heap`` figure's working memory; the same shape again reuses what it freed). Such a pass is
#: planned with this allowance; where it does not fit, it runs lean.
HEAP_AFTER_OTHER_SHAPES = 1.6
#: Peak bytes per input pixel per unit of model width on CUDA (the caching allocator holds little beyond the live
#: peak), by precision (bf16 stands for fp16 too): from ``python benchmarks/gpu_restore.py`` on an H200 (width 32,
#: 1120x640 to 3840x2160, torch 2.11, CUDA 13), where the peak was 32.9 in fp16 and bf16 (the CPU's lean figure, 34,
#: is kept) and 55.9 in fp32 (which copies the dilated branches' inputs in fp32, :mod:`darkir.models.cuda_convs`).
CUDA_BYTES_PER_PIXEL_WIDTH = {"fp32": 56.0, "bf16": 34.0}
#: What the CUDA planner assumes above those figures (other GPUs, cuDNN versions and kernels).
CUDA_MARGIN = 1.15
#: Bytes per pixel of the whole image held outside the forward pass while it is restored: the decoded file, its
#: float32 copy, the output and its encoding, and the tiling accumulators (measured with the table above).
IMAGE_BYTES_PER_PIXEL = 64.0
#: Default budget on the CPU: what the process holds when the planner is made plus this share of the available
#: memory, at most :data:`DEFAULT_CAP` more (so that a 4K photo on a large machine stays within a few GB instead of
#: taking what is free: about 2.75 GB in all for ``darkir restore``, which holds ~0.35 GB with the model loaded).
DEFAULT_SHARE = 0.5
DEFAULT_CAP = 2.4e9
#: Default budget on CUDA: this share of the free device memory.
CUDA_DEFAULT_SHARE = 0.8
#: How messages name a budget the planner chose (none given); :meth:`MemoryPlanner.share_memory` splits only that one.
_DEFAULT_SOURCE = "the default budget"
#: Smallest tile the planner uses; a budget that cannot hold it is an error.
MIN_TILE = 128


def padded(height: int, width: int, multiple: int) -> tuple[int, int]:
    """``height`` x ``width`` as a model that pads each side to a ``multiple`` computes them."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def available_memory(device: torch.device) -> int:
    """Memory free for this process to use: the free device memory on CUDA; on the CPU, MemAvailable, or less where
    the process's control group leaves less room (:func:`~darkir.hostmemory.cpu_available_memory`)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return cpu_available_memory()


class PassRecord:
    """The shape of the last forward pass a Restorer ran: on the CPU the heap keeps what a pass freed, which a pass of
    the same shape reuses and one of another shape fits badly. One per Restorer (its ``with_exposure`` copies share
    it): the passes of other Restorers in the process are not seen."""

    def __init__(self, multiple: int = 1) -> None:
        #: The model pads each side of its input to a multiple of this, so 30x44 and 32x48 are one shape for it.
        self.multiple = multiple
        #: (batch, height, width as the model pads them) of the last pass; None before the first.
        self.last: tuple[int, int, int] | None = None
        #: Whether the last pass was a whole image (a tiled image's windows leave its full-size buffers freed too).
        self.last_whole = False

    def repeats_last(self, batch: int, height: int, width: int) -> bool:
        """Whether a pass of ``batch`` images of ``height`` x ``width`` has the last pass's shape (a batch no larger:
        a larger one's buffers do not fit the smaller batch's freed ones)."""
        last = self.last
        return last is not None and last[1:] == padded(height, width, self.multiple) and batch <= last[0]

    def after_other_shapes(self, batch: int, height: int, width: int) -> bool:
        """Whether a pass of ``batch`` images of ``height`` x ``width`` follows one of another shape."""
        return self.last is not None and not self.repeats_last(batch, height, width)

    def record(self, batch: int, height: int, width: int, whole: bool = True) -> None:
        """Record a pass of ``batch`` images of ``height`` x ``width`` (a ``whole`` image, or a tiled one's windows)
        as the last (of one shape, the largest batch: a video's last, smaller batch leaves the larger one's
        buffers)."""
        size, last = padded(height, width, self.multiple), self.last
        self.last = (max(batch, last[0]) if last is not None and last[1:] == size else batch, *size)
        self.last_whole = whole


@dataclass(frozen=True)
class Plan:
    """How one image is restored: whole (``tile == 0``) or in ``tile`` x ``tile`` windows, and why."""

    tile: int
    lean: bool
    estimate: int
    reason: str

    def whole(self, height: int, width: int) -> bool:
        """Whether a ``height`` x ``width`` image is restored whole (in one window) under this plan."""
        return not self.tile or (height <= self.tile and width <= self.tile)


class MemoryPlanner:
    """Plans each image of a run within ``max_memory`` bytes of peak memory (the process on the CPU, the
    device on CUDA); ``None``: what the process (device) holds with the model loaded plus, on the CPU,
    :data:`DEFAULT_SHARE` of the available memory, at most :data:`DEFAULT_CAP`, and on CUDA
    :data:`CUDA_DEFAULT_SHARE` of the free device memory."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        model_width: int,
        max_memory: int | str | None = None,
        multiple: int = 1,
        setting: str = "max_memory",
    ) -> None:
        #: The name messages give the budget and its setting (training's validation: ``train.val_max_memory``).
        self.setting = setting
        #: The model pads each side of its input to a multiple of this (DarkIR: 8), so a 1-pixel-high image
        #: computes as 8 rows.
        self.multiple = multiple
        self.device = device
        key = "fp32" if dtype == torch.float32 else "bf16"  # bf16 and fp16 (CUDA) hold 16-bit activations
        if device.type == "cuda":  # one allocation mode, keyed "heap"; host memory is not planned
            self.base = torch.cuda.memory_allocated(device)
            self.per_pixel = {"heap": CUDA_BYTES_PER_PIXEL_WIDTH[key] * model_width * CUDA_MARGIN}
            self.image_per_pixel = 0.0
        else:
            self.base = resident_memory()
            self.per_pixel = {mode: CPU_BYTES_PER_PIXEL_WIDTH[(key, mode)] * model_width for mode in ("heap", "lean")}
            self.per_pixel["heap after other shapes"] = self.per_pixel["heap"] * HEAP_AFTER_OTHER_SHAPES
            self.image_per_pixel = IMAGE_BYTES_PER_PIXEL
        if max_memory is None:
            self.budget, self.budget_source = self._default_budget(1), _DEFAULT_SOURCE
        else:
            self.budget, self.budget_source = parse_memory(max_memory, setting), setting
        if self.budget <= self.base:
            bytes_meant_gb = without_unit(max_memory) and self.budget < 1e4  # (--max-memory 3)
            raise DarkIRError(
                f"{self.budget_source} {format_memory(self.budget)} is less than the "
                f"{'device' if device.type == 'cuda' else 'process'} already holds with the model loaded "
                f"(~{format_memory(self.base)})"
                + (" (a number without a unit is bytes: give a unit, as in '2GB')" if bytes_meant_gb else "")
            )
        #: The passes run (the Restorer records them), whose freed memory shapes what a pass of another shape takes
        #: on the CPU.
        self.passes = PassRecord(multiple)

    def _default_budget(self, sharers: int) -> int:
        """What the process holds plus its share of the room the default leaves free (on the CPU at most
        :data:`DEFAULT_CAP`), where ``sharers`` processes plan in the same memory."""
        if self.device.type == "cuda":
            return int(self.base + CUDA_DEFAULT_SHARE * available_memory(self.device) / sharers)
        return int(self.base + min(DEFAULT_CAP, DEFAULT_SHARE * available_memory(self.device) / sharers))

    def share_memory(self, sharers: int, where: str) -> None:
        """Plan within this process's share of the default budget, where up to ``sharers`` processes (Ray workers)
        restore side by side in the memory of ``where`` (a node, a GPU); a ``max_memory`` given is each one's own."""
        if sharers > 1 and self.budget_source == _DEFAULT_SOURCE:
            self.budget = self._default_budget(sharers)
            self.budget_source = f"the default budget of a worker ({sharers} share a {where})"

    def _forward_pixels(self, batch: int, height: int, width: int) -> int:
        """The pixels a whole-image forward computes: each side padded to :attr:`multiple`."""
        rows, cols = padded(height, width, self.multiple)
        return batch * rows * cols

    def estimate(self, pixels: int, forward_pixels: int, mode: str = "heap") -> int:
        """Estimated peak bytes for an image of ``pixels`` whose forward passes see ``forward_pixels`` at once."""
        return int(self.base + self.image_per_pixel * pixels + self.per_pixel[mode] * forward_pixels)

    def _too_large(self, batch: int, height: int, width: int) -> str:
        """Why an image (a batch) fits no plan: the least memory one would need (whole, lean, or the smallest
        tiles, where the image is larger than they are), and what to change."""
        pixels, forward = batch * height * width, self._forward_pixels(batch, height, width)
        needs = [(self.estimate(pixels, forward), "whole")]
        if "lean" in self.per_pixel:
            needs.append((self.estimate(pixels, forward, "lean"), "whole, freed memory returned to the OS"))
        if max(height, width) > MIN_TILE:
            needs.append((self.estimate(pixels, batch * MIN_TILE**2), f"in {MIN_TILE} px tiles"))
        need, how = min(needs)
        raise_budget = f"raise {self.setting}"  # the command line says --max-memory (darkir.cli.in_flags)
        what, fix = (
            (f"a batch of {batch} {width}x{height} frames", f"lower --batch or {raise_budget}")
            if batch > 1
            else (f"a {width}x{height} image", raise_budget)
        )
        budget = f"{self.budget_source} {format_memory(self.budget)}"
        return f"{what} does not fit {budget}: it needs at least ~{format_memory(need, up=True)} ({how}); {fix}"

    def heap_limit(self, plan: Plan, after_other_shapes: bool) -> int:
        """The most free memory the CPU heap may keep before a full-speed whole pass of ``plan``: after passes of other
        shapes, whose holes it reuses badly (:data:`HEAP_AFTER_OTHER_SHAPES`), no more than leaves the pass its room
        in the budget; before the first pass, its estimate."""
        return self.budget - plan.estimate if after_other_shapes else plan.estimate

    def plan(self, height: int, width: int, batch: int = 1, held: int | None = None) -> Plan:
        """The whole image if it fits, else (CPU) the whole image in lean mode, else the largest fitting tiles;
        for ``batch`` images at once, of ``held`` in memory (default ``batch``). On the CPU a pass of another shape
        than the last is planned with more memory (:data:`HEAP_AFTER_OTHER_SHAPES`)."""
        pixels, forward = (held or batch) * height * width, self._forward_pixels(batch, height, width)
        budget = format_memory(self.budget)
        mixed = self.passes.after_other_shapes(batch, height, width) and "heap after other shapes" in self.per_pixel
        whole = self.estimate(pixels, forward, "heap after other shapes" if mixed else "heap")
        if whole <= self.budget:
            return Plan(0, False, whole, f"whole image: needs ~{format_memory(whole)} of {budget}")
        if "lean" in self.per_pixel:
            lean = self.estimate(pixels, forward, "lean")
            if lean <= self.budget:
                return Plan(
                    0, True, lean, f"whole image, freed memory returned to the OS: ~{format_memory(lean)} of {budget}"
                )
        room = self.budget - self.estimate(pixels, 0)
        side = math.isqrt(max(0, int(room / (batch * self.per_pixel["heap"])))) // 32 * 32
        if side < MIN_TILE:
            raise DarkIRError(self._too_large(batch, height, width))
        tiled = self.estimate(pixels, batch * side * side)
        return Plan(
            side, False, tiled,
            f"tiled in {side} px windows: the whole image would need ~{format_memory(whole)}, over {budget}",
        )  # fmt: skip
