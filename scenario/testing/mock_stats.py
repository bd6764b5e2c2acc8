"""What the mock server counts, and the faults it can be told to inject.

Policy: tests assert on the server's side of a conversation (how many requests, from whom, how
many were in flight at once, when each arrived, which faults fired), so these counters are the
mock's public contract. The server mutates them under its lock; readers get a copy
(``server.stats``) so a test never sees a half-updated snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scenario.testing.mock_behavior import ROLES

FAULT_KINDS = ("error", "hang", "malformed", "slow")


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    ``kind`` is ``"error"`` (answer ``status`` with an OpenAI error body),
    ``"hang"`` (never answer until the client disconnects or the server stops),
    ``"malformed"`` (200 with a body that is not JSON) or ``"slow"`` (wait
    ``delay`` extra seconds, then answer normally).
    """

    kind: str = "error"
    status: int = 500
    retry_after: float | None = None
    delay: float = 1.0


@dataclass
class MockStats:
    """Counters of a :class:`MockLLMServer`; ``server.stats`` returns a copy.

    Supports attribute and item access: ``stats.requests == stats["requests"]``.
    """

    requests: int = 0
    """Chat-completion requests received, whatever was answered."""
    by_role: dict[str, int] = field(default_factory=lambda: {role: 0 for role in ROLES})
    """Parsed requests per caller: ``"user"`` (simulator), ``"judge"``, ``"agent"``."""
    errors_served: dict[int, int] = field(default_factory=dict)
    """Error answers per HTTP status (400, 429, 500, ...)."""
    faults: dict[str, int] = field(default_factory=dict)
    """Injected faults per kind: ``error``, ``hang``, ``malformed``, ``slow``, ``rate_limit``, ``error_rate``."""
    in_flight: int = 0
    """Chat-completion requests being handled right now (hung ones included)."""
    max_in_flight: int = 0
    """Highest ``in_flight`` seen: a measure of the client's real concurrency."""
    request_times: list[float] = field(default_factory=list)
    """``time.monotonic()`` at each chat-completion request's arrival: to check a client's pacing
    (rate limits) from the server's side."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_role": dict(self.by_role),
            "errors_served": dict(self.errors_served),
            "faults": dict(self.faults),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "request_times": list(self.request_times),
        }

    def copy(self) -> MockStats:
        return MockStats(
            requests=self.requests,
            by_role=dict(self.by_role),
            errors_served=dict(self.errors_served),
            faults=dict(self.faults),
            in_flight=self.in_flight,
            request_times=list(self.request_times),
            max_in_flight=self.max_in_flight,
        )
