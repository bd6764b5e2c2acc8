"""The one shared, bounded pool of worker threads.

``run`` executes each scenario on a thread from here, and ``arun`` offloads synchronous adapters
here. One pool for the process (not one per call, which is what makes the library we replace
spawn ~2 threads per scenario) whose size is capped by configuration and by free memory, so an
unbounded ``gather`` of runs queues instead of exhausting the machine.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0


def max_workers() -> int:
    """Worker cap: ``configure(max_workers=...)`` or the memory-aware default."""
    from .config import settings
    from .resources import default_max_workers

    return default_max_workers(settings().max_workers)


def get_pool() -> ThreadPoolExecutor:
    """The shared pool, created on first use (threads themselves start lazily)."""
    global _pool, _pool_size
    pool = _pool
    if pool is not None:
        return pool
    with _lock:
        if _pool is None:
            _pool_size = max_workers()
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="scenario-worker")
        return _pool


def pool_size() -> int:
    get_pool()
    return _pool_size


def shutdown(wait: bool = True) -> None:
    """Stop the pool (at interpreter exit, or in tests). A later run makes a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


atexit.register(shutdown, False)
