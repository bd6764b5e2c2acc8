"""What a batch produces: one record per run, and the batch's result (data types).

Kept apart from the batch runner because the result store, the reports, the CLI and the pytest
plugin all read these without needing to run anything. The figures in a :class:`BatchResult`
(pass rates, latency percentiles, breakdowns, verdict) are computed by :mod:`scenario.rollup`,
the one place they are computed; :meth:`BatchResult.from_records` only carries them, and
:meth:`BatchResult.summary` formats them, with no model, loop or thread involved.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from scenario.result import ScenarioResult
from scenario.rollup import FINISHED_STATUSES, Group, roll_up_batch
from scenario.text import format_summary
from scenario.usage import Usage

RunStatus = Literal["passed", "failed", "error", "timeout", "cancelled"]

DEFAULT_VARIANT = "default"


def run_id(suite: str, scenario: str, variant: str, index: int) -> str:
    """Stable id of one run: the same (suite, scenario, variant, run index) always maps here,
    which is what lets a store skip finished runs on resume."""
    raw = f"{suite}\x1f{scenario}\x1f{variant}\x1f{index}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class AttemptInfo(BaseModel):
    """One attempt of a run that was retried (a batch's ``retries=``): how it ended, how long it
    took, and how long the batch waited before the next attempt."""

    status: str
    duration: float = 0.0
    waited: float = 0.0
    error: str | None = None


class RunRecord(BaseModel):
    """One run of one scenario with one agent variant."""

    id: str
    suite: str = ""
    scenario: str
    variant: str = DEFAULT_VARIANT
    index: int = 0
    status: RunStatus
    result: ScenarioResult | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: int = 1
    started_at: float = 0.0  # unix time
    duration: float = 0.0  # seconds, wall, every attempt included
    usage: Usage = Field(default_factory=Usage)
    # Added with the batch runner (kept optional so older stored records still load).
    error_where: str | None = None
    set_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Added with batch history (optional so version-1 stores still load).
    batch_id: str | None = None
    #: Digest of what decided this run (scenario, criteria, script, agents, models, thresholds):
    #: a resumed batch re-runs a record whose fingerprint no longer matches (scenario.batch.fingerprint).
    fingerprint: str | None = None
    #: The formatted traceback of the exception that ended an error/timeout run (user frames first).
    error_traceback: str | None = None
    #: Every attempt when the run was retried (empty when the first attempt was the last).
    attempt_history: list[AttemptInfo] = Field(default_factory=list)

    _exception: BaseException | None = PrivateAttr(default=None)

    @classmethod
    def from_result(cls, result: ScenarioResult, *, suite: str, scenario: str, index: int = 0,
                    variant: str = DEFAULT_VARIANT, batch_id: str | None = None) -> RunRecord:
        """The record of one ``scenario.run``/``arun`` result made outside a batch (a pytest test,
        the demo): status from the verdict or the error, timing and usage from the result."""
        error = result.error
        status = "passed" if result.success else "failed"
        if error is not None:
            timed_out = "timed out" in (error.message or "").lower() or "Timeout" in error.type
            status = "timeout" if timed_out else "error"
        duration = float(result.total_time or 0.0)
        record = cls(
            id=run_id(suite, scenario, variant, index), suite=suite, scenario=scenario, variant=variant, index=index,
            status=status, result=result, started_at=time.time() - duration, duration=duration, usage=result.usage,
            batch_id=batch_id,
        )
        if error is not None:
            record.error_type, record.error_message, record.error_where = error.type, error.message, error.where
            record.error_traceback = getattr(error, "traceback", None)
        return record

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def finished(self) -> bool:
        """True unless the run was cancelled from outside (fail-fast, Ctrl-C)."""
        return self.status in FINISHED_STATUSES

    @property
    def exception(self) -> BaseException | None:
        """The original exception for error/timeout runs in this process (not serialised)."""
        return self._exception

    @property
    def reasoning(self) -> str | None:
        if self.result is not None and self.result.reasoning:
            return self.result.reasoning
        if self.error_type:
            return f"{self.error_type}: {self.error_message}"
        return None

    def __repr__(self) -> str:
        return (
            f"<RunRecord {self.scenario!r} [{self.variant}] #{self.index}: {self.status}, "
            f"{self.duration:.2f}s, attempts={self.attempts}>"
        )

    __str__ = __repr__


class GroupStats(BaseModel):
    """Pass counts for one scenario, one variant, or one (scenario, variant) pair."""

    total: int = 0
    passed: int = 0
    errors: int = 0
    pass_rate: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    p50_duration: float = 0.0
    p95_duration: float = 0.0
    # Added with the batch runner.
    failed: int = 0
    timeouts: int = 0
    cancelled: int = 0
    min_pass_rate: float | None = None
    ok: bool = True  # meets min_pass_rate (or, without one, every run passed)

    @classmethod
    def of(cls, group: Group) -> GroupStats:
        """A rollup group (:class:`scenario.rollup.Group`) as this record type."""
        return cls(
            total=group.runs, passed=group.passed, errors=group.errors, pass_rate=group.pass_rate,
            usage=group.usage, p50_duration=group.latency_p50, p95_duration=group.latency_p95,
            failed=group.failed, timeouts=group.timeouts, cancelled=group.cancelled,
            min_pass_rate=group.threshold, ok=group.met,
        )


class BatchResult(BaseModel):
    """Everything a batch produced. ``passed`` is the verdict a CI job should act on.

    ``total`` counts the runs that finished (passed, failed, error, timeout); runs cancelled in
    flight are in ``runs`` with status ``"cancelled"`` but outside every rate, and runs that never
    started are only counted in ``not_started``.
    """

    total: int = 0
    passed: bool = False
    passed_runs: int = 0
    pass_rate: float = 0.0
    min_pass_rate: float | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration: float = 0.0
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    latency_p99: float = 0.0
    by_scenario: dict[str, GroupStats] = Field(default_factory=dict)
    by_variant: dict[str, GroupStats] = Field(default_factory=dict)
    cancelled: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Added with the batch runner.
    failed_runs: int = 0
    error_runs: int = 0
    timeout_runs: int = 0
    cancelled_runs: int = 0
    not_started: int = 0
    planned: int = 0
    by_scenario_variant: dict[str, dict[str, GroupStats]] = Field(default_factory=dict)
    reason: str | None = None  # why the batch stopped early (fail_fast, interrupted, ...)

    @classmethod
    def from_records(
        cls,
        records: Iterable[RunRecord],
        *,
        min_pass_rate: float | None = None,
        scenario_min_pass_rates: Mapping[str, float | None] | None = None,
        duration: float = 0.0,
        planned: int | None = None,
        cancelled: bool = False,
        reason: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> BatchResult:
        """Roll records up into a result: counts, rates, usage, latency, breakdowns, verdict.

        The figures come from :func:`scenario.rollup.roll_up_batch`. The verdict (``passed``):

        - a scenario with its own threshold in ``scenario_min_pass_rates`` must meet it in every
          variant;
        - the runs of all other scenarios together must meet ``min_pass_rate`` (without one,
          every one of them must pass);
        - a cancelled batch, or one where nothing finished, never passes.
        """
        runs = list(records)
        rolled = roll_up_batch(runs, min_pass_rate=min_pass_rate, scenario_min_pass_rates=scenario_min_pass_rates,
                               cancelled=cancelled)
        return cls(
            total=rolled.total,
            passed=rolled.passed,
            passed_runs=rolled.passed_runs,
            pass_rate=rolled.pass_rate,
            min_pass_rate=min_pass_rate,
            runs=runs,
            usage=rolled.usage,
            duration=duration,
            latency_p50=rolled.latency_p50,
            latency_p95=rolled.latency_p95,
            latency_p99=rolled.latency_p99,
            by_scenario={name: GroupStats.of(group) for name, group in rolled.by_scenario.items()},
            by_variant={name: GroupStats.of(group) for name, group in rolled.by_variant.items()},
            by_scenario_variant={name: {variant: GroupStats.of(group) for variant, group in variants.items()}
                                 for name, variants in rolled.by_scenario_variant.items()},
            cancelled=cancelled,
            metadata=dict(metadata or {}),
            failed_runs=rolled.failed_runs,
            error_runs=rolled.error_runs,
            timeout_runs=rolled.timeout_runs,
            cancelled_runs=rolled.cancelled_runs,
            not_started=max(0, planned - len(runs)) if planned is not None else 0,
            planned=planned if planned is not None else len(runs),
            reason=reason,
        )

    def failures(self) -> list[RunRecord]:
        """Finished runs that did not pass, in run order."""
        return [r for r in self.runs if r.status in FINISHED_STATUSES and r.status != "passed"]

    def summary(self, *, max_failures_per_group: int = 10, width: int | None = None) -> str:
        """A readable report grouped by scenario and variant::

            PASSED (93% pass rate, 30 runs, $0.042)
            refund request: 9/10 passed (90%)
              run 4 failed: The agent never asked for the order number.
        """
        return format_summary(self, max_failures_per_group=max_failures_per_group, width=width)

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return (
            f"<BatchResult {verdict}: {self.passed_runs}/{self.total} runs passed "
            f"({self.pass_rate:.0%}){', cancelled' if self.cancelled else ''}>"
        )

    __str__ = __repr__
