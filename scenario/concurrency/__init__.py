"""Pacing: how many runs or calls are in flight (strategies), how fast (rate limits), how many
threads the machine can afford (resources).

``from scenario.concurrency.strategies import SlidingWindow, Adaptive`` is the documented import path, so
the strategies' public names are re-exported here.
"""

from __future__ import annotations

from scenario.concurrency.strategies import (
    Adaptive,
    ConcurrencyStrategy,
    SlidingWindow,
    current_strategy,
    notify_error,
    notify_rate_limited,
    notify_success,
    use_strategy,
)

__all__ = [
    "Adaptive", "ConcurrencyStrategy", "SlidingWindow", "current_strategy", "notify_error", "notify_rate_limited",
    "notify_success", "use_strategy",
]
