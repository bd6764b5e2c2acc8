"""The result store: every batch kept, one SQLite row per run, written the moment the run finishes.

Why SQLite: it is in the standard library, a committed row survives the process being killed
(WAL mode writes it to the log before ``put`` returns), and several processes (pytest-xdist
workers, parallel CI jobs) can write one file at once; SQLite serialises their writers and
``busy_timeout`` makes them wait instead of failing.

History, not a cache: every ``scenario run`` (and every ``run_batch(store=...)``) is a *batch*
with its own row in ``batches``; its runs are keyed by (batch id, run id), so running a suite
again never reuses an older verdict. A batch is ``running`` while its process writes it,
``finished`` when it ran to its end, and ``interrupted`` when it was stopped (Ctrl-C, SIGTERM, a
failed write) or its process died without saying so (a ``running`` batch whose writer process on
this host is gone reads as ``interrupted``). Resuming continues a batch in place; within a batch
a finished verdict (passed/failed) is never replaced by a later error of the same run with the
same fingerprint, so two jobs racing on one run still leave its best outcome.

A file that is not ours (another SQLite database, or not SQLite at all) is refused with a
:class:`StoreError` before anything is written to it. A store written by an older version
(format 1: one row per run, no batches) is migrated in place when opened for writing, and read
through a migrated in-memory copy when opened read-only, so old results stay readable.
"""

from __future__ import annotations

from scenario.store.batches import BatchInfo, RunOutcome, StoreError, git_state, new_batch_id
from scenario.store.results import ResultStore
from scenario.store.schema import (
    BATCH_STATUSES,
    DEFAULT_STORE_PATH,
    STORE_FORMAT,
    STORE_VERSION,
    VERDICT_STATUSES,
)

__all__ = [
    "BATCH_STATUSES", "DEFAULT_STORE_PATH", "STORE_FORMAT", "STORE_VERSION", "VERDICT_STATUSES", "BatchInfo",
    "ResultStore", "RunOutcome", "StoreError", "git_state", "new_batch_id",
]
