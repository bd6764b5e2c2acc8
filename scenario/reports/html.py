"""The HTML report: one self-contained file a browser opens from disk, no server, no network.

Styles are inline, charts are inline SVG drawn here, and transcripts sit in ``<details>`` so the
page works with scripting disabled. Everything that came from a run (messages, reasoning, names)
is escaped: transcripts are model output and must never become markup.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..records import RunRecord
from .summary import GroupSummary, Report, SuiteReport

_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 24px 0 6px; } .muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; vertical-align: middle; }
.passed, .met { background: var(--ok); } .failed, .missed { background: var(--bad); }
.error, .timeout, .cancelled { background: var(--warn); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 140px; background: var(--bg); }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0 20px; } figcaption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
svg text { font: 12px -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #1f2328; }
details.run { border: 1px solid var(--line); border-radius: 6px; margin: 6px 0; }
details.run > summary { cursor: pointer; padding: 6px 10px; list-style-position: inside; }
details.run[open] > summary { border-bottom: 1px solid var(--line); background: var(--bg); }
.run-body { padding: 10px 14px; }
.msg { border-radius: 6px; padding: 6px 10px; margin: 6px 0; white-space: pre-wrap; word-wrap: break-word; }
.msg .role { font-size: 11px; font-weight: 600; text-transform: uppercase; color: var(--muted); display: block; }
.msg.user { background: #ddf4ff; margin-right: 15%; } .msg.assistant { background: #f6f8fa; margin-left: 15%; border: 1px solid var(--line); }
.msg.tool, .msg.system { background: #fff8c5; font-family: ui-monospace, monospace; font-size: 12px; }
.reasoning { margin: 4px 0 10px; } .crit-passed { color: var(--ok); font-weight: 600; } .crit-failed { color: var(--bad); font-weight: 600; }
.crit-inconclusive { color: var(--warn); font-weight: 600; }
pre { background: var(--bg); padding: 8px; overflow-x: auto; font-size: 12px; }
"""

