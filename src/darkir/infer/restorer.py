"""The restoration engine: a loaded model, its fast path (channels_last, fp16/bf16, compile) and the memory plan; the
inputs it is called on (paths, PIL images, arrays, tensors) are :mod:`darkir.infer.inputs`', tiles
:mod:`darkir.infer.tiling`'s."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from darkir.errors import CheckpointError, DarkIRError, check_counts, first_line, is_whole, warn, warnings_ignored
from darkir.infer.compiling import MAX_COMPILED_SHAPES, can_compile, images_to_earn
from darkir.infer.defaults import DEFAULT_TILE
from darkir.infer.exposure import apply_exposure, check_exposure
from darkir.infer.inputs import check_array, check_batch, restore_input
from darkir.infer.memory import MemoryPlanner, PassRecord, Plan
from darkir.infer.tiling import (
    GUIDE_SCALE,
    TONE_SAFE_TILE,
    check_tiling,
    restore_in_tiles,
    window_count,
    window_overlap,
    window_shape,
    window_side,
)
from darkir.runtime import (
    keep_freed_memory_for_reuse,
    memory_returned_to_os,
    release_free_memory,
    release_free_memory_over,
    resolve_device,
    resolve_precision,
)


def check_compile(compile: bool | str) -> bool | str:
    """Refuse a ``compile`` setting other than True, False or ``"auto"``."""
    if compile is True or compile is False or (isinstance(compile, str) and compile == "auto"):
        return compile
    raise DarkIRError(f"compile must be True, False or 'auto', got {compile!r}")


@dataclass(frozen=True)
class RestoreSettings:
    """How a :class:`Restorer` runs (the meaning of each field is in its docstring): its arguments but the model,
    ``guide_scale`` and ``memory_setting``, with the same defaults, which the command line builds once and the local
    and Ray engines both use."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = DEFAULT_TILE
    overlap: int | None = None
    max_memory: int | str | None = None
    compile: bool | str = "auto"
    exposure: float = 0.0

    def restorer(self, model: nn.Module) -> Restorer:
        """A Restorer of ``model`` with these settings, for images and videos: a model that takes other than RGB
        (``img_channel`` 3) is refused here, before any file is read."""
        restorer = Restorer(model, **{field.name: getattr(self, field.name) for field in fields(RestoreSettings)})
        restorer.require_rgb()
        return restorer


def _planned_passes_lock(planned: bool) -> contextlib.AbstractContextManager:
    """The lock a Restorer's passes take: re-entrant where a budget is ``planned``, else none."""
    return threading.RLock() if planned else contextlib.nullcontext()


def _check_model(model: object) -> None:
    """Refuse what is not a torch module, or one whose weights are not float32 (precisions other than fp32 compute
    through autocast, over float32 weights)."""
    if not isinstance(model, nn.Module):
        raise DarkIRError(
            f"model must be a torch.nn.Module (e.g. darkir.create_model(...)), got {type(model).__name__}; "
            "Restorer.from_pretrained loads one by name or path"
        )
    if any(p.is_meta for p in model.parameters()):
        raise DarkIRError("the model's weights are on the meta device (they have no values): load weights first")
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.dtype != torch.float32})
    if dtypes:
        raise DarkIRError(
            f"the model's weights are {', '.join(dtypes)}; a Restorer runs float32 weights (its precision, bf16 or "
            "fp16, applies to the computation): pass model.float()"
        )


