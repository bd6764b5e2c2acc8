"""The JSON report: the summary plus every run record, for tools and dashboards.

Top-level keys: ``format`` ("scenario-report"), ``version``, ``generated_at`` (ISO 8601 UTC),
``source``, ``passed``, ``totals``, ``suites`` (each with ``groups`` and ``runs``). Runs are the
stored :class:`scenario.records.RunRecord` as JSON, transcripts included.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from scenario.reports.summary import Report

REPORT_FORMAT = "scenario-report"
REPORT_VERSION = 1


def report_dict(report: Report, *, include_runs: bool = True) -> dict[str, Any]:
    """The report as plain JSON-able data."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "generated_at": datetime.fromtimestamp(report.generated_at, tz=timezone.utc).isoformat(),
        "source": report.source,
        "passed": report.passed,
        "totals": report.totals(),
        "suites": [
            {
                "name": suite.name,
                "description": suite.description,
                "passed": suite.passed,
                "runs_total": suite.runs,
                "runs_passed": suite.passed_runs,
                "cost_usd": suite.cost_usd,
                "groups": [group.as_dict() for group in suite.groups],
                **({"runs": [r.model_dump(mode="json", fallback=str) for r in suite.records]} if include_runs else {}),
            }
            for suite in report.suites
        ],
    }


def render_json(report: Report, *, include_runs: bool = True, indent: int = 2) -> str:
    """The JSON report as text."""
    return json.dumps(report_dict(report, include_runs=include_runs), indent=indent, ensure_ascii=False, default=str) + "\n"
