"""While batches run, the objects alive when the first of them started sit out of the cyclic GC.

Why: litellm leaves ~300k container objects behind at import, and every full collection of
Python's cyclic garbage collector walks all of them (~0.2 s each on this machine). A batch of
1,000 runs allocates enough to trigger a dozen full collections, so without this the collector
took 25-30% of a batch's CPU, more than the library's own work (docs/performance.md).

``gc.freeze()`` moves every tracked object to a permanent generation that collections skip, and
``gc.unfreeze()`` moves them back; both are O(1). Objects made during the batch are collected as
usual. The cost: cyclic garbage that existed before the batch (or that objects from before it
become during it) is reclaimed only after the batch, at the next full collection. Batches that
overlap share one freeze, undone when the last ends. If the application froze objects itself
(``gc.get_freeze_count() > 0``) or disabled the collector, the heap is left alone. Off with
``configure(batch_gc_freeze=False)``.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

from scenario import fork

_lock = threading.Lock()
_depth = 0  # batches in flight inside frozen_heap()
_froze = False  # whether the outermost of them called gc.freeze() (and so must unfreeze)


@contextlib.contextmanager
def frozen_heap(enabled: bool = True) -> Iterator[None]:
    """Leave today's objects out of cyclic collections until the last batch in flight ends."""
    global _depth, _froze
    if not enabled:
        yield
        return
    with _lock:
        if _depth == 0:
            _froze = gc.isenabled() and gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _froze:
                _froze = False
                gc.unfreeze()


@fork.register
def reset_after_fork() -> None:
    """In a forked child: no batch of its own is in flight; what the parent froze stays frozen
    there (its pages stay shared), so a batch in the child leaves the heap alone."""
    global _lock, _depth, _froze
    _lock = threading.Lock()
    _depth = 0
    _froze = False
