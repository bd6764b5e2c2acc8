"""The one rollup: every front end's pass rate, threshold verdict, percentile and cost come from here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from scenario.records import BatchResult, RunRecord, run_id
from scenario.reports import report_from_records, summarize
from scenario.rollup import Group, by_pair, meets, pass_rate, percentile, roll_up_batch, tally
from scenario.store import RunOutcome
from scenario.text import Column, table, verdict_table
from scenario.usage import Usage


def record(scenario: str, index: int, status: str, *, variant: str = "default", cost: float = 0.0,
           duration: float = 1.0, attempts: int = 1) -> RunRecord:
    return RunRecord(id=run_id("s", scenario, variant, index), suite="s", scenario=scenario, variant=variant,
                     index=index, status=status, duration=duration, attempts=attempts,
                     usage=Usage(calls=1, input_tokens=10, output_tokens=5, cost_usd=cost))


def outcome(run: RunRecord) -> RunOutcome:
    """The same run as the store hands it to the table and the viewer (no transcript, no Usage)."""
    return RunOutcome(run.id, run.suite, run.scenario, run.variant, run.index, run.status, run.duration,
                      run.usage.cost_usd, run.attempts, run.usage.total_tokens)


def test_four_of_five_meets_eighty_percent_whichever_way_the_float_rounds():
    assert meets(4, 5, 0.8) and meets(4, 5, 4 / 5 + 1e-12)
    assert not meets(3, 5, 0.8)
    assert not meets(0, 0, 0.0), "no finished runs never meet a threshold"
    assert meets(3, 3, None) and not meets(2, 3, None), "no threshold: every run must pass"
    assert pass_rate(0, 0) == 0.0 and pass_rate(1, 4) == 0.25


def test_percentiles_sort_their_input_and_interpolate():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 99) == 0.0 and percentile([7.0], 1) == 7.0


def test_a_cancelled_run_is_outside_every_rate_but_its_cost_counts():
    runs = [record("a", 0, "passed", cost=0.5), record("a", 1, "cancelled", cost=0.25, duration=99.0)]
    group = tally(runs)
    assert (group.runs, group.passed, group.cancelled, group.pass_rate, group.met) == (1, 1, 1, 1.0, True)
    assert group.cost_usd == pytest.approx(0.75) and group.latency_p95 == 1.0
    [summary] = summarize(runs)
    assert (summary.runs, summary.errors, summary.met) == (1, 0, True)
    result = BatchResult.from_records(runs)
    assert (result.total, result.cancelled_runs, result.passed) == (1, 1, True)


def test_stored_outcomes_and_records_roll_up_to_the_same_figures():
    runs = [record("a", 0, "passed", cost=0.1), record("a", 1, "timeout", cost=0.2, attempts=3),
            record("a", 2, "failed", cost=0.3), record("b", 0, "error", variant="v2", cost=0.4)]
    from_records = [group.as_dict() for group in by_pair(runs, {("s", "a"): 0.3})]
    from_outcomes = [group.as_dict() for group in by_pair([outcome(r) for r in runs], {("s", "a"): 0.3})]
    assert from_records == from_outcomes
    a = from_records[0]
    assert (a["runs"], a["passed"], a["failed"], a["errors"], a["met"], a["retries"]) == (3, 1, 1, 1, True, 2)


def test_every_front_end_reads_one_verdict_per_group():
    # 2 of 3 passed against 0.66: met by the batch result, the report and the table alike.
    runs = [record("a", 0, "passed"), record("a", 1, "passed"), record("a", 2, "failed")]
    batch = BatchResult.from_records(runs, scenario_min_pass_rates={"a": 0.66})
    report = report_from_records(runs, suite_info={"s": {"thresholds": {"a": 0.66}}})
    [group] = report.groups
    assert batch.passed and batch.by_scenario["a"].ok and group.met
    assert verdict_table(report.groups)[1].split()[-1] == "ok"
    assert report.totals()["pass_rate"] == round(2 / 3, 6)


def test_the_batch_verdict_pools_runs_without_their_own_threshold():
    runs = [record("a", 0, "passed"), record("a", 1, "failed"), record("b", 0, "passed"), record("b", 1, "passed")]
    assert roll_up_batch(runs, min_pass_rate=0.75).passed  # 3 of 4 pooled
    assert not roll_up_batch(runs, min_pass_rate=0.75, scenario_min_pass_rates={"a": 0.6}).passed  # a alone: 50%
    assert not roll_up_batch(runs, min_pass_rate=0.0, cancelled=True).passed


def test_a_zero_threshold_is_tracked_not_met_or_missed():
    group = Group(scenario="known gap", variant="default", threshold=0.0)
    group.add(SimpleNamespace(status="failed", duration=1.0, attempts=1, cost_usd=0.0, tokens=0))
    assert group.met and group.verdict == "tracked" and group.tracked_only


def test_the_text_table_sizes_columns_to_their_widest_cell_and_leaves_the_last_one_free():
    lines = table([Column("name"), Column("n", ">", 3), Column("note")],
                  [["a", "1", "short"], ["longer name", "100", "x"]], indent="  ")
    assert lines == [
        "  name           n  note",
        "  a              1  short",
        "  longer name  100  x",
    ]
