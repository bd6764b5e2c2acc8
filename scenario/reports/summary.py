"""Verdicts and figures per (suite, scenario, variant), shared by the CLI and every report format.

A scenario passes when its pass rate (passed runs / all runs, errors counting as not passed)
reaches its threshold; the command's exit code and the reports use this one definition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenario.records import RunRecord
from scenario.records import percentile as sorted_percentile

DEFAULT_THRESHOLD = 1.0


@dataclass
class GroupSummary:
    """Runs of one scenario with one variant, and whether they met the threshold."""

    suite: str
    scenario: str
    variant: str
    threshold: float
    runs: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    durations: list[float] = field(default_factory=list, repr=False)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    @property
    def met(self) -> bool:
        # A tolerance so 0.8 of 5 runs (4/5 = 0.8000000000000002 or 0.7999...) compares as meant.
        return self.runs > 0 and self.pass_rate + 1e-9 >= self.threshold

    @property
    def tracked_only(self) -> bool:
        """A 0% threshold: the scenario is watched, not required (it can never miss)."""
        return self.threshold <= 0.0

    @property
    def verdict(self) -> str:
        """``met``, ``missed``, or ``tracked`` for a 0% threshold: a green "met" next to 0/3
        passed would read as a pass it is not."""
        if self.tracked_only:
            return "tracked"
        return "met" if self.met else "missed"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - self.runs)

    @property
    def latency_p50(self) -> float:
        return percentile(self.durations, 50)

    @property
    def latency_p95(self) -> float:
        return percentile(self.durations, 95)

    @property
    def latency_mean(self) -> float:
        return sum(self.durations) / len(self.durations) if self.durations else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "scenario": self.scenario,
            "variant": self.variant,
            "runs": self.runs,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "pass_rate": round(self.pass_rate, 6),
            "threshold": self.threshold,
            "met": self.met,
            "verdict": self.verdict,
            "retries": self.retries,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "latency_p50": round(self.latency_p50, 6),
            "latency_p95": round(self.latency_p95, 6),
            "latency_mean": round(self.latency_mean, 6),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of unsorted values (0 for no values)."""
    return sorted_percentile(sorted(values), q)


def summarize(
    runs: Iterable[Any],
    thresholds: dict[tuple[str, str], float] | None = None,
    default_threshold: float = DEFAULT_THRESHOLD,
) -> list[GroupSummary]:
    """Group runs (RunRecord or store RunOutcome) by (suite, scenario, variant), in first-seen order.

    ``thresholds`` maps (suite, scenario) to the minimum pass rate; others use ``default_threshold``.
    """
    thresholds = thresholds or {}
    groups: dict[tuple[str, str, str], GroupSummary] = {}
    for run in runs:
        key = (run.suite, run.scenario, run.variant)
        group = groups.get(key)
        if group is None:
            threshold = thresholds.get((run.suite, run.scenario), default_threshold)
            group = groups[key] = GroupSummary(run.suite, run.scenario, run.variant, threshold)
        group.runs += 1
        if run.status == "passed":
            group.passed += 1
        elif run.status == "failed":
            group.failed += 1
        else:
            group.errors += 1
        group.attempts += int(run.attempts or 1)
        if isinstance(run, RunRecord):
            group.cost_usd += run.usage.cost_usd
            group.tokens += run.usage.total_tokens
        else:
            group.cost_usd += float(getattr(run, "cost_usd", 0.0) or 0.0)
            group.tokens += int(getattr(run, "tokens", 0) or 0)
        group.durations.append(float(run.duration or 0.0))
    return list(groups.values())


@dataclass
class SuiteReport:
    """One suite's groups and runs, as every report format needs them."""

    name: str
    description: str | None
    groups: list[GroupSummary]
    records: list[RunRecord]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.groups) and all(g.met for g in self.groups)

    @property
    def runs(self) -> int:
        return sum(g.runs for g in self.groups)

    @property
    def passed_runs(self) -> int:
        return sum(g.passed for g in self.groups)

    @property
    def cost_usd(self) -> float:
        return sum(g.cost_usd for g in self.groups)


