"""When a Restorer compiles its model by itself (``compile="auto"``, the default): on a CUDA GPU, for an input shape
that a job will restore often enough to earn the compile back.

``torch.compile`` fuses DarkIR's element-wise steps (normalizations, gates, the frequency branch) into fewer kernels:
on one H200 at 1920x1080 in fp16 it restored an image in 43 ms against 88 ms eager, after a compile of 45 s for
each new shape (``reports/gpu_restore.json``, ``benchmarks/gpu_restore.py``). A job of a few images would
wait longer for the compile than it saves, so compiling is left to jobs that know how many images of one shape they
will restore (a video's frames, a folder's images of one size) and restore enough of them. The two figures are one
GPU's; a slower GPU saves more per image and compiles in about the same time, so they err towards not compiling.
"""

from __future__ import annotations

import functools

import torch

#: Seconds ``torch.compile`` takes for a new input shape (first compile in a process, empty compiler cache).
COMPILE_SECONDS = 45.0
#: Seconds the compiled model saves per megapixel restored (eager fp16 against compiled fp16, at 1920x1080).
SAVED_SECONDS_PER_MEGAPIXEL = 0.0217
#: Input shapes compiled at most (torch's ``recompile_limit``: beyond it, torch runs the model uncompiled).
MAX_COMPILED_SHAPES = 8


@functools.cache
def can_compile(device: torch.device) -> bool:
    """Whether darkir compiles by itself on ``device``: a CUDA GPU, with Triton (Inductor's GPU code generator)."""
    if device.type != "cuda":
        return False
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return bool(has_triton())


def images_to_earn(height: int, width: int) -> int:
    """How many ``height`` x ``width`` images a job must restore for compiling to save more time than it takes."""
    saved_per_image = height * width / 1e6 * SAVED_SECONDS_PER_MEGAPIXEL
    return max(1, int(-(-COMPILE_SECONDS // saved_per_image)))


def compiling_note(shapes: list[tuple[int, int, int]]) -> str:
    """What a job prints when :meth:`darkir.infer.Restorer.expect` chose ``shapes`` (batch, height, width)."""
    sizes = ", ".join(f"{w}x{h}" + (f" ({n} at once)" if n > 1 else "") for n, h, w in shapes)
    return (
        f"compiling the model for {sizes} (torch.compile: the first image of each size waits for it, 45 s on an "
        "H200, and the rest go about twice as fast; --no-compile skips it)"
    )
