"""Reports from a result store: HTML for people, JSON for tools, JUnit XML for CI.

::

    from scenario.reports import report_from_store, write_report
    from scenario.store import ResultStore

    with ResultStore("results.db", readonly=True) as store:
        write_report(report_from_store(store), "html", "report.html")
"""

from __future__ import annotations

from pathlib import Path

from scenario.reports.html import render_html
from scenario.reports.json_report import render_json
from scenario.reports.junit import render_junit
from scenario.reports.summary import (
    GroupSummary,
    Report,
    SuiteReport,
    report_from_records,
    report_from_store,
    summarize,
)

FORMATS = ("html", "json", "junit")

__all__ = [
    "FORMATS", "GroupSummary", "Report", "SuiteReport", "render", "report_from_records", "report_from_store",
    "summarize", "write_report",
]


def render(report: Report, format: str) -> str:
    """The report as text in ``format`` (html, json or junit)."""
    if format == "json":
        return render_json(report)
    if format == "junit":
        return render_junit(report)
    if format == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {format!r}; use one of {', '.join(FORMATS)}")


def write_report(report: Report, format: str, path: str | Path) -> Path:
    """Render and write atomically (a half-written report never replaces a good one)."""
    target = Path(path)
    text = render(report, format)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return target
