"""Spreading a batch past one core: shards, and ``run_batch(..., processes=N)``.

One process tops out at a few hundred model calls per second: litellm costs ~4 ms of CPU per
call and everything in the process shares one GIL. Two ways past that:

* **Shards** (``shard_index``/``shard_count``): every process computes the same plan and keeps
  the runs whose plan position ``% shard_count == shard_index``. The CLI and pytest-xdist start
  the processes themselves; run ids are the same in every shard, so one result store collects
  them all.
* **Backends**: ``run_batch(..., processes=N)`` forks workers on this machine and
  ``backend="ray"`` spreads runs over a cluster; both are driven by the one dispatch loop
  (``scenario/batch/dispatch.py``, backends in ``scenario/batch/backends/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from scenario.errors import ScenarioConfigError

T = TypeVar("T")


def select_shard(units: Sequence[T], shard_index: int, shard_count: int) -> list[T]:
    """The runs of one shard: plan positions ``p`` with ``p % shard_count == shard_index``.

    Dealing round-robin over the repetition-major plan spreads every scenario over every shard.
    """
    if shard_count < 1 or not (0 <= shard_index < shard_count):
        raise ScenarioConfigError(
            f"shard_index={shard_index}, shard_count={shard_count}: need shard_count >= 1 and "
            "0 <= shard_index < shard_count."
        )
    return [u for u in units if getattr(u, "position") % shard_count == shard_index]
