"""Where a batch's runs execute: the backends behind the one dispatch loop.

The contract between the dispatch loop and a backend (``Backend`` and the events it posts) lives
in ``base.py``; the backends are ``local.py`` (this process), ``processes.py`` (forked workers on
this machine) and ``ray.py`` (a Ray cluster; Ray itself is imported only when a batch uses it).
:func:`resolve_backend` turns ``run_batch``'s ``backend=``/``processes=`` into one of them.
"""

from __future__ import annotations

from typing import Any

from scenario.batch.backends.base import Backend, Event, Feedback, Finished, Lost, WorkerFailed
from scenario.batch.backends.local import InProcess
from scenario.batch.backends.processes import Processes
from scenario.batch.backends.ray import RayBackend
from scenario.distributed import Ray

__all__ = ["Backend", "Event", "Feedback", "Finished", "Lost", "WorkerFailed", "resolve_backend"]


def resolve_backend(backend: Any, processes: int) -> Backend:
    """The backend object for ``run_batch(backend=..., processes=...)`` (already validated)."""
    if isinstance(backend, Backend):
        return backend
    if backend in (None, "local"):
        return Processes(processes) if processes > 1 else InProcess()
    if backend == "ray":
        backend = Ray()
    if isinstance(backend, Ray):
        return RayBackend(backend)
    raise AssertionError(f"unvalidated backend {backend!r}")  # pragma: no cover - checked in prepare_batch
