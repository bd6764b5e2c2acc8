"""Usage: calls, tokens and money, per role and per model, and one recorded model call."""

from __future__ import annotations

from pydantic import BaseModel, Field

from scenario.messages import ROLE_KEYS


class UsageTotals(BaseModel):
    """Tokens, calls and money for a group of model calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = Field(
        0, description="Calls whose cost the provider/litellm could not price; they add 0 to cost_usd."
    )
    cached_calls: int = Field(0, description="Calls answered from the replay cache; they cost nothing.")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: UsageTotals) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls
        self.cached_calls += other.cached_calls


class Usage(UsageTotals):
    """A scenario's (or batch's) usage with breakdowns by role and by model."""

    by_role: dict[str, UsageTotals] = Field(default_factory=lambda: {k: UsageTotals() for k in ROLE_KEYS})
    by_model: dict[str, UsageTotals] = Field(default_factory=dict)

    def record(
        self,
        *,
        role: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float | None,
        cached: bool = False,
    ) -> None:
        """Add one model call to the totals and to both breakdowns."""
        call = UsageTotals(
            calls=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd or 0.0,
            unpriced_calls=1 if cost_usd is None and not cached else 0,
            cached_calls=1 if cached else 0,
        )
        self.add(call)
        self.by_role.setdefault(role, UsageTotals()).add(call)
        self.by_model.setdefault(model, UsageTotals()).add(call)

    def merge(self, other: Usage) -> None:
        """Fold another rollup into this one (batches sum their runs this way)."""
        self.add(other)
        for key, totals in other.by_role.items():
            self.by_role.setdefault(key, UsageTotals()).add(totals)
        for key, totals in other.by_model.items():
            self.by_model.setdefault(key, UsageTotals()).add(totals)


class ModelCall(BaseModel):
    """One model call made during a run, in the order made: who asked, which model, what it cost.

    ``latency`` is the wall time of the whole call, retries and rate-limit waits included;
    ``attempts`` counts tries (1 when the first succeeded); ``rate_limited`` how many of them
    the provider answered with a rate limit. ``cost_usd`` is None when the call could not be
    priced. ``error`` is set on a call that failed after its last attempt.
    """

    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency: float = 0.0
    attempts: int = 1
    rate_limited: int = 0
    waited: float = 0.0
    cached: bool = False
    error: str | None = None
