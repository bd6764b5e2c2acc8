"""Verdicts and figures per (suite, scenario, variant), shared by the CLI and every report format.

A scenario passes when its pass rate (passed runs / finished runs, errors counting as not passed)
reaches its threshold: the definition and the figures are :mod:`scenario.rollup`'s, the same ones
the command's exit code, the pytest summary, the viewer and ``BatchResult`` use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenario.records import RunRecord
from scenario.rollup import DEFAULT_THRESHOLD, Group, by_pair, tally

#: One scenario with one variant, and whether its runs met the threshold (the rollup's group).
GroupSummary = Group


def summarize(
    runs: Iterable[Any],
    thresholds: dict[tuple[str, str], float] | None = None,
    default_threshold: float = DEFAULT_THRESHOLD,
) -> list[GroupSummary]:
    """Group runs (RunRecord or store RunOutcome) by (suite, scenario, variant), in first-seen order.

    ``thresholds`` maps (suite, scenario) to the minimum pass rate; others use ``default_threshold``.
    """
    return by_pair(runs, thresholds, default_threshold)


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
        whole = tally(self.records)
        usage = whole.usage
        return {
            "runs": whole.runs,
            "passed": whole.passed,
            "failed": whole.failed,
            "errors": whole.errors,
            "pass_rate": round(whole.pass_rate, 6),
            "scenarios": len(self.groups),
            "scenarios_met": sum(1 for g in self.groups if g.met),
            "cost_usd": whole.cost_usd,
            "cost_per_run_usd": whole.cost_usd / whole.runs if whole.runs else 0.0,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "model_calls": usage.calls,
            "unpriced_calls": usage.unpriced_calls,
            "latency_p50": round(whole.latency_p50, 6),
            "latency_p95": round(whole.latency_p95, 6),
            "latency_p99": round(whole.latency_p99, 6),
            "latency_max": round(max(whole.durations), 6) if whole.durations else 0.0,
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