_VARIANT_COLOURS = ("#0969da", "#8250df", "#bf3989", "#1b7c83", "#953800", "#4d2d00")


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    generated = datetime.fromtimestamp(report.generated_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    verdict = "passed" if report.passed else "failed"
    totals = report.totals()
    parts: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Scenario report: {escape(', '.join(s.name for s in report.suites) or 'empty')}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<h1>Scenario report <span class="badge {verdict}" id="verdict">{verdict.upper()}</span></h1>',
        f'<p class="muted">Generated {escape(generated)}'
        + (f" from <code>{escape(report.source)}</code>" if report.source else "")
        + f" &middot; {totals['scenarios_met']} of {totals['scenarios']} scenario/variant pairs met their threshold</p>",
        _cards(totals),
    ]
    if not report.suites:
        parts.append("<p>The store holds no runs yet.</p>")
    for suite in report.suites:
        parts.append(_suite_section(suite))
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _cards(totals: Dict[str, Any]) -> str:
    unpriced = f" ({totals['unpriced_calls']} unpriced calls)" if totals["unpriced_calls"] else ""
    cards = [
        (f"{totals['passed']}/{totals['runs']}", "runs passed"),
        (f"{totals['pass_rate']:.1%}", "pass rate"),
        (f"{totals['errors']}", "errored runs"),
        (f"${totals['cost_usd']:.4f}", "total cost" + unpriced),
        (f"${totals['cost_per_run_usd']:.5f}", "cost per run"),
        (f"{totals['input_tokens'] + totals['output_tokens']:,}", "tokens"),
        (f"{totals['latency_p50']:.2f}s", "run latency p50"),
        (f"{totals['latency_p95']:.2f}s", "run latency p95"),
    ]
    inner = "".join(f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>' for value, label in cards)
    return f'<section class="cards" id="totals">{inner}</section>'


def _suite_section(suite: SuiteReport) -> str:
    verdict = "passed" if suite.passed else "failed"
    out = [f'<section class="suite" data-suite="{escape(suite.name)}">']
    out.append(f'<h2>{escape(suite.name)} <span class="badge {verdict}">{verdict.upper()}</span></h2>')
    if suite.description:
        out.append(f"<p>{escape(suite.description)}</p>")
    out.append(_summary_table(suite.groups))
    variants = sorted({g.variant for g in suite.groups})
    out.append("<figure><figcaption>Pass rate per scenario and variant (tick: threshold)</figcaption>")
    out.append(pass_rate_chart(suite.groups, variants))
    out.append("</figure>")
    out.append("<figure><figcaption>Run latency per scenario and variant (light: p50, dark: p95), seconds</figcaption>")
    out.append(latency_chart(suite.groups))
    out.append("</figure>")
    out.append("<figure><figcaption>Cost per scenario and variant, USD</figcaption>")
    out.append(cost_chart(suite.groups))
    out.append("</figure>")
    out.append(_runs_section(suite))
    out.append("</section>")
    return "\n".join(out)


def _label(group: GroupSummary) -> str:
    return group.scenario if group.variant == "default" else f"{group.scenario} [{group.variant}]"


def _summary_table(groups: Sequence[GroupSummary]) -> str:
    rows = []
    for g in groups:
        verdict = "met" if g.met else "missed"
        rows.append(
            "<tr>"
            f"<td>{escape(g.scenario)}</td><td>{escape(g.variant)}</td>"
            f'<td class="num">{g.runs}</td><td class="num">{g.passed}</td><td class="num">{g.failed}</td>'
            f'<td class="num">{g.errors}</td><td class="num">{g.pass_rate:.0%}</td><td class="num">{g.threshold:.0%}</td>'
            f'<td><span class="badge {verdict}">{verdict}</span></td>'
            f'<td class="num">${g.cost_usd:.4f}</td><td class="num">{g.latency_p50:.2f}s</td>'
            f'<td class="num">{g.latency_p95:.2f}s</td>'
            "</tr>"
        )
    head = (
        "<tr><th>Scenario</th><th>Variant</th><th class=num>Runs</th><th class=num>Passed</th><th class=num>Failed</th>"
        "<th class=num>Errors</th><th class=num>Pass rate</th><th class=num>Threshold</th><th>Verdict</th>"
        "<th class=num>Cost</th><th class=num>p50</th><th class=num>p95</th></tr>"
    )
    return f'<table class="summary"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


# -- charts ------------------------------------------------------------------------------------

_LABEL_W = 300
_BAR_W = 520
_ROW_H = 24


def _svg(height: int, body: List[str], title: str) -> str:
    width = _LABEL_W + _BAR_W + 70
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>"
    )