@dataclass
class Report:
    """Everything a report renders: suites, their groups and every run."""

    suites: list[SuiteReport]
    source: str = ""
    generated_at: float = field(default_factory=time.time)

    @property
    def passed(self) -> bool:
        return bool(self.suites) and all(s.passed for s in self.suites)

    @property
    def groups(self) -> list[GroupSummary]:
        return [g for s in self.suites for g in s.groups]

    @property
    def records(self) -> list[RunRecord]:
        return [r for s in self.suites for r in s.records]

    def totals(self) -> dict[str, Any]:
        records = self.records
        durations = [r.duration for r in records]
        runs = len(records)
        passed = sum(1 for r in records if r.status == "passed")
        cost = sum(r.usage.cost_usd for r in records)
        return {
            "runs": runs,
            "passed": passed,
            "failed": sum(1 for r in records if r.status == "failed"),
            "errors": sum(1 for r in records if r.status not in ("passed", "failed")),
            "pass_rate": round(passed / runs, 6) if runs else 0.0,
            "scenarios": len(self.groups),
            "scenarios_met": sum(1 for g in self.groups if g.met),
            "cost_usd": cost,
            "cost_per_run_usd": cost / runs if runs else 0.0,
            "input_tokens": sum(r.usage.input_tokens for r in records),
            "output_tokens": sum(r.usage.output_tokens for r in records),
            "model_calls": sum(r.usage.calls for r in records),
            "unpriced_calls": sum(r.usage.unpriced_calls for r in records),
            "latency_p50": round(percentile(durations, 50), 6),
            "latency_p95": round(percentile(durations, 95), 6),
            "latency_p99": round(percentile(durations, 99), 6),
            "latency_max": round(max(durations), 6) if durations else 0.0,
        }


def report_from_records(
    records: Sequence[RunRecord],
    *,
    suite_info: dict[str, dict[str, Any]] | None = None,
    source: str = "",
) -> Report:
    """Build a :class:`Report` from records in memory (``suite_info`` gives thresholds per suite)."""
    suite_info = suite_info or {}
    by_suite: dict[str, list[RunRecord]] = {}
    for record in records:
        by_suite.setdefault(record.suite, []).append(record)
    suites = []
    for name, runs in by_suite.items():
        info = suite_info.get(name, {})
        runs.sort(key=lambda r: (_scenario_order(info, r.scenario), r.scenario, r.variant, r.index))
        thresholds = {(name, scenario): float(value) for scenario, value in (info.get("thresholds") or {}).items()}
        suites.append(SuiteReport(
            name=name,
            description=info.get("description"),
            groups=summarize(runs, thresholds),
            records=runs,
            info=info,
        ))
    return Report(suites=suites, source=source)


def _scenario_order(info: dict[str, Any], scenario: str) -> int:
    order = info.get("scenario_order") or []
    try:
        return order.index(scenario)
    except ValueError:
        return len(order)


def report_from_store(store: Any, suite: str | None = None, batch_id: str | None = None) -> Report:
    """Build a :class:`Report` from a :class:`scenario.store.ResultStore`: one batch by id, or
    the latest batch of one suite (or of every suite). Older batches stay in the store as history."""
    if batch_id is not None:
        batch = store.batch(batch_id)
        batches = [batch] if batch is not None else []
    else:
        names = [suite] if suite is not None else store.suites()
        batches = [b for b in (store.latest_batch(name) for name in names) if b is not None]
    info: dict[str, dict[str, Any]] = {}
    records: list[RunRecord] = []
    for batch in batches:
        info[batch.suite] = batch.info or store.suite_info(batch.suite)
        records.extend(store.records(suite=batch.suite, batch_id=batch.id))
    return report_from_records(records, suite_info=info, source=str(store.path))
