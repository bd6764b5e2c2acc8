"""Per-test figures (runs, pass rate, time, cost), the end-of-session table and the JSON report.

A test's figures travel as plain data: flat ``user_properties`` (which JUnit XML turns into
``<property>`` elements) and one ``scenario_summary`` dict on the call report. Reports are what
pytest-xdist ships from workers to the controller, so the controller's table and JSON file
merge every worker's tests without any extra channel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from _pytest.outcomes import Skipped, XFailed

from scenario.events import ResultCollector
from scenario.pytest_plugin._repeat import RunOutcome, describe_error
from scenario.pytest_plugin._settings import RepeatSettings
from scenario.rollup import pass_rate
from scenario.text import Column, money, percent, table

REPORT_ATTRIBUTE = "scenario_summary"
REPORT_VERSION = 1


def build_row(
    *,
    nodeid: str,
    collector: ResultCollector,
    duration: float,
    error: BaseException | None,
    settings: RepeatSettings | None,
    outcomes: Sequence[RunOutcome] | None,
    test_file: str | None = None,
) -> dict[str, Any]:
    """One summary row (JSON-ready) for a test that was marked or ran scenarios."""
    results = collector.results
    usage = collector.usage()
    if outcomes:
        counted = [o for o in outcomes if not o.skipped]
        runs = len(outcomes)
        passed = sum(1 for o in counted if o.passed)
        failures = [
            {"run": o.index, "error": describe_error(o.error, test_file)} for o in counted if not o.passed
        ]
        skipped_runs = runs - len(counted)
    else:  # unmarked test, or the repetition never started: the test body is the one run
        runs = 1
        skipped = isinstance(error, Skipped) and not isinstance(error, XFailed)
        skipped_runs = 1 if skipped else 0
        passed = 1 if error is None else 0
        failures = [] if error is None or skipped else [{"run": 1, "error": describe_error(error, test_file)}]
    counted_runs = runs - skipped_runs
    if error is None:
        outcome = "passed"
    elif isinstance(error, Skipped) and not isinstance(error, XFailed):
        outcome = "skipped"
    else:
        outcome = "failed"
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "runs": runs,
        "passed_runs": passed,
        "skipped_runs": skipped_runs,
        "pass_rate": pass_rate(passed, counted_runs) if counted_runs else None,
        "min_pass_rate": settings.min_pass_rate if settings is not None else None,
        "max_concurrency": settings.max_concurrency if settings is not None else None,
        "marked": settings is not None,
        "duration_s": round(duration, 6),
        "scenarios": len(results),
        "scenarios_passed": sum(1 for r in results if r.success),
        "model_calls": usage.calls,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
        "unpriced_calls": usage.unpriced_calls,
        "failures": failures,
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "reruns": 0,  # set by the session plugin, which sees pytest-rerunfailures' rerun reports
    }


def user_properties(row: dict[str, Any]) -> list[tuple]:
    """The row's figures as flat (name, value) pairs, the shape JUnit XML properties take."""
    rate = row["pass_rate"]
    pairs = [
        ("scenario_runs", row["runs"]),
        ("scenario_passed_runs", row["passed_runs"]),
        ("scenario_pass_rate", round(rate, 4) if rate is not None else ""),
    ]
    if row["min_pass_rate"] is not None:
        pairs.append(("scenario_min_pass_rate", row["min_pass_rate"]))
    pairs += [
        ("scenario_duration_s", round(row["duration_s"], 3)),
        ("scenario_results", row["scenarios"]),
        ("scenario_model_calls", row["model_calls"]),
        ("scenario_input_tokens", row["input_tokens"]),
        ("scenario_output_tokens", row["output_tokens"]),
        ("scenario_cost_usd", round(row["cost_usd"], 8)),
    ]
    return pairs


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tests": len(rows),
        "tests_passed": sum(1 for r in rows if r["outcome"] == "passed"),
        "tests_failed": sum(1 for r in rows if r["outcome"] == "failed"),
        "runs": sum(r["runs"] for r in rows),
        "passed_runs": sum(r["passed_runs"] for r in rows),
        "scenarios": sum(r["scenarios"] for r in rows),
        "duration_s": round(sum(r["duration_s"] for r in rows), 6),
        "model_calls": sum(r["model_calls"] for r in rows),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
        "cost_usd": sum(r["cost_usd"] for r in rows),
        "unpriced_calls": sum(r["unpriced_calls"] for r in rows),
        "reruns": sum(r.get("reruns", 0) for r in rows),
    }


def sorted_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # Workers finish in any order; sorting makes the table and the file reproducible.
    return sorted(rows, key=lambda r: r["nodeid"])


def write_json(path: str, rows: Sequence[dict[str, Any]]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    document = {"version": REPORT_VERSION, "tests": sorted_rows(rows), "total": totals(rows)}
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The terminal table: one line per test (figures first, so long test ids never push
    them out of view), then the session total."""
    ordered = sorted_rows(rows)
    columns = [Column(title, ">") for title in ("runs", "passed", "rate", "min", "time", "cost")] + [Column("test")]
    cells = []
    for row in ordered:
        flag = {"failed": "  FAILED", "skipped": "  SKIPPED"}.get(row["outcome"], "")
        reruns = row.get("reruns", 0)
        if reruns:
            flag += f"  (after {reruns} rerun{'s' if reruns != 1 else ''})"
        cells.append([str(row["runs"]), str(row["passed_runs"]), percent(row["pass_rate"]),
                      percent(row["min_pass_rate"]), f"{row['duration_s']:.2f}s", money(row["cost_usd"]),
                      row["nodeid"] + flag])
    lines = table(columns, cells)
    total = totals(rows)
    summary = (
        f"{total['tests']} scenario test(s), {total['passed_runs']} of {total['runs']} runs passed, "
        f"{total['scenarios']} scenario run(s), {total['model_calls']} model call(s); "
        f"session cost {money(total['cost_usd'])}"
    )
    if total["reruns"]:
        summary += f"; {total['reruns']} rerun(s) of failed attempts"
    if total["unpriced_calls"]:
        summary += f" ({total['unpriced_calls']} call(s) could not be priced and count as $0)"
    lines.append(summary)
    return lines
