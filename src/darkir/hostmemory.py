"""How much memory this process holds and may still take on the CPU: the machine's available memory, or less where
its control group (a container's memory limit) or its address-space limit (``ulimit -v``) leaves less room. Without
torch, for the image reader as for the memory planner."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def resident_memory() -> int:
    """This process's resident memory in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cpu_available_memory() -> int:
    """Memory free for this process on the CPU: MemAvailable, or less where its control group or its address-space
    limit leaves less room."""
    try:
        with open("/proc/meminfo") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):  # no /proc/meminfo: the free pages, where they are known
        available = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    rooms = [room for room in (cgroup_room(), address_space_room()) if room is not None]
    return min([available, *rooms])


def address_space_room() -> int | None:
    """The bytes of address space this process may still map under its ``RLIMIT_AS`` (``ulimit -v``): its soft limit
    less its mapped size (``VmSize``, which every allocation adds to, whether or not it is used yet); None where no
    limit is set or the size cannot be read. (A 2.5 GB limit failed allocations under a 2.7 GB budget.)"""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as status:
            mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return max(0, limit - mapped)


def cgroup_room(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """The bytes this process's memory control group (v2, or v1's memory controller) can still take: the least, over
    the group and each group above it up to the hierarchy's root as mounted here (inside a container, its own), of
    its limit less what it uses, the page cache it could drop left out; None where no limit is set or none can be
    read. ``/proc/meminfo`` shows the machine's memory, not these limits."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, group = parts
        if controllers == "":  # v2
            top, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            top, files = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        folder = top / group.strip("/")
        for above in [folder, *folder.parents]:
            room = _room(above, *files)
            if room is not None:
                rooms.append(room)
            if above == top:
                break
    return min(rooms) if rooms else None


#: A v1 memory limit at or above this is none (the kernel's "unlimited" is the largest page-aligned 64-bit value).
_UNLIMITED = 1 << 60


def _room(folder: Path, limit_file: str, usage_file: str, cache_key: str) -> int | None:
    """``limit - (usage - inactive page cache)`` of the control group ``folder`` (``cache_key``: the inactive file
    cache's key in its ``memory.stat``, which the kernel reclaims before it fails an allocation); None where it sets
    no limit or cannot be read."""
    try:
        limit = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text())
    except (OSError, ValueError):
        return None
    if limit == "max" or not limit.isdigit() or int(limit) >= _UNLIMITED:
        return None
    return max(0, int(limit) - usage + _stat(folder / "memory.stat", cache_key))


def _stat(path: Path, key: str) -> int:
    """The value of ``key`` in a cgroup ``memory.stat`` file (0 where it cannot be read)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
