"""Resource guard for the thread executor.

``run`` executes every scenario on its own event loop in a worker thread. If a
caller gathers thousands of ``run`` calls and each got its own thread, the
process would create an unbounded number of threads -- each with a stack, an
event loop, HTTP connection pools and response buffers -- until it runs out of
memory or hits the OS thread limit. The executor therefore uses a bounded pool
sized from the memory actually available, and queues the rest.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULT_CAP", "MIN_WORKERS", "PER_WORKER_BYTES", "available_memory_bytes", "default_max_workers"]

MiB = 1024 * 1024

#: Upper bound when the caller gives none: beyond this, threads mostly contend
#: for the GIL and the network rather than add throughput.
DEFAULT_CAP = 512
#: Never go below this: even a tiny container should run a few scenarios at once.
MIN_WORKERS = 4
#: Rough resident cost of one worker: thread stack actually touched, an event
#: loop, an HTTP client with its pools and buffers, a scenario's messages.
PER_WORKER_BYTES = 16 * MiB
#: Assumed available memory when nothing can be measured.
FALLBACK_AVAILABLE_BYTES = 2 * 1024 * MiB


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    value = int(parts[1])
                    unit = parts[2].lower() if len(parts) > 2 else "kb"
                    return value * 1024 if unit == "kb" else value
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_available(root: str = "/sys/fs/cgroup") -> int | None:
    """Room left under a container memory limit, if there is one.

    In a container /proc/meminfo shows the *host's* memory; the cgroup limit is
    what actually triggers the OOM killer.
    """
    # cgroup v2
    limit = _read_int(os.path.join(root, "memory.max"))
    if limit is not None:
        used = _read_int(os.path.join(root, "memory.current")) or 0
        return max(0, limit - used)
    # cgroup v1 (an "unlimited" limit is a huge number: ignore it)
    limit = _read_int(os.path.join(root, "memory", "memory.limit_in_bytes"))
    if limit is not None and limit < (1 << 60):
        used = _read_int(os.path.join(root, "memory", "memory.usage_in_bytes")) or 0
        return max(0, limit - used)
    return None


def _sysconf_available() -> int | None:
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return pages * page_size


def available_memory_bytes() -> int | None:
    """Memory this process can still use, in bytes, or ``None`` if unknown.

    ``MemAvailable`` from /proc/meminfo (falling back to ``os.sysconf``), lowered
    to the room left under a cgroup memory limit when there is one.
    """
    candidates = [
        value for value in (_meminfo_available() or _sysconf_available(), _cgroup_available()) if value is not None
    ]
    return min(candidates) if candidates else None


def default_max_workers(cap: int | None = None, *, per_worker_bytes: int = PER_WORKER_BYTES) -> int:
    """How many worker threads the thread executor should use at most.

    ``min(cap or 512, available memory // per_worker_bytes)``, but at least 4.
    An explicit ``cap`` is a hard ceiling and wins over that floor.
    """
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise ValueError(f"default_max_workers: cap={cap!r} is not allowed; it must be an int >= 1 or None")
    if isinstance(per_worker_bytes, bool) or not isinstance(per_worker_bytes, int) or per_worker_bytes < 1:
        raise ValueError(
            f"default_max_workers: per_worker_bytes={per_worker_bytes!r} is not allowed; it must be an int >= 1"
        )
    available = available_memory_bytes()
    if available is None:
        available = FALLBACK_AVAILABLE_BYTES
    by_memory = max(MIN_WORKERS, available // per_worker_bytes)
    ceiling = cap if cap is not None else DEFAULT_CAP
    return int(min(ceiling, by_memory))
