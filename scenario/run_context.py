"""Per-run bookkeeping reachable from deep inside a run without plumbing.

A ``ContextVar`` rather than a global: each run sets its own value, ``run`` copies the caller's
context into its worker thread, and concurrent runs on one loop each see their own task's value.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any

from scenario.usage import ModelCall, Usage


@dataclass
class RunContext:
    """State owned by one scenario run."""

    name: str
    thread_id: str
    cache_key: str | None = None
    usage: Usage = field(default_factory=Usage)
    trace_id: int | None = None  # the root span's trace, to attribute agent-side GenAI spans
    model_attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    model_calls: list[ModelCall] = field(default_factory=list)  # in the order they finished
    # Usage can be reported from the agent's own threads (a sync adapter offloaded to the pool,
    # an SDK callback thread), so updates take a lock.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_usage(self, **kwargs: Any) -> None:
        with self.lock:
            self.usage.record(**kwargs)

    def record_call(self, call: ModelCall) -> None:
        with self.lock:
            self.model_calls.append(call)


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("scenario_current_run", default=None)


def report_usage(
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float | None = None,
    model: str = "unknown",
    role: str = "agent",
) -> None:
    """Report model usage made by your agent under test so it counts in ``result.usage``.

    Call it from inside ``AgentAdapter.call`` (sync or async). Outside a run it does nothing, so
    agents stay usable on their own. Calls traced as OpenTelemetry GenAI spans inside the
    scenario's trace are counted automatically; do not report those twice.
    """
    run = current_run.get()
    if run is None:
        return
    run.record_usage(
        role=role, model=model, input_tokens=int(input_tokens), output_tokens=int(output_tokens), cost_usd=cost_usd
    )
