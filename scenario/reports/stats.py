"""Is a pass-rate change real? The two small statistics the viewer and ``scenario compare`` need.

Policy: pass rates of agent runs come from small samples (5 to 50 runs a scenario is typical),
where normal approximations mislead. So the interval around a pass rate is Wilson's score
interval (sensible at 0/n and n/n), and whether two pass rates differ by more than chance is
Fisher's exact test on the 2x2 table of passed/not-passed runs, two-sided, computed exactly from
the hypergeometric distribution. Pure Python (``math.lgamma``): no SciPy for two formulas.
"""

from __future__ import annotations

import math

#: The significance level below which a change counts as "larger than chance".
DEFAULT_ALPHA = 0.05
_Z95 = 1.959963984540054


def wilson_interval(passed: int, runs: int, z: float = _Z95) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate ``passed / runs``; (0, 1) for no runs."""
    if runs <= 0:
        return (0.0, 1.0)
    p = passed / runs
    denominator = 1 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(passed_a: int, runs_a: int, passed_b: int, runs_b: int) -> float:
    """Two-sided p-value of Fisher's exact test: how likely pass counts at least this different
    are when both samples share one pass rate. 1.0 when either sample is empty."""
    if runs_a <= 0 or runs_b <= 0:
        return 1.0
    if not (0 <= passed_a <= runs_a and 0 <= passed_b <= runs_b):
        raise ValueError(f"passed counts must lie within the runs: {passed_a}/{runs_a}, {passed_b}/{runs_b}")
    total_passed = passed_a + passed_b
    total = runs_a + runs_b
    low = max(0, total_passed - runs_b)
    high = min(runs_a, total_passed)
    log_denominator = _log_choose(total, total_passed)

    def probability(k: int) -> float:
        return math.exp(_log_choose(runs_a, k) + _log_choose(runs_b, total_passed - k) - log_denominator)

    observed = probability(passed_a)
    # Tables as extreme as the observed one or more (a relative tolerance absorbs rounding).
    p_value = sum(p for p in (probability(k) for k in range(low, high + 1)) if p <= observed * (1 + 1e-7))
    return min(1.0, p_value)
