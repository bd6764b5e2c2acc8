"""The one text table: how ``scenario run``'s verdict table, ``scenario compare`` and the pytest
"scenario summary" lay out their columns.

Policy: a table is figures first, in columns sized to their widest cell (never narrower than a
column asks for, so short tables keep a steady look), two spaces apart; the last column is free
text (a verdict, a test id with its flags) and is never padded, so a long name cannot push the
figures out of view. Values come formatted from the caller's rollup (:mod:`scenario.rollup`);
this module only lays them out, and formats the few values every table shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scenario.rollup import Group


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
