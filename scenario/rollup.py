"""The one rollup: pass rates, "met its threshold", latency percentiles and cost sums.

Policy: every figure a user sees about a group of runs (a scenario, a variant, a scenario/variant
pair, a batch, a pytest test's repetitions) is computed here, once, so the CLI's table, the
pytest summary, the HTML/JSON/JUnit reports, the viewer and ``BatchResult`` cannot disagree.

- A run that ended on its own (passed, failed, error, timeout) is *finished* and counts; a
  cancelled run was stopped from outside, says nothing about the agent, and is outside every rate
  (its cost still counts: the calls were made).
- The pass rate is passed / finished runs, 0 with none.
- A group *meets* its threshold when it has finished runs and its pass rate reaches the threshold
  within :data:`TOLERANCE` (so 4 of 5 runs meet 0.8 whichever way the float rounds). No threshold
  means every run must pass.
- Percentiles are linearly interpolated over the finished runs' durations.

The module reads runs by duck typing (``status``, ``duration``, ``attempts`` and either ``usage``
or ``cost_usd``/``tokens``), so stored outcomes, run records and test repetitions all roll up
the same way; it sits below the data types that carry its results (``scenario.records``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenario.usage import Usage, UsageTotals

#: Statuses of runs that reached an end of their own; a cancelled run was stopped from outside.
FINISHED_STATUSES: tuple[str, ...] = ("passed", "failed", "error", "timeout")
#: Without a threshold, every finished run must pass.
DEFAULT_THRESHOLD = 1.0
#: How far below a threshold a pass rate may fall from float rounding alone (4/5 vs 0.8).
TOLERANCE = 1e-9


def pass_rate(passed: int, total: int) -> float:
    """Passed over total runs; 0 when there are none."""
    return passed / total if total else 0.0


def required_rate(threshold: float | None) -> float:
    """The pass rate a threshold asks for (None: every run must pass)."""
    return DEFAULT_THRESHOLD if threshold is None else threshold


def meets(passed: int, total: int, threshold: float | None) -> bool:
    """Whether ``passed`` of ``total`` runs reach ``threshold`` (None: every run must pass).
    No runs never meet a threshold: nothing was shown to work."""
    return total > 0 and passed / total + TOLERANCE >= required_rate(threshold)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of ``values``, linearly interpolated; 0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


_TOTAL_FIELDS = ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls", "cached_calls")


def sum_usage(usages: Iterable[Usage]) -> Usage:
    """Several usages added up (the same as ``Usage.merge`` in a loop, without a pydantic
    attribute assignment per field per run: batches sum thousands of these)."""
    total = [0, 0, 0, 0.0, 0, 0]
    by_role: dict[str, list[float]] = {}
    by_model: dict[str, list[float]] = {}
    for usage in usages:
        data = usage.__dict__
        for i, name in enumerate(_TOTAL_FIELDS):
            total[i] += data[name]
        for target, source in ((by_role, usage.by_role), (by_model, usage.by_model)):
            for key, totals in source.items():
                acc = target.get(key)
                if acc is None:
                    acc = target[key] = [0, 0, 0, 0.0, 0, 0]
                item = totals.__dict__
                for i, name in enumerate(_TOTAL_FIELDS):
                    acc[i] += item[name]
    result = Usage.model_validate(dict(zip(_TOTAL_FIELDS, total)))
    for key, acc in by_role.items():
        result.by_role[key] = UsageTotals.model_validate(dict(zip(_TOTAL_FIELDS, acc)))
    for key, acc in by_model.items():
        result.by_model[key] = UsageTotals.model_validate(dict(zip(_TOTAL_FIELDS, acc)))
    return result


@dataclass
class Group:
    """The runs of one group (one scenario with one variant, usually) and whether they met the
    threshold. ``runs`` counts finished runs; ``errors`` counts errors and timeouts."""

    suite: str = ""
    scenario: str = ""
    variant: str = ""
    threshold: float | None = DEFAULT_THRESHOLD
    runs: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    timeouts: int = 0
    cancelled: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    durations: list[float] = field(default_factory=list, repr=False)
    usages: list[Usage] = field(default_factory=list, repr=False)

    def add(self, run: Any) -> None:
        """Count one run (a RunRecord, a stored RunOutcome, anything with their fields)."""
        usage = getattr(run, "usage", None)
        if usage is not None:
            self.usages.append(usage)
            self.cost_usd += usage.cost_usd
            self.tokens += usage.total_tokens
        else:
            self.cost_usd += float(getattr(run, "cost_usd", 0.0) or 0.0)
            self.tokens += int(getattr(run, "tokens", 0) or 0)
        status = run.status
        if status not in FINISHED_STATUSES:
            self.cancelled += 1
            return
        self.runs += 1
        if status == "passed":
            self.passed += 1
        elif status == "failed":
            self.failed += 1
        else:
            self.errors += 1
            self.timeouts += status == "timeout"
        self.attempts += int(getattr(run, "attempts", 1) or 1)
        self.durations.append(float(run.duration or 0.0))

    @property
    def pass_rate(self) -> float:
        return pass_rate(self.passed, self.runs)

    @property
    def required(self) -> float:
        """The pass rate this group must reach (no threshold: every run must pass)."""
        return required_rate(self.threshold)

    @property
    def met(self) -> bool:
        return meets(self.passed, self.runs, self.threshold)

    @property
    def tracked_only(self) -> bool:
        """A 0% threshold: the scenario is watched, not required (it can never miss)."""
        return self.threshold is not None and self.threshold <= 0.0

    @property
    def verdict(self) -> str:
        """``met``, ``missed``, or ``tracked`` for a 0% threshold: a green "met" next to 0/3
        passed would read as a pass it is not."""
        if self.tracked_only:
            return "tracked"
        return "met" if self.met else "missed"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - self.runs)

    @property
    def usage(self) -> Usage:
        return sum_usage(self.usages)

    @property
    def latency_p50(self) -> float:
        return percentile(self.durations, 50)

    @property
    def latency_p95(self) -> float:
        return percentile(self.durations, 95)

    @property
    def latency_p99(self) -> float:
        return percentile(self.durations, 99)

    @property
    def latency_mean(self) -> float:
        return sum(self.durations) / len(self.durations) if self.durations else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "scenario": self.scenario,
            "variant": self.variant,
            "runs": self.runs,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "pass_rate": round(self.pass_rate, 6),
            "threshold": self.threshold,
            "met": self.met,
            "verdict": self.verdict,
            "retries": self.retries,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "latency_p50": round(self.latency_p50, 6),
            "latency_p95": round(self.latency_p95, 6),
            "latency_mean": round(self.latency_mean, 6),
        }


def tally(runs: Iterable[Any], threshold: float | None = DEFAULT_THRESHOLD) -> Group:
    """All of ``runs`` as one group."""
    group = Group(threshold=threshold)
    for run in runs:
        group.add(run)
    return group


def group_by(runs: Iterable[Any], key: Callable[[Any], Hashable],
             threshold_of: Callable[[Any], float | None]) -> dict[Any, Group]:
    """Runs grouped by ``key(run)`` in first-seen order, each group judged by ``threshold_of(key)``."""
    groups: dict[Any, Group] = {}
    for run in runs:
        name = key(run)
        group = groups.get(name)
        if group is None:
            group = groups[name] = Group(suite=getattr(run, "suite", ""), scenario=run.scenario, variant=run.variant,
                                         threshold=threshold_of(name))
        group.add(run)
    return groups


def by_pair(runs: Iterable[Any], thresholds: Mapping[tuple[str, str], float] | None = None,
            default_threshold: float | None = DEFAULT_THRESHOLD) -> list[Group]:
    """Runs grouped by (suite, scenario, variant), in first-seen order; ``thresholds`` maps
    (suite, scenario) to its minimum pass rate, others use ``default_threshold``."""
    found = thresholds or {}
    groups = group_by(runs, lambda r: (getattr(r, "suite", ""), r.scenario, r.variant),
                      lambda key: found.get((key[0], key[1]), default_threshold))
    return list(groups.values())


def _constant(threshold: float | None) -> Callable[[Any], float | None]:
    """One threshold for every group (the variants of one scenario share the scenario's)."""
    return lambda _key: threshold


@dataclass
class BatchRollup:
    """A batch's figures and verdict (what ``BatchResult.from_records`` carries)."""

    total: int
    passed: bool
    passed_runs: int
    failed_runs: int
    error_runs: int
    timeout_runs: int
    cancelled_runs: int
    pass_rate: float
    usage: Usage
    latency_p50: float
    latency_p95: float
    latency_p99: float
    by_scenario: dict[str, Group]
    by_variant: dict[str, Group]
    by_scenario_variant: dict[str, dict[str, Group]]


def roll_up_batch(runs: Sequence[Any], *, min_pass_rate: float | None = None,
                  scenario_min_pass_rates: Mapping[str, float | None] | None = None,
                  cancelled: bool = False) -> BatchRollup:
    """A batch's counts, rates, usage, latency, breakdowns and verdict.

    The verdict: a scenario with its own threshold in ``scenario_min_pass_rates`` must meet it in
    every variant; the runs of all other scenarios together must meet ``min_pass_rate`` (without
    one, every one of them must pass); a cancelled batch, or one where nothing finished, never passes.
    Groups carry only a scenario's own threshold; the batch-wide one applies to the pooled runs, so
    a group's ``met`` is informational unless the scenario has its own threshold.
    """
    own = {k: v for k, v in (scenario_min_pass_rates or {}).items() if v is not None}
    whole = tally(runs)
    by_scenario = group_by(runs, lambda r: r.scenario, lambda name: own.get(name))
    by_variant = group_by(runs, lambda r: r.variant, lambda name: None)
    pairs: dict[str, dict[str, Group]] = {}
    for scenario_name in by_scenario:
        subset = [r for r in runs if r.scenario == scenario_name]
        pairs[scenario_name] = group_by(subset, lambda r: r.variant, _constant(own.get(scenario_name)))

    ok = whole.runs > 0 and not cancelled
    for scenario_name, variants in pairs.items():
        if scenario_name in own:
            ok = ok and all(group.met for group in variants.values())
    rest = [group for name, group in by_scenario.items() if name not in own]
    rest_runs = sum(group.runs for group in rest)
    if rest_runs:
        ok = ok and meets(sum(group.passed for group in rest), rest_runs, min_pass_rate)
    return BatchRollup(
        total=whole.runs, passed=ok, passed_runs=whole.passed, failed_runs=whole.failed,
        error_runs=whole.errors - whole.timeouts, timeout_runs=whole.timeouts, cancelled_runs=whole.cancelled,
        pass_rate=whole.pass_rate, usage=whole.usage, latency_p50=whole.latency_p50,
        latency_p95=whole.latency_p95, latency_p99=whole.latency_p99, by_scenario=by_scenario,
        by_variant=by_variant, by_scenario_variant=pairs,
    )
