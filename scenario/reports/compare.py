"""Compare two batches of one suite: what flipped, what changed beyond chance, what it cost.

Policy: a scenario/variant pair *regressed* when its pass rate fell and Fisher's exact test says
a fall this large is unlikely by chance at these run counts (p < alpha, 0.05 by default); a fall
within chance is reported as such, never as a regression, because re-running a flaky agent moves
pass rates by itself. A verdict flip (threshold met -> missed) is shown either way: it is what
CI saw. ``scenario compare A B`` exits non-zero only on a regression beyond chance, so a CI gate
on it does not fail on noise. One computation, read by the terminal table, the viewer's compare
page and the exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scenario.reports.stats import DEFAULT_ALPHA, fisher_exact
from scenario.reports.summary import GroupSummary, summarize
from scenario.rollup import tally
from scenario.text import Column, table


@dataclass
class PairChange:
    """One scenario/variant pair in both batches (either side may be missing)."""

    scenario: str
    variant: str
    base: GroupSummary | None
    head: GroupSummary | None
    p_value: float = 1.0
    alpha: float = DEFAULT_ALPHA

    @property
    def label(self) -> str:
        return self.scenario if self.variant == "default" else f"{self.scenario} [{self.variant}]"

    @property
    def rate_change(self) -> float | None:
        if self.base is None or self.head is None or not self.base.runs or not self.head.runs:
            return None
        return self.head.pass_rate - self.base.pass_rate

    @property
    def beyond_chance(self) -> bool:
        return self.rate_change is not None and self.rate_change != 0 and self.p_value < self.alpha

    @property
    def kind(self) -> str:
        """regressed | improved | within chance | unchanged | new | gone."""
        if self.base is None:
            return "new"
        if self.head is None:
            return "gone"
        change = self.rate_change
        if not change:
            return "unchanged"
        if self.beyond_chance:
            return "regressed" if change < 0 else "improved"
        return "within chance"

    @property
    def flip(self) -> str | None:
        """"broke" when the threshold was met before and is missed now, "fixed" the other way."""
        if self.base is None or self.head is None:
            return None
        if self.base.met and not self.head.met:
            return "broke"
        if not self.base.met and self.head.met:
            return "fixed"
        return None

    @property
    def statement(self) -> str:
        """A plain sentence about the pass-rate change and whether chance explains it."""
        if self.base is None:
            return f"new in the later batch: {self.head.passed}/{self.head.runs} passed"  # type: ignore[union-attr]
        if self.head is None:
            return "not run in the later batch"
        before = f"{self.base.passed}/{self.base.runs} ({self.base.pass_rate:.0%})"
        after = f"{self.head.passed}/{self.head.runs} ({self.head.pass_rate:.0%})"
        change = self.rate_change
        if not change:
            return f"pass rate unchanged: {before} -> {after}"
        direction = "fell" if change < 0 else "rose"
        if self.beyond_chance:
            verdict = f"larger than chance (p = {self.p_value:.3g} < {self.alpha:g}, Fisher's exact test)"
        else:
            verdict = (f"within chance at these run counts (p = {self.p_value:.2g}, Fisher's exact test); "
                       "more runs would tell")
        return f"pass rate {direction} {before} -> {after}: {verdict}"

    @property
    def cost_per_run_change(self) -> float | None:
        if self.base is None or self.head is None or not self.base.runs or not self.head.runs:
            return None
        return self.head.cost_usd / self.head.runs - self.base.cost_usd / self.base.runs

    @property
    def p50_change(self) -> float | None:
        if self.base is None or self.head is None:
            return None
        return self.head.latency_p50 - self.base.latency_p50


@dataclass
class Comparison:
    """Two batches side by side, pair by pair (base: the earlier one, head: the later one)."""

    base_id: str
    head_id: str
    pairs: list[PairChange] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    base_cost: float = 0.0
    head_cost: float = 0.0
    base_runs: int = 0
    head_runs: int = 0

    @property
    def regressions(self) -> list[PairChange]:
        return [p for p in self.pairs if p.kind == "regressed"]

    @property
    def improvements(self) -> list[PairChange]:
        return [p for p in self.pairs if p.kind == "improved"]

    @property
    def flips(self) -> list[PairChange]:
        return [p for p in self.pairs if p.flip]

    @property
    def regressed(self) -> bool:
        """What ``scenario compare`` exits non-zero on."""
        return bool(self.regressions)

    @property
    def headline(self) -> str:
        if self.regressions:
            names = ", ".join(p.label for p in self.regressions)
            return f"REGRESSED beyond chance: {names}"
        if self.flips:
            return (f"{len(self.flips)} verdict flip(s), none beyond chance at these run counts: "
                    "re-run with more runs to tell")
        return "No regression beyond chance"


def compare(
    base: Iterable[Any],
    head: Iterable[Any],
    *,
    base_id: str = "base",
    head_id: str = "head",
    thresholds: dict[str, float] | None = None,
    head_thresholds: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Comparison:
    """Compare two batches' runs (``RunRecord`` or store outcomes: scenario, variant, status,
    duration, cost). ``thresholds`` maps scenario -> minimum pass rate (default: every run);
    ``head_thresholds`` when the later batch had other thresholds."""
    base_runs = [r for r in base if r.status != "cancelled"]
    head_runs = [r for r in head if r.status != "cancelled"]
    before = _by_pair(base_runs, thresholds or {})
    after = _by_pair(head_runs, head_thresholds if head_thresholds is not None else (thresholds or {}))
    pairs: list[PairChange] = []
    for key in list(before) + [k for k in after if k not in before]:
        b, h = before.get(key), after.get(key)
        p_value = fisher_exact(b.passed, b.runs, h.passed, h.runs) if b is not None and h is not None else 1.0
        pairs.append(PairChange(key[0], key[1], b, h, p_value, alpha))
    base_total, head_total = tally(base_runs), tally(head_runs)
    return Comparison(
        base_id=base_id, head_id=head_id, pairs=pairs, alpha=alpha,
        base_cost=base_total.cost_usd, head_cost=head_total.cost_usd,
        base_runs=base_total.runs, head_runs=head_total.runs,
    )


def _by_pair(runs: list[Any], thresholds: dict[str, float]) -> dict[tuple[str, str], GroupSummary]:
    keyed = {(suite, scenario): float(t) for suite in {run.suite for run in runs} for scenario, t in thresholds.items()}
    return {(g.scenario, g.variant): g for g in summarize(runs, keyed)}


def format_comparison(comparison: Comparison) -> str:
    """The comparison as a terminal table plus one statement per changed pair."""
    lines = [f"Comparing batch {comparison.base_id} (before) with {comparison.head_id} (after)"]
    columns = [Column("scenario"), Column("before", ">", 9), Column("after", ">", 9), Column("change", ">", 7),
               Column("p", ">", 6), Column("verdict")]
    rows = []
    for pair in comparison.pairs:
        rows.append([
            pair.label,
            f"{pair.base.passed}/{pair.base.runs}" if pair.base else "-",
            f"{pair.head.passed}/{pair.head.runs}" if pair.head else "-",
            f"{pair.rate_change * 100:+.0f}pt" if pair.rate_change is not None else "",
            f"{pair.p_value:.3g}" if pair.base and pair.head else "",
            pair.kind + (f", {pair.flip}" if pair.flip else ""),
        ])
    lines.extend(table(columns, rows, indent="  "))
    for pair in comparison.pairs:
        if pair.kind not in ("unchanged",):
            lines.append(f"{pair.label}: {pair.statement}")
    if comparison.base_runs and comparison.head_runs:
        before = comparison.base_cost / comparison.base_runs
        after = comparison.head_cost / comparison.head_runs
        lines.append(f"Cost per run ${before:.5f} -> ${after:.5f}")
    lines.append(comparison.headline)
    return "\n".join(lines)
