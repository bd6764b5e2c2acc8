"""The HTML report: one self-contained file a browser opens from disk, no server, no network.

The page is rendered from the templates shared with ``scenario view`` (``report.html`` and the
run pieces in ``run.html``; see :mod:`scenario.reports.templating`), so a run reads the same in
both. Styles are inline, charts are inline SVG drawn here, and transcripts sit in ``<details>``
so the page works with scripting disabled. Everything that came from a run (messages,
reasoning, names) is escaped by the template engine: transcripts are model output and must
never become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from scenario.records import RunRecord
from scenario.reports.summary import GroupSummary, Report
from scenario.reports.templating import environment, group_label

_VARIANT_COLOURS = ("#0969da", "#8250df", "#bf3989", "#1b7c83", "#953800", "#4d2d00")


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    from markupsafe import Markup

    runs_by_group: dict[tuple[str, str, str], list[RunRecord]] = {}
    for suite in report.suites:
        for record in suite.records:
            runs_by_group.setdefault((suite.name, record.scenario, record.variant), []).append(record)
    charts = [
        {
            "pass_rate": Markup(pass_rate_chart(suite.groups)),
            "latency": Markup(latency_chart(suite.groups)),
            "cost": Markup(cost_chart(suite.groups)),
        }
        for suite in report.suites
    ]
    suite_scenarios = [
        {s.get("name"): s for s in suite.info.get("scenarios", []) if isinstance(s, dict)} for suite in report.suites
    ]
    return environment().get_template("report.html").render(
        title=", ".join(s.name for s in report.suites) or "empty",
        verdict="passed" if report.passed else "failed",
        generated=report.generated_at,
        source=report.source,
        totals=report.totals(),
        suites=report.suites,
        charts=charts,
        suite_scenarios=suite_scenarios,
        runs_by_group=runs_by_group,
    )


def _label(group: GroupSummary) -> str:
    return group_label(group)


# -- charts ------------------------------------------------------------------------------------

_LABEL_W = 300
_BAR_W = 520
_ROW_H = 24


def _svg(height: int, body: list[str], title: str) -> str:
    width = _LABEL_W + _BAR_W + 70
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>"
    )


def _clip(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pass_rate_chart(groups: Sequence[GroupSummary], variants: Sequence[str] = ()) -> str:
    """Horizontal bars of pass rate per group, green when the threshold is met, with a threshold tick."""
    body: list[str] = []
    for row, g in enumerate(groups):
        y = 6 + row * _ROW_H
        width = max(1.0, g.pass_rate * _BAR_W)
        colour = "#1a7f37" if g.met else "#cf222e"
        tick = _LABEL_W + g.required * _BAR_W
        body.append(f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(_clip(_label(g)))}</text>')
        body.append(f'<rect x="{_LABEL_W}" y="{y + 2}" width="{_BAR_W}" height="{_ROW_H - 8}" fill="#eaeef2"/>')
        body.append(
            f'<rect class="bar" x="{_LABEL_W}" y="{y + 2}" width="{width:.1f}" height="{_ROW_H - 8}" fill="{colour}">'
            f"<title>{escape(_label(g))}: {g.passed}/{g.runs} passed ({g.pass_rate:.0%}), threshold {g.required:.0%}</title></rect>"
        )
        body.append(f'<line x1="{tick:.1f}" x2="{tick:.1f}" y1="{y}" y2="{y + _ROW_H - 4}" stroke="#1f2328" stroke-width="2"/>')
        body.append(f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}">{g.pass_rate:.0%}</text>')
    return _svg(12 + len(groups) * _ROW_H, body, "pass rate per scenario")


def _scaled_bars(groups: Sequence[GroupSummary], series: Sequence[tuple[str, str, Any]], unit: str, title: str) -> str:
    top = max((value(g) for g in groups for _, _, value in series), default=0.0) or 1.0
    body: list[str] = []
    bar_h = (_ROW_H - 8) / len(series)
    for row, g in enumerate(groups):
        y = 6 + row * _ROW_H
        body.append(f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(_clip(_label(g)))}</text>')
        for index, (name, colour, value) in enumerate(series):
            v = value(g)
            width = max(1.0, v / top * _BAR_W)
            body.append(
                f'<rect x="{_LABEL_W}" y="{y + 2 + index * bar_h:.1f}" width="{width:.1f}" height="{bar_h:.1f}" '
                f'fill="{colour}"><title>{escape(_label(g))} {name}: {unit}{v:.4g}</title></rect>'
            )
        last = series[-1][2](g)
        body.append(f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}">{unit}{last:.3g}</text>')
    return _svg(12 + len(groups) * _ROW_H, body, title)


def latency_chart(groups: Sequence[GroupSummary]) -> str:
    return _scaled_bars(
        groups,
        [("p50", "#80ccff", lambda g: g.latency_p50), ("p95", "#0969da", lambda g: g.latency_p95)],
        "",
        "latency per scenario",
    )


def cost_chart(groups: Sequence[GroupSummary]) -> str:
    return _scaled_bars(groups, [("cost", "#8250df", lambda g: g.cost_usd)], "$", "cost per scenario")
