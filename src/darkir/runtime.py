"""Device, precision and CPU-runtime choices, for inference and training."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator

import torch

from darkir.errors import DarkIRError, is_whole, warn

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` as asked. The one check of every
    ``--device``: anything else, or a device this machine lacks, is a :class:`DarkIRError` naming it and the devices
    there are."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        resolved = None
    problem = _device_problem(str(device), resolved)
    if resolved is None or problem:
        raise DarkIRError(f"{problem}; available here: {', '.join(available_devices())}")
    return resolved


def available_devices() -> list[str]:
    """The device names :func:`resolve_device` accepts on this machine."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["auto", "cpu", *(["cuda"] if count else []), *(f"cuda:{index}" for index in range(count))]


def _device_problem(name: str, device: torch.device | None) -> str | None:
    """Why darkir cannot run on the device ``name`` (``device``: what torch makes of it, None if nothing), or None."""
    if device is None:
        return f"unknown device {name!r}"
    if device.type == "cpu":
        return None if device.index in (None, 0) else f"device {name!r} does not exist (the CPU is 'cpu')"
    if device.type != "cuda":
        return f"unsupported device {name!r}: darkir runs on the CPU or on CUDA GPUs"
    if not torch.cuda.is_available():
        return f"device {name!r} was requested but no CUDA device is available"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return f"device {name!r} does not exist: this machine has {count} CUDA device{'s' if count != 1 else ''}"
    return None


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where bf16 inference is fast."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def tensor_cores(device: torch.device) -> bool:
    """Whether a CUDA ``device`` has tensor cores (compute capability 7.0, Volta, or later), where fp16 is fast."""
    return torch.cuda.get_device_capability(device) >= (7, 0)


def check_precision(precision: str) -> None:
    """Refuse a precision name other than ``auto``/``fp32``/``bf16``/``fp16``."""
    if precision != "auto" and precision not in PRECISIONS:
        raise DarkIRError(f"unknown precision {precision!r}; choose from auto, {', '.join(PRECISIONS)}")


#: ``threads`` at most: 4 per CPU this process may run on, and at least this many; more only slows the model down,
#: and many thousands make OpenMP fail to start them, which crashes the process.
MIN_THREAD_LIMIT = 64


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a batch job's share), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_limit() -> int:
    """The most torch threads a command or worker takes: 4 per usable CPU, at least :data:`MIN_THREAD_LIMIT`."""
    return max(MIN_THREAD_LIMIT, 4 * usable_cpus())


def check_threads(threads: int | None) -> int | None:
    """``threads`` (a number of torch threads, or None: torch's own) as an int, from 1 to :func:`thread_limit`;
    else a DarkIRError naming it."""
    if threads is None:
        return None
    if not is_whole(threads) or threads < 1:
        raise DarkIRError(f"threads must be a whole number of at least 1 or None, got {threads!r}")
    if threads > thread_limit():
        raise DarkIRError(
            f"{threads} threads are too many for {usable_cpus()} CPU(s): at most {thread_limit()} (4 per CPU or "
            f"{MIN_THREAD_LIMIT}, whichever is more)"
        )
    return int(threads)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Map ``auto``/``fp32``/``bf16``/``fp16`` to a dtype, refusing fp16 on CPU (no fast kernels there).

    ``auto``: bf16 on a CPU with native bf16 (:func:`native_bf16_cpu`; at 1120x640 it is 1.35x faster than fp32,
    within 0.03 dB of it on the real pairs and more than 99.9% of 8-bit values within one level); fp16 on a CUDA GPU
    with tensor cores (:func:`tensor_cores`; outside the frequency branch, which keeps fp32, activations on the real
    images stay at least 61x below fp16's largest value, see ``benchmarks/fp16_range.py``); fp32 otherwise.
    """
    check_precision(precision)
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16 if tensor_cores(device) else torch.float32
        return torch.bfloat16 if device.type == "cpu" and native_bf16_cpu() else torch.float32
    if precision == "fp16" and device.type == "cpu":
        raise DarkIRError("fp16 is for GPUs; on CPU use bf16 precision (fast where the CPU has AVX-512 BF16/AMX)")
    if precision == "bf16" and device.type == "cpu" and not native_bf16_cpu():
        warn(
            "bf16 precision on this CPU (no AVX-512 BF16 nor AMX) is emulated and many times slower than fp32 (12x "
            "on a 2-core AVX2 machine at 256x256), and inexact; fp32 or auto is faster here"
        )
    return PRECISIONS[precision]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_MMAP_MAX = 65536


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Tell glibc malloc to reuse freed memory instead of returning large blocks to the OS.

    Restoration allocates and frees tensors of hundreds of MB per layer; glibc serves each with a
    fresh ``mmap``, and the page faults of touching it cost more than the arithmetic (about 3x the
    whole forward pass at 1120x640 on 2 cores, see ``benchmarks/restore_speed.py``). Serving them from
    the heap and keeping it makes the process hold its peak memory until exit. Returns whether the
    setting took effect (glibc only); it is process-wide, so it is applied once, on first use.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


@contextlib.contextmanager
def memory_returned_to_os() -> Iterator[None]:
    """Within this block, large blocks are mapped and unmapped again (glibc's default), so a pass of
    one-off shapes leaves no holes in the heap that :func:`keep_freed_memory_for_reuse` keeps. Blocks nest:
    only the outermost one switches the setting back."""
    libc = _libc()
    if not (keep_freed_memory_for_reuse() and libc is not None):
        yield
        return
    _returned_depth[0] += 1
    if _returned_depth[0] == 1:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    try:
        yield
    finally:
        _returned_depth[0] -= 1
        if _returned_depth[0] == 0:
            libc.mallopt(_M_MMAP_MAX, 0)


def release_free_memory() -> None:
    """Give the free memory that :func:`keep_freed_memory_for_reuse` keeps back to the OS (glibc ``malloc_trim``),
    before a pass that will not reuse it (one in :func:`memory_returned_to_os`)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33 and later)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


def release_free_memory_over(limit: int) -> None:
    """:func:`release_free_memory` where the heap holds more than ``limit`` free bytes: passes of many image sizes
    leave holes that the next sizes do not fit, which the heap keeps (600 small images of distinct sizes grew the
    process by 870 MB); passes of one size reuse what they freed, which stays under an image's estimate."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return
    libc.mallinfo2.restype = _MallInfo2
    if libc.mallinfo2().fordblks > limit:
        release_free_memory()


#: How many :func:`memory_returned_to_os` blocks are open (in this process).
_returned_depth = [0]


@contextlib.contextmanager
def fixed_size_kernels(device: torch.device) -> Iterator[None]:
    """Within this block on CUDA, cuDNN times its convolution kernels for each input shape on first use and keeps
    the fastest (``cudnn.benchmark``): worth it for many inputs of one size, such as a video's frames. Elsewhere,
    and for other settings, nothing changes."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