def _clip(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pass_rate_chart(groups: Sequence[GroupSummary], variants: Sequence[str] = ()) -> str:
    """Horizontal bars of pass rate per group, green when the threshold is met, with a threshold tick."""
    body: List[str] = []
    for row, g in enumerate(groups):
        y = 6 + row * _ROW_H
        width = max(1.0, g.pass_rate * _BAR_W)
        colour = "#1a7f37" if g.met else "#cf222e"
        tick = _LABEL_W + g.threshold * _BAR_W
        body.append(f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(_clip(_label(g)))}</text>')
        body.append(f'<rect x="{_LABEL_W}" y="{y + 2}" width="{_BAR_W}" height="{_ROW_H - 8}" fill="#eaeef2"/>')
        body.append(
            f'<rect class="bar" x="{_LABEL_W}" y="{y + 2}" width="{width:.1f}" height="{_ROW_H - 8}" fill="{colour}">'
            f"<title>{escape(_label(g))}: {g.passed}/{g.runs} passed ({g.pass_rate:.0%}), threshold {g.threshold:.0%}</title></rect>"
        )
        body.append(f'<line x1="{tick:.1f}" x2="{tick:.1f}" y1="{y}" y2="{y + _ROW_H - 4}" stroke="#1f2328" stroke-width="2"/>')
        body.append(f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}">{g.pass_rate:.0%}</text>')
    return _svg(12 + len(groups) * _ROW_H, body, "pass rate per scenario")


def _scaled_bars(groups: Sequence[GroupSummary], series: Sequence[Tuple[str, str, Any]], unit: str, title: str) -> str:
    top = max((value(g) for g in groups for _, _, value in series), default=0.0) or 1.0
    body: List[str] = []
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


# -- runs --------------------------------------------------------------------------------------


def _runs_section(suite: SuiteReport) -> str:
    scenario_info = {s.get("name"): s for s in suite.info.get("scenarios", []) if isinstance(s, dict)}
    by_group: Dict[Tuple[str, str], List[RunRecord]] = {}
    for record in suite.records:
        by_group.setdefault((record.scenario, record.variant), []).append(record)
    out = [f'<section class="runs" id="runs-{escape(_slug(suite.name))}"><h2>Runs</h2>']
    for g in suite.groups:
        out.append(f"<h3>{escape(_label(g))} <span class=\"muted\">{g.passed}/{g.runs} passed</span></h3>")
        info = scenario_info.get(g.scenario) or {}
        if info.get("description"):
            out.append(f'<p class="muted">{escape(str(info["description"]))}</p>')
        if info.get("criteria"):
            items = "".join(f"<li>{escape(str(c))}</li>" for c in info["criteria"])
            out.append(f'<ul class="criteria">{items}</ul>')
        for record in by_group.get((g.scenario, g.variant), []):
            out.append(_run_details(record))
    out.append("</section>")
    return "\n".join(out)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "suite"


def _run_details(record: RunRecord) -> str:
    status = record.status
    cost = record.usage.cost_usd
    reasoning = record.reasoning or ""
    short = reasoning if len(reasoning) <= 140 else reasoning[:139] + "…"
    summary = (
        f'<summary><span class="badge {escape(status)}">{escape(status)}</span> run {record.index + 1} '
        f'<span class="muted">&middot; {record.duration:.2f}s &middot; ${cost:.5f} &middot; '
        f"{record.attempts} attempt{'s' if record.attempts != 1 else ''}</span> &mdash; {escape(short)}</summary>"
    )
    body: List[str] = ['<div class="run-body">']
    if reasoning:
        body.append(f'<p class="reasoning"><b>Verdict:</b> {escape(reasoning)}</p>')
    result = record.result
    if result is not None and result.criteria:
        rows = "".join(
            f"<tr><td>{escape(c.requirement)}</td><td class=\"crit-{escape(c.status)}\">{escape(c.status)}</td>"
            f"<td>{escape(c.reasoning or '')}</td></tr>"
            for c in result.criteria
        )
        body.append(
            "<table class=\"criteria-table\"><thead><tr><th>Criterion</th><th>Status</th><th>Reasoning</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    if record.error_type:
        where = f" at {record.error_where}" if record.error_where else ""
        body.append(f"<pre class=\"error-info\">Error{escape(where)}: {escape(record.error_type)}: "
                    f"{escape(record.error_message or '')}</pre>")
        if record.error_traceback:
            # Collapsed: the summary line above says what; the traceback is for whoever digs.
            body.append(f'<details class="traceback"><summary>Traceback</summary>'
                        f'<pre class="error-info">{escape(record.error_traceback)}</pre></details>')
    if result is not None and result.messages:
        body.append('<div class="transcript">')
        for message in result.messages:
            body.append(_message(message))
        body.append("</div>")
    elif result is None or not result.messages:
        body.append('<p class="muted">No transcript (the run ended before any message).</p>')
    usage = record.usage
    body.append(
        f'<p class="muted">Model calls {usage.calls}, tokens {usage.input_tokens} in / {usage.output_tokens} out, '
        f"started {_when(record.started_at)}, id <code>{escape(record.id)}</code></p>"
    )
    body.append("</div>")
    # Runs that did not pass start expanded: they are what a reader opens the report for.
    opened = "" if status == "passed" else " open"
    return f'<details class="run" data-status="{escape(status)}"{opened}>{summary}{"".join(body)}</details>'


def _message(message: Dict[str, Any]) -> str:
    from ..state import message_text

    role = str(message.get("role", "?"))
    try:
        text = message_text(message)
    except Exception:  # a malformed stored message still deserves to be shown
        text = json.dumps(message, default=str)
    css = role if role in ("user", "assistant", "tool", "system") else "system"
    return f'<div class="msg {css}"><span class="role">{escape(role)}</span>{escape(text)}</div>'


def _when(timestamp: Optional[float]) -> str:
    if not timestamp:
        return "?"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
