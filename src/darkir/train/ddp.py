"""Process-group setup for torchrun (NCCL on GPUs, gloo on CPUs) and rank-aware helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from darkir.errors import DarkIRError, DarkIRWarning, warnings_ignored
from darkir.runtime import resolve_device
from darkir.signals import handled

#: How long a process waits for the others in a collective: rank 0 validates alone meanwhile (on a CPU, a large
#: validation set takes longer than the 30 minutes gloo allows by default, 10 NCCL).
PROCESS_GROUP_TIMEOUT = timedelta(hours=4)


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process logs and saves (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """Join the process group that torchrun describes in the environment (or run alone)."""
    rank, world_size, local_rank = launch_group()
    if world_size == 1:
        return Context(0, 1, resolve_device(device))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():  # the others wait while rank 0 validates alone: allow it hours, not the default
        with _joining(rank, world_size):
            dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return Context(rank, world_size, resolved)


#: Seconds a process waits for the others of its group before it says so.
JOIN_NOTE_S = 10


@contextlib.contextmanager
def _joining(rank: int, world_size: int) -> Iterator[None]:
    """While this process waits for the others of its group to join (a process that never starts, or a stale
    ``WORLD_SIZE`` left in the environment, made it wait the whole :data:`PROCESS_GROUP_TIMEOUT`, silent): Ctrl-C
    and SIGTERM end it at once (darkir's handlers, in Python, would run only once torch's wait returns), and a line
    says what it waits for once :data:`JOIN_NOTE_S` have gone."""
    address = f"{os.environ.get('MASTER_ADDR', 'localhost')}:{os.environ.get('MASTER_PORT', '?')}"
    waiting = f"darkir: process {rank} of {world_size} is waiting for the others to join at {address} (Ctrl-C stops it)"
    timer = threading.Timer(JOIN_NOTE_S, lambda: print(waiting, file=sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        with handled((signal.SIGINT, signal.SIGTERM), signal.SIG_DFL):
            yield
    finally:
        timer.cancel()


def teardown(context: Context) -> None:
    """Leave the process group, if any."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    """Wait for every process (no-op when alone)."""
    if context.distributed:
        dist.barrier()


def is_main_process() -> bool:
    """Whether this process is rank 0 of its torchrun job (or runs alone), before any process group exists."""
    return launch_group()[0] == 0


def launch_group() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process, as torchrun's environment gives them: (0, 1, 0) without a
    ``WORLD_SIZE`` above 1, whatever a ``RANK`` left in the environment says (one read alone made a lone run skip
    the checks and the backup of the main process); a DarkIRError naming a variable that is not a whole number, a
    missing ``RANK``, or a rank outside the group."""
    world_size = _whole("WORLD_SIZE", 1)
    if world_size == 1:
        return 0, 1, 0
    if world_size < 1:
        raise DarkIRError(f"WORLD_SIZE={world_size}: a process group has at least 1 process; unset it to run alone")
    if "RANK" not in os.environ:
        raise DarkIRError(f"WORLD_SIZE={world_size} but RANK is not set: run under torchrun, or unset WORLD_SIZE")
    rank = _whole("RANK", 0)
    if not 0 <= rank < world_size:
        raise DarkIRError(f"RANK={rank} is not a rank of a group of WORLD_SIZE={world_size} processes")
    return rank, world_size, _whole("LOCAL_RANK", 0)


def _whole(name: str, default: int) -> int:
    """The environment variable ``name`` as a whole number (``default`` where unset or empty)."""
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise DarkIRError(f"{name}={value!r} in the environment is not a whole number (torchrun sets it)") from None


def main_process_warnings() -> contextlib.AbstractContextManager[None]:
    """darkir's warnings inside shown by the main process alone: each of the others would print the same line (of
    the options, of the data sets) once more."""
    return contextlib.nullcontext() if is_main_process() else warnings_ignored(category=DarkIRWarning)


def any_process(context: Context, flag: bool) -> bool:
    """Whether ``flag`` is set in any process (itself when alone): a request to stop, a failure, shared by all."""
    if not context.distributed:
        return flag
    tensor = torch.tensor([float(flag)], device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def mean(context: Context, value: float) -> float:
    """The mean of ``value`` over all processes (itself when alone): e.g. the loss of the whole global batch."""
    if not context.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size
