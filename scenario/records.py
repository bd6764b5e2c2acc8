"""What a batch produces: one record per run, and the batch's rollup.

Kept apart from the batch runner because the result store, the reports, the CLI and the pytest
plugin all read these without needing to run anything: :meth:`BatchResult.from_records` rebuilds
the rollup (pass rates, latency percentiles, breakdowns, verdict) from stored records, and
:meth:`BatchResult.summary` formats it, with no model, loop or thread involved.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from scenario.result import ScenarioResult
from scenario.usage import Usage, UsageTotals

RunStatus = Literal["passed", "failed", "error", "timeout", "cancelled"]

#: Statuses of runs that reached an end of their own (a verdict, an error or a timeout); a
#: cancelled run was stopped from outside and says nothing about the agent.
FINISHED_STATUSES: tuple[str, ...] = ("passed", "failed", "error", "timeout")

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
        import time

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

        The verdict (``passed``):

        - a scenario with its own threshold in ``scenario_min_pass_rates`` must meet it in every
          variant;
        - the runs of all other scenarios together must meet ``min_pass_rate`` (without one,
          every one of them must pass);
        - a cancelled batch, or one where nothing finished, never passes.
        """
        runs = list(records)
        own = {k: v for k, v in (scenario_min_pass_rates or {}).items() if v is not None}
        finished = [r for r in runs if r.status in FINISHED_STATUSES]
        usage = sum_usage(r.usage for r in runs)
        durations = sorted(r.duration for r in finished)
        counts = _count(finished)
        total = len(finished)

        # Groups carry only a scenario's own threshold; the batch-wide one applies to the pooled
        # runs, so a group's `ok` is informational unless the scenario has its own threshold.
        by_scenario = _groups(runs, lambda r: r.scenario, lambda key: own.get(key))
        by_variant = _groups(runs, lambda r: r.variant, lambda key: None)
        by_pair: dict[str, dict[str, GroupStats]] = {}
        for scenario_name in by_scenario:
            subset = [r for r in runs if r.scenario == scenario_name]
            threshold = own.get(scenario_name)
            by_pair[scenario_name] = _groups(subset, lambda r: r.variant, lambda key, t=threshold: t)

        # The verdict, as documented above.
        ok = total > 0 and not cancelled
        for scenario_name, variants in by_pair.items():
            if scenario_name in own:
                ok = ok and all(stats.ok for stats in variants.values())
        rest = [r for r in finished if r.scenario not in own]
        if rest:
            rest_rate = sum(1 for r in rest if r.status == "passed") / len(rest)
            ok = ok and rest_rate >= (1.0 if min_pass_rate is None else min_pass_rate) - 1e-12

        not_started = 0
        if planned is not None:
            not_started = max(0, planned - len(runs))
        return cls(
            total=total,
            passed=ok,
            passed_runs=counts["passed"],
            pass_rate=counts["passed"] / total if total else 0.0,
            min_pass_rate=min_pass_rate,
            runs=runs,
            usage=usage,
            duration=duration,
            latency_p50=percentile(durations, 50),
            latency_p95=percentile(durations, 95),
            latency_p99=percentile(durations, 99),
            by_scenario=by_scenario,
            by_variant=by_variant,
            by_scenario_variant=by_pair,
            cancelled=cancelled,
            metadata=dict(metadata or {}),
            failed_runs=counts["failed"],
            error_runs=counts["error"],
            timeout_runs=counts["timeout"],
            cancelled_runs=sum(1 for r in runs if r.status == "cancelled"),
            not_started=not_started,
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


# ---------------------------------------------------------------------------------------------
# Rollup helpers


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linearly interpolated; 0 if empty."""
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


_TOTAL_FIELDS = ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls", "cached_calls")


def sum_usage(usages: Iterable[Usage]) -> Usage:
    """Several rollups added up (same result as ``Usage.merge`` in a loop, without a pydantic
    attribute assignment per field per run: batches sum thousands of these, several times over)."""
    total = [0, 0, 0, 0.0, 0, 0]
    by_role: dict[str, list[float]] = {}
    by_model: dict[str, list[float]] = {}
    for usage in usages:
        data = usage.__dict__
        for i, name in enumerate(_TOTAL_FIELDS):
            total[i] += data[name]
        for target, source in ((by_role, usage.by_role), (by_model, usage.by_model)):
            for key, totals in source.items():
                acc = target.get(key)
                if acc is None:
                    acc = target[key] = [0, 0, 0, 0.0, 0, 0]
                item = totals.__dict__
                for i, name in enumerate(_TOTAL_FIELDS):
                    acc[i] += item[name]
    result = Usage(**dict(zip(_TOTAL_FIELDS, total)))
    for key, acc in by_role.items():
        result.by_role[key] = UsageTotals(**dict(zip(_TOTAL_FIELDS, acc)))
    for key, acc in by_model.items():
        result.by_model[key] = UsageTotals(**dict(zip(_TOTAL_FIELDS, acc)))
    return result


def _count(records: Iterable[RunRecord]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "timeout": 0, "cancelled": 0}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    return counts


def _groups(records: Sequence[RunRecord], key: Any, threshold_of: Any) -> dict[str, GroupStats]:
    grouped: dict[str, list[RunRecord]] = {}
    for record in records:
        grouped.setdefault(key(record), []).append(record)
    return {name: _stats(items, threshold_of(name)) for name, items in grouped.items()}


def _stats(records: Sequence[RunRecord], min_pass_rate: float | None) -> GroupStats:
    counts = _count(records)
    total = counts["passed"] + counts["failed"] + counts["error"] + counts["timeout"]
    usage = sum_usage(r.usage for r in records)
    durations = sorted(r.duration for r in records if r.status in FINISHED_STATUSES)
    rate = counts["passed"] / total if total else 0.0
    needed = 1.0 if min_pass_rate is None else min_pass_rate
    return GroupStats(
        total=total,
        passed=counts["passed"],
        errors=counts["error"] + counts["timeout"],
        pass_rate=rate,
        usage=usage,
        p50_duration=percentile(durations, 50),
        p95_duration=percentile(durations, 95),
        failed=counts["failed"],
        timeouts=counts["timeout"],
        cancelled=counts["cancelled"],
        min_pass_rate=min_pass_rate,
        ok=total > 0 and rate >= needed - 1e-12,
    )


# ---------------------------------------------------------------------------------------------
# The text report


def format_cost(usage: Usage) -> str:
    """``$0.042``; unpriced calls are called out rather than silently counted as free."""
    cost = usage.cost_usd
    if cost == 0:
        text = "$0"
    elif cost >= 100:
        text = f"${cost:,.0f}"
    elif cost >= 0.01:
        text = f"${cost:.3f}".rstrip("0").rstrip(".") if cost < 1 else f"${cost:.2f}"
    else:
        text = f"${cost:.2g}" if cost >= 1e-4 else f"${cost:.1e}"
    if usage.unpriced_calls:
        text += f" + {usage.unpriced_calls} unpriced call{'s' if usage.unpriced_calls != 1 else ''}"
    return text


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


def _one_line(text: str | None, width: int | None) -> str:
    """Whitespace flattened; cut to ``width`` only when a caller asks (a terminal's live area):
    by default a failure's reason is printed whole."""
    flat = " ".join((text or "").split())
    return flat if width is None or len(flat) <= width else flat[: max(1, width - 1)] + "…"


_STATUS_WORD = {"failed": "failed", "error": "error", "timeout": "timed out", "cancelled": "cancelled"}


def format_summary(result: BatchResult, *, max_failures_per_group: int = 10, width: int | None = None) -> str:
    """The body of :meth:`BatchResult.summary` (also used by reports reading stored records)."""
    lines: list[str] = []
    verdict = "PASSED" if result.passed else "FAILED"
    if result.cancelled:
        verdict = "CANCELLED" if result.total == 0 else f"{verdict}, CANCELLED"
    head = f"{verdict} ({_pct(result.pass_rate)} pass rate, {result.total} run{'s' if result.total != 1 else ''}, {format_cost(result.usage)})"
    extras = []
    if result.min_pass_rate is not None:
        extras.append(f"min pass rate {_pct(result.min_pass_rate)}")
    if result.error_runs or result.timeout_runs:
        extras.append(f"{result.error_runs} error(s), {result.timeout_runs} timeout(s)")
    if result.cancelled_runs or result.not_started:
        extras.append(f"{result.cancelled_runs} cancelled in flight, {result.not_started} not started")
    if result.reason:
        extras.append(result.reason)
    if extras:
        head += " — " + "; ".join(extras)
    lines.append(head)

    many_variants = len(result.by_variant) > 1
    for scenario_name, variants in result.by_scenario_variant.items():
        for variant_name, stats in variants.items():
            label = f"{scenario_name} [{variant_name}]" if many_variants else scenario_name
            line = f"{label}: {stats.passed}/{stats.total} passed"
            if stats.total:
                line += f" ({_pct(stats.pass_rate)})"
            if stats.min_pass_rate is not None:
                line += f", needs {_pct(stats.min_pass_rate)}"
            if stats.cancelled:
                line += f", {stats.cancelled} cancelled"
            if stats.min_pass_rate is not None and stats.total and not stats.ok:
                line += "  ✗ below its threshold"
            lines.append(line)
            bad = [
                r for r in result.runs
                if r.scenario == scenario_name and r.variant == variant_name and r.status not in ("passed", "cancelled")
            ]
            for record in bad[:max_failures_per_group]:
                word = _STATUS_WORD.get(record.status, record.status)
                retry = f" after {record.attempts} attempts" if record.attempts > 1 else ""
                lines.append(f"  run {record.index} {word}{retry}: {_one_line(record.reasoning, width)}")
            if len(bad) > max_failures_per_group:
                lines.append(f"  ... and {len(bad) - max_failures_per_group} more")

    if many_variants:
        parts = [f"{name} {s.passed}/{s.total} ({_pct(s.pass_rate)}, {format_cost(s.usage)})"
                 for name, s in result.by_variant.items()]
        lines.append("By variant: " + ", ".join(parts))
    usage = result.usage
    lines.append(
        f"Latency p50 {_seconds(result.latency_p50)}, p95 {_seconds(result.latency_p95)}, "
        f"p99 {_seconds(result.latency_p99)}; wall {_seconds(result.duration)}; "
        f"{usage.calls} model calls, {usage.input_tokens:,} tokens in, {usage.output_tokens:,} out"
    )
    return "\n".join(lines)
