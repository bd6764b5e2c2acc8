"""Results as plain text: the one table layout (``scenario run``'s verdict table, ``scenario
compare`` and the pytest "scenario summary" use it), and :meth:`BatchResult.summary`'s text.

It sits just above :mod:`scenario.rollup` and below :mod:`scenario.records` so that the data type's
``summary()`` and every front end render through this one module.

Policy: a table is figures first, in columns sized to their widest cell (never narrower than a
column asks for, so short tables keep a steady look), two spaces apart; the last column is free
text (a verdict, a test id with its flags) and is never padded, so a long name cannot push the
figures out of view. Values come formatted from the caller's rollup (:mod:`scenario.rollup`);
this module only lays them out, and formats the few values every table shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scenario.rollup import Group
from scenario.usage import Usage

if TYPE_CHECKING:  # pragma: no cover
    from scenario.records import BatchResult


@dataclass(frozen=True)
class Column:
    """One column: its title, ``"<"`` (left) or ``">"`` (right) alignment, and a minimum width."""

    title: str
    align: str = "<"
    width: int = 0


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, indent: str = "") -> list[str]:
    """The header line and one line per row; the last column is free text, unpadded."""
    widths = [max(column.width, len(column.title), *(len(row[i]) for row in rows)) for i, column in
              enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.rjust(width) if column.align == ">" else cell.ljust(width)
                  for cell, width, column in zip(cells[:-1], widths, columns)]
        return indent + "  ".join([*padded, cells[-1]])

    return [line([column.title for column in columns]), *(line(row) for row in rows)]


def percent(rate: float | None) -> str:
    """``80%``; ``-`` when there is no rate (nothing counted)."""
    return "-" if rate is None else f"{rate:.0%}"


def money(value: float) -> str:
    """``$0.001234`` under a dollar (agent runs are cheap), ``$12.50`` above."""
    return f"${value:.6f}" if value < 1 else f"${value:.2f}"


def verdict_table(groups: Sequence[Group]) -> list[str]:
    """``scenario run``'s table: passed/total, pass rate, threshold and verdict per scenario and
    variant (``ok``, ``MISSED``, or ``tracked`` for a 0% threshold)."""
    columns = [Column("scenario"), Column("variant"), Column("passed", ">", 7), Column("rate", ">", 5),
               Column("needs", ">", 5), Column("verdict")]
    rows = []
    for group in groups:
        verdict = "tracked" if group.tracked_only else ("ok" if group.met else "MISSED")
        extra = f" ({group.errors} errored)" if group.errors else ""
        rows.append([group.scenario, group.variant, f"{group.passed}/{group.runs}", percent(group.pass_rate),
                     percent(group.threshold), verdict + extra])
    return table(columns, rows, indent="  ")


# ---------------------------------------------------------------------------------------------
# BatchResult.summary()

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
