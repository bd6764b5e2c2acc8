"""The JUnit XML report, for CI systems that display test results.

One ``<testcase>`` per scenario and variant: it fails when the scenario missed its pass-rate
threshold, which is exactly what the ``scenario run`` exit code means. Each run's verdict and
reasoning are in ``<system-out>`` and the numbers in ``<properties>``, so a flaky scenario that
still met its threshold shows as passed but its failed runs stay visible.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from scenario.records import RunRecord
from scenario.reports.failure_text import explain_record
from scenario.reports.summary import GroupSummary, Report


def render_junit(report: Report) -> str:
    """The JUnit XML report as text."""
    root = ET.Element("testsuites", name="scenario")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    timestamp = datetime.fromtimestamp(report.generated_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    for suite in report.suites:
        runs_by_group: dict[tuple, list[RunRecord]] = {}
        for record in suite.records:
            runs_by_group.setdefault((record.scenario, record.variant), []).append(record)
        element = ET.SubElement(root, "testsuite", name=suite.name, timestamp=timestamp)
        counts = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        for group in suite.groups:
            runs = runs_by_group.get((group.scenario, group.variant), [])
            seconds = sum(r.duration for r in runs)
            name = group.scenario if group.variant == "default" else f"{group.scenario} [{group.variant}]"
            case = ET.SubElement(element, "testcase", classname=suite.name, name=name, time=f"{seconds:.3f}")
            properties = ET.SubElement(case, "properties")
            for key, value in (
                ("variant", group.variant), ("runs", group.runs), ("passed", group.passed),
                ("failed", group.failed), ("errors", group.errors), ("pass_rate", f"{group.pass_rate:.4f}"),
                ("threshold", group.threshold), ("cost_usd", f"{group.cost_usd:.6f}"),
                ("latency_p50", f"{group.latency_p50:.3f}"), ("latency_p95", f"{group.latency_p95:.3f}"),
            ):
                ET.SubElement(properties, "property", name=key, value=str(value))
            counts["tests"] += 1
            counts["time"] += seconds
            if not group.met:
                only_errors = group.errors == group.runs
                tag = "error" if only_errors else "failure"
                counts["errors" if only_errors else "failures"] += 1
                failure = ET.SubElement(case, tag, message=_verdict(group), type="ThresholdNotMet")
                # Each run that did not pass explained in full: failed criteria with the judge's
                # reasoning, the error and its traceback, the last turns (scenario.reports.failure_text).
                failure.text = "\n\n".join(explain_record(r) for r in runs if r.status != "passed")
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(_run_line(r) for r in runs)
        for key, value in counts.items():
            element.set(key, f"{value:.3f}" if key == "time" else str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, f"{value:.3f}" if key == "time" else str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _verdict(group: GroupSummary) -> str:
    return (
        f"pass rate {group.pass_rate:.0%} ({group.passed}/{group.runs}) is below the threshold "
        f"{group.threshold:.0%}; {group.failed} failed, {group.errors} errored"
    )


def _run_line(record: RunRecord) -> str:
    reasoning = " ".join((record.reasoning or "").split())
    return f"run {record.index + 1}: {record.status} ({record.duration:.2f}s, {record.attempts} attempt(s)): {reasoning}"