class Restorer:
    """Runs a DarkIR model on images of any size, fast and in bounded memory.

    ``tile``: ``"auto"`` (default) restores each image whole when its estimated peak memory fits
    ``max_memory`` (bytes or a size like ``"3GB"``; default: from the device, see :class:`MemoryPlanner`) and
    otherwise in the largest tiles that fit. A number: images with a side longer than this are restored in
    ``tile`` x ``tile`` windows (rounded down to the model's multiple of 8); 0: always whole. Windows overlap by
    ``overlap`` pixels and are blended with linear ramps. DarkIR's
    frequency branch sees a whole image at once, so a tile alone restores with the tone of its own
    content; each tile therefore takes its coarse content (scales above :data:`GUIDE_SCALE` pixels)
    from a preview of the whole image restored at tile size, and keeps its own detail
    (``guide_scale=None`` blends plain tiles).
    ``precision``: ``auto`` (default: bf16 on CPUs with native bf16, fp16 on CUDA GPUs with tensor cores, else
    fp32), ``fp32`` (exact), ``bf16`` (CPU with AVX-512 BF16/AMX, or GPU) or
    ``fp16`` (GPU), applied with autocast so that normalizations and FFTs stay in fp32.
    ``compile``: ``"auto"`` (default) compiles the model with ``torch.compile`` on a CUDA GPU for the input shapes
    that a job says (:meth:`expect`) it will restore often enough to earn the compile back
    (:mod:`darkir.infer.compiling`; ``darkir restore`` and ``darkir video`` say so); True compiles for every shape
    (slow first call of each, faster afterwards); False never.
    ``exposure``: exposure compensation of the output in EV (stops), applied in linear light with highlights rolled
    off (:mod:`darkir.infer.exposure`); 0 (default) is the model's output exactly.
    ``memory_setting``: the name messages give ``max_memory`` (what a caller lets its users set it by).

    Calling a Restorer restores what users have and returns the same kind of thing: see :meth:`__call__`. The
    ``model`` given is the one it runs, set to eval mode and moved to the device in channels-last layout in place
    (pass a copy, ``copy.deepcopy(model)``, to keep training it as it was).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str = DEFAULT_TILE,
        overlap: int | None = None,
        compile: bool | str = "auto",
        guide_scale: int | None = GUIDE_SCALE,
        max_memory: int | str | None = None,
        exposure: float = 0.0,
        memory_setting: str = "max_memory",
    ) -> None:
        _check_model(model)
        if guide_scale is not None and not (is_whole(guide_scale) and guide_scale >= 1):
            raise DarkIRError(f"guide_scale must be a whole number of pixels (1 or more) or None, got {guide_scale!r}")
        check_tiling(tile, overlap, max_memory)
        self.compile = check_compile(compile)
        self.exposure = check_exposure(exposure)
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.tile = tile if tile == "auto" else int(tile)  # a NumPy integer too
        self.overlap = None if overlap is None else int(overlap)
        self.guide_scale = guide_scale
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        #: The input shapes (batch, height, width) that ``compile="auto"`` runs compiled (:meth:`expect`).
        self.compiled_shapes: set[tuple[int, int, int]] = set()
        self._multiple = int(getattr(model, "padder_size", 1))  # the model pads its input to a multiple of this
        self.planner = None
        if tile == "auto":
            width = int(getattr(model, "config", {}).get("width", 32))
            self.planner = MemoryPlanner(
                self.device, self.dtype, width, max_memory, multiple=self._multiple, setting=memory_setting
            )
        #: The shape of the last pass run (the planner's record, where there is one).
        self.passes = self.planner.passes if self.planner is not None else PassRecord(self._multiple)
        #: The plan of the last image restored (whole or tiled, and why), by any thread using this Restorer: where
        #: several do, ask :meth:`plan_for` for an image's own plan.
        self.last_plan: Plan | None = None
        #: Whether the tone warning of small tiles was given (once per Restorer: a batch's images all give it).
        self._warned_small_tiles = False
        #: Held by each planned pass (a whole image, its tiles, a batch) under ``tile="auto"``, so that threads
        #: sharing this Restorer, and its :meth:`with_exposure` copies, restore one image at a time: each pass has the
        #: memory budget to itself. A fixed tile plans no budget, and its threads run side by side.
        self._one_at_a_time = _planned_passes_lock(self.planner is not None)

    def __getstate__(self) -> dict[str, Any]:
        """What a copy or a pickle takes: all but the lock, which each Restorer makes its own."""
        return {key: value for key, value in self.__dict__.items() if key != "_one_at_a_time"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._one_at_a_time = _planned_passes_lock(self.planner is not None)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str = DEFAULT_TILE,
        overlap: int | None = None,
        compile: bool | str = "auto",
        max_memory: int | str | None = None,
        exposure: float = 0.0,
    ) -> Restorer:
        """A Restorer over a packaged model name (default: the default weights) or a checkpoint in any layout."""
        from darkir.models import create_model

        if isinstance(name_or_path, (str, os.PathLike)) and not str(name_or_path).strip():
            raise CheckpointError(
                "Restorer.from_pretrained: the model name or checkpoint path is empty (an unset variable?); "
                "pass None for the default weights"
            )
        model = create_model(name_or_path, require_weights=True)
        return cls(model, device=device, precision=precision, tile=tile, overlap=overlap, compile=compile,
                   max_memory=max_memory, exposure=exposure)  # fmt: skip

    def with_exposure(self, exposure: float) -> Restorer:
        """This Restorer (same model, settings and memory plan, the planner's record of the passes run included)
        with another ``exposure`` in EV."""
        other = copy.copy(self)
        other.exposure = check_exposure(exposure)
        other._one_at_a_time = self._one_at_a_time  # (a copy makes its own: this one takes turns with this Restorer)
        return other

    def __call__(self, image: Any) -> Any:
        """Restore ``image`` and return the same kind of thing, as ``darkir restore`` would restore it.

        - a file path (str, bytes or PathLike): the decoded file restored, as a numpy array of its bit depth (uint8,
          uint16 or float32), gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4), EXIF orientation applied;
        - a PIL image (mode L, I;16, RGB or RGBA; I;16B, big-endian 16-bit, comes back as I;16): a PIL image of
          the same mode and size, with its ICC profile, EXIF and dpi (``info``); as in Pillow, the EXIF orientation
          is not applied (``ImageOps.exif_transpose``); one with a transparency key (``tRNS``) is refused;
        - a numpy array (uint8, uint16, or float32/float64 in [0, 1]; (H, W) or (H, W, 1) gray, (H, W, 3) or
          (H, W, 4)): an array of the same dtype and shape;
        - a torch tensor (N, 3, H, W), float in [0, 1]: a tensor of the same dtype and device, clamped to [0, 1].

        Alpha is passed through unchanged (a float alpha as float32, clipped to [0, 1]) and gray images come back
        gray. Anything else is a :class:`DarkIRError` naming what was wrong.
        """
        return restore_input(self, image)

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        """The Restorer's precision for the forward: autocast to bf16/fp16, or none in fp32, also inside a caller's
        own autocast block (which would otherwise make an fp32 Restorer compute in half precision)."""
        fp32 = self.dtype == torch.float32
        with torch.autocast(self.device.type, dtype=None if fp32 else self.dtype, enabled=not fp32):
            yield

    @property
    def compiles_on_demand(self) -> bool:
        """Whether :meth:`expect` may compile: ``compile="auto"`` on a GPU that can compile."""
        return self.compile == "auto" and can_compile(self.device)

    def expect(self, counts: Mapping[tuple[int, int, int], int]) -> list[tuple[int, int, int]]:
        """Say how many inputs of each shape (batch, height, width) a job is about to restore. With
        ``compile="auto"`` on a GPU that can compile, the model is then compiled for the shapes restored whole and
        often enough to earn the compile back (:func:`darkir.infer.compiling.images_to_earn`); returns the shapes
        newly chosen (so that the job can say it compiles), else an empty list."""
        if not isinstance(counts, Mapping):
            raise DarkIRError(f"expect takes {{(batch, height, width): count}}, got {type(counts).__name__}")
        for shape, count in counts.items():
            if not (isinstance(shape, tuple) and len(shape) == 3 and all(is_whole(n) and n >= 0 for n in shape)):
                raise DarkIRError(f"expect's keys are shapes (batch, height, width) of whole numbers, got {shape!r}")
            if not (is_whole(count) and count >= 0):
                raise DarkIRError(f"expect's counts are whole numbers of at least 0, got {count!r} for {shape}")
        if not self.compiles_on_demand:
            return []
        earning = [
            (batch, height, width)
            for (batch, height, width), count in counts.items()
            if count > 0
            and height * width > 0
            and (batch, height, width) not in self.compiled_shapes
            and batch * count >= images_to_earn(height, width)
            and self._whole_plan(height, width, batch) is not None
        ]
        earning.sort(key=lambda shape: -counts[shape] * shape[0] * shape[1] * shape[2])  # most time saved first
        chosen = earning[: max(0, MAX_COMPILED_SHAPES - len(self.compiled_shapes))]
        self.compiled_shapes.update(chosen)
        return chosen

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for ``x``, compiled where :attr:`compile` says so. Under ``"auto"`` a compiler that
        fails costs speed, not the job: where the compiled model fails and the model itself does not, a warning, and
        the model runs uncompiled from then on (where the model fails too, its error is raised, as uncompiled)."""
        if self.compile is not True and (x.shape[0], *x.shape[-2:]) not in self.compiled_shapes:
            return self.model(x)
        if self._compiled is None:  # "auto" compiles few shapes, each static; True may see many: dynamic after one
            self._compiled = torch.compile(self.model, dynamic=False if self.compile == "auto" else None)
        if self.compile is True:
            return self._compiled(x)
        try:
            return self._compiled(x)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            out = self.model(x)  # a fault of the input or of the model raises here, as it does uncompiled
            self.compile = False
            self.compiled_shapes.clear()  # shared with this Restorer's with_exposure copies
            warn(f"torch.compile failed ({type(exc).__name__}: {first_line(exc)}); restoring without it")
            return out

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self._on_device(x).float().cpu()

    def _run_preview(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_run` on the preview of a tiled image (:meth:`_preview`), its edges first repeated out to the
        model's multiple (whose zero padding would otherwise darken a preview of a size off the multiple: one of 129
        rows is padded by 7 rows of black) and cut off after."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self._multiple, -width % self._multiple
        if not (pad_h or pad_w):
            return self._run(x)
        return self._run(F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"))[..., :height, :width]

    def _on_device(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for ``x``, run on the device in channels_last memory and the chosen precision (and
        left there)."""
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with self._precision():
            out = self._model(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:  # (a module of another kind than DarkIR)
            got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
            raise DarkIRError(
                f"the model returned {got} for an input of shape {tuple(x.shape)}; a Restorer needs a model that "
                "returns an image of its input's size and channels"
            )
        return out

    def plan_for(self, height: int, width: int, batch: int = 1, held: int | None = None) -> Plan:
        """How an image of ``height`` x ``width`` (``batch`` of them at once, of ``held`` in memory: default
        ``batch``) is restored next: whole or tiled, and why. On the CPU under a budget it depends on the shape
        restored last (:meth:`PassRecord.after_other_shapes`)."""
        check_counts(height=height, width=width, batch=batch, **({} if held is None else {"held": held}))
        if self.planner is not None:
            return self.planner.plan(height, width, batch, held)
        if not self.tile or (height <= self.tile and width <= self.tile):
            reason = f"whole image: within tile={self.tile}" if self.tile else "whole image (tile=0)"
            return Plan(0, False, 0, reason)
        side = window_side(self.tile, self._multiple)
        return Plan(self.tile, False, 0, f"tiled in {side} px windows (tile={self.tile})")

    def _whole_plan(self, height: int, width: int, batch: int) -> Plan | None:
        """The plan of a batch of ``batch`` images of ``height`` x ``width`` where it is restored whole at once,
        else None (in tiles, or too large at once: then in smaller batches)."""
        try:
            plan = self.plan_for(height, width, batch)
        except DarkIRError:
            return None
        return plan if plan.whole(height, width) else None

    def tiles_for(self, height: int, width: int) -> int:
        """How many windows an image of ``height`` x ``width`` is restored in (1: the whole image at once)."""
        plan = self.plan_for(height, width)
        if plan.whole(height, width):
            return 1
        overlap = window_overlap(window_side(plan.tile, self._multiple), self.overlap)
        return window_count(height, width, plan.tile, overlap, self._multiple)

    def restore_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a (N, C, H, W) float batch in [0, 1] (C: the model's ``img_channel``, 3 for the packaged models;
        any float dtype, computed as float32); returns float32 on the CPU, not clamped (clamped to [0, 1] when
        ``exposure`` is not 0), an ordinary contiguous tensor (changed in place or used with autograd as any other).
        An output with NaN or infinite values (from such an input, or broken weights) raises a DarkIRError."""
        # outside inference mode (not an inference tensor), in the (N, C, H, W) layout however the model computed it
        return self._restore_tensor(x).clone(memory_format=torch.contiguous_format)

    @torch.inference_mode()
    def _restore_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`restore_tensor`'s result as an inference tensor (for darkir's own use of it, without a copy)."""
        check_batch(x, self._channels())
        return self._finish(self._restore(x.float()), x)

    def require_rgb(self) -> None:
        """Raise a DarkIRError unless the model takes RGB images (3 channels, or a model without a DarkIR config), as
        every image and video is given to it; :meth:`restore_tensor` takes the model's own channels."""
        channels = self._channels()
        if channels not in (None, 3):
            raise DarkIRError(
                f"this model takes {channels}-channel images (img_channel {channels}); images and videos are "
                f"restored as RGB, 3 channels: restore (N, {channels}, H, W) tensors with restore_tensor"
            )

    def _channels(self) -> int | None:
        """The channels the model takes (its config's ``img_channel``; None for a model without a DarkIR config)."""
        config = getattr(self.model, "config", None)  # DarkIR models: their ModelConfig as a dict
        return config.get("img_channel") if isinstance(config, dict) else None

    def _finish(self, restored: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The model's output checked (NaN or infinite values raise a DarkIRError, blaming the input ``x`` where it
        holds such values) and exposed by ``exposure``."""
        if not bool(torch.isfinite(restored).all()):
            if x is not None and not bool(torch.isfinite(x).all()):
                raise DarkIRError("the input has NaN or infinite values")
            half = "fp16" if self.dtype == torch.float16 else "bf16"
            overflow = "" if self.dtype == torch.float32 else f", or {half} overflowed (try precision fp32)"
            raise DarkIRError(f"the model's output has NaN or infinite values: its weights may be broken{overflow}")
        return apply_exposure(restored, self.exposure)

    @torch.inference_mode()
    def restore_levels(self, rgb: np.ndarray) -> np.ndarray:
        """Restore (N, H, W, 3) uint8 or uint16 RGB images of one size (video frames) into levels of the same dtype,
        clamped and rounded: ``restore_tensor`` of ``rgb / peak``. On a GPU, 8-bit images restored whole travel as
        8-bit levels and are converted there: a quarter of the bytes of float32 each way, and no CPU time."""
        channels = self._channels()
        if (
            not isinstance(rgb, np.ndarray)
            or rgb.ndim != 4
            or 0 in rgb.shape
            or rgb.dtype not in (np.uint8, np.uint16)
            or rgb.shape[3] != (channels or rgb.shape[3])
        ):
            shape, dtype = (rgb.shape, rgb.dtype) if isinstance(rgb, np.ndarray) else (type(rgb).__name__, "")
            raise DarkIRError(
                f"restore_levels takes (N, H, W, {channels or 'C'}) uint8 or uint16 images, non-empty, got {shape} "
                f"{dtype}".rstrip()
            )
        rgb = np.ascontiguousarray(rgb)  # torch takes no negative strides (an OpenCV frame[..., ::-1])
        peak = np.iinfo(rgb.dtype).max
        count, height, width = rgb.shape[:3]
        with self._one_at_a_time:  # (the plan, the upload and the pass: one batch on the device at a time)
            plan = self._whole_plan(height, width, count)
            if self.device.type == "cuda" and rgb.dtype == np.uint8 and plan is not None and not plan.lean:
                self.last_plan = plan
                x = torch.from_numpy(rgb).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(peak)
                restored = self._finish(self._on_device(x).float()).clamp_(0, 1).mul_(peak).round_()
                return restored.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        x = torch.from_numpy(rgb.astype(np.float32) / np.float32(peak)).permute(0, 3, 1, 2)
        restored = self._restore_tensor(x).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        return np.rint(restored * peak).astype(rgb.dtype)

    def _restore(self, x: torch.Tensor, held: int | None = None) -> torch.Tensor:
        """Restore the batch ``x`` (a part of ``held`` images in memory) as planned: in smaller batches where the
        whole batch would need smaller tiles than one image, then whole or in tiles; one call at a time (threads
        sharing this Restorer take turns, each within the memory budget)."""
        with self._one_at_a_time:
            return self._restore_planned(x, held)

    def _restore_planned(self, x: torch.Tensor, held: int | None) -> torch.Tensor:
        """:meth:`_restore`'s work."""
        height, width = x.shape[-2:]
        held = held or x.shape[0]
        size = self._batch_restored_as_one(height, width, x.shape[0], held)
        if size < x.shape[0]:
            parts = [self._restore(x[start : start + size], held) for start in range(0, x.shape[0], size)]
            return torch.cat(parts)
        plan = self.last_plan = self.plan_for(height, width, x.shape[0], held)
        if plan.whole(height, width):
            if not plan.lean:
                if self.device.type == "cpu":
                    self._make_room(plan, x.shape[0], height, width)
                return self._run(x)
            release_free_memory()
            self.passes.record(x.shape[0], height, width)  # (the next of its shape runs at full speed)
            with memory_returned_to_os():
                return self._run(x)
        overlap = self._tiled_overlap(plan.tile)
        self.passes.record(x.shape[0], *window_shape(height, width, plan.tile, self._multiple), whole=False)
        return restore_in_tiles(self._run, x, plan.tile, overlap, self._preview, self.guide_scale, self._multiple)

    def _make_room(self, plan: Plan, batch: int, height: int, width: int) -> None:
        """Before a full-speed whole pass on the CPU: one after a whole pass of its shape reuses what that pass freed
        and is left as it is; before any other, give the heap's free memory back to the system where it holds more
        than the pass may keep (:meth:`MemoryPlanner.heap_limit`; with a fixed tile, which plans no budget, all of
        it). Records the pass."""
        if self.passes.last_whole and self.passes.repeats_last(batch, height, width):
            return
        other = self.passes.after_other_shapes(batch, height, width)
        self.passes.record(batch, height, width)
        release_free_memory_over(self.planner.heap_limit(plan, other) if self.planner else plan.estimate)

    def _tiled_overlap(self, tile: int) -> int:
        """The overlap of the windows of ``tile`` px tiles (:func:`~darkir.infer.tiling.window_side`), after the
        warnings they call for: windows too small for the whole image's tone (once), and an ``overlap`` given that is
        not under half of them (the default is used)."""
        tile = window_side(tile, self._multiple)
        if tile < TONE_SAFE_TILE and not self._warned_small_tiles:
            self._warned_small_tiles = True
            warn(
                f"restoring in {tile} px tiles: tiles under {TONE_SAFE_TILE} px change the result's tone (a "
                "1120x640 photo came out 1% brighter at 256 px, 2% at 128 px, than whole; other images may come "
                f"out darker); {f'raise {self.planner.setting}' if self.planner else 'set a larger tile, or tile auto'}"
            )
        overlap = window_overlap(tile, self.overlap)
        if self.overlap is not None and overlap != self.overlap:
            chosen = "tiles chosen for this image" if self.tile == "auto" else f"windows of tile {self.tile}"
            warn(
                f"overlap {self.overlap} does not fit the {tile} px {chosen} (it must be under {tile // 2}); it is "
                f"restored with the default overlap of {overlap}"
            )
        return overlap

    def _batch_restored_as_one(self, height: int, width: int, count: int, held: int) -> int:
        """The most of ``count`` images of ``height`` x ``width`` (of ``held`` in memory) restored at once in the
        tiles of one at a time (or whole): a batch too large for the memory budget is restored in smaller ones, not
        in smaller tiles, which would change the result (its tone) with the batch size."""

        def tile(size: int) -> int | None:
            try:
                return self.plan_for(height, width, size, held).tile
            except DarkIRError:  # too large to restore at once even in the smallest tiles
                return None

        alone, size = tile(1), count
        while size > 1 and tile(size) != alone:
            size -= 1
        return size

    def _preview(self, x: torch.Tensor, tile_shape: tuple[int, int]) -> torch.Tensor:
        """The whole image, area-downscaled to as many pixels as a tile (``tile_shape``) holds, restored; tiles read
        it through :func:`darkir.infer.tiling.resample_window`, so it is never held at full size. (Scaled to fit the
        tile's shape, a 2048x256 panorama's preview was 384x48 and restored in another tone: 384 px tiles came 29.7
        dB from the whole image, 40.5 dB now.)

        Its activations have other shapes than the tiles', so on the CPU they are allocated as memory
        that goes back to the OS when freed, rather than left as holes in the heap the tiles reuse.
        """
        scale = min(1.0, math.sqrt(tile_shape[0] * tile_shape[1] / (x.shape[-2] * x.shape[-1])))
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        small = F.interpolate(x, size=size, mode="area")
        with memory_returned_to_os() if self.device.type == "cpu" else contextlib.nullcontext():
            return self._run_preview(small).clone()

    @torch.inference_mode()
    def restore_array(self, rgb: np.ndarray) -> np.ndarray:
        """Restore one (H, W, 3) float RGB image in [0, 1] (float32 as :func:`darkir.imageio.read_image` gives it, or
        any float dtype); the result is float32, clamped to [0, 1]. Integer images go through ``restorer(array)``."""
        check_array(rgb)
        self.require_rgb()
        with warnings_ignored(message="The given NumPy array is not writable"):  # (read only here, as in a memmap)
            x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        out = self._restore_tensor(x)[0].clamp(0, 1)
        return out.permute(1, 2, 0).numpy()
