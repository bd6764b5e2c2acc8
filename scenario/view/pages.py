"""What each viewer page shows, read from the store: plain data, no HTTP, no HTML.

Policy: a page reads only what it shows. The batches and batch pages use the store's summary
columns and counts (no transcripts), so they stay fast on a store of 100,000 runs; only the run
page loads one full record. Every figure comes from the one rollup (:mod:`scenario.rollup`,
through :func:`scenario.reports.summary.summarize` and :mod:`scenario.reports.compare`), the
same one the CLI and the reports print. ``None`` means "no such batch or run": the app answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scenario.reports.compare import Comparison, compare
from scenario.reports.stats import DEFAULT_ALPHA
from scenario.reports.summary import GroupSummary, summarize
from scenario.rollup import DEFAULT_THRESHOLD, meets


@dataclass
class BatchRow:
    """One line of the batches page."""

    info: Any  # scenario.store.BatchInfo
    groups_met: int | None = None
    groups: int | None = None

    @property
    def thresholds_met(self) -> bool | None:
        return None if self.groups is None else self.groups_met == self.groups


class Pages:
    """Page data over one read-only :class:`scenario.store.ResultStore`."""

    def __init__(self, store: Any):
        self.store = store

    # -- helpers ------------------------------------------------------------------------------
    def thresholds(self, batch: Any) -> dict[str, float]:
        """Scenario -> minimum pass rate, as the batch recorded it (else the suite's latest)."""
        found = (batch.info or {}).get("thresholds")
        if not found:
            found = self.store.suite_info(batch.suite).get("thresholds") or {}
        return {str(k): float(v) for k, v in found.items() if v is not None}

    def groups(self, batch: Any, outcomes: list[Any] | None = None) -> list[GroupSummary]:
        runs = outcomes if outcomes is not None else self.store.outcomes(batch_id=batch.id)
        thresholds = {(batch.suite, name): value for name, value in self.thresholds(batch).items()}
        groups = summarize(runs, thresholds)
        order = (batch.info or {}).get("scenario_order") or []
        position = {name: i for i, name in enumerate(order)}
        return sorted(groups, key=lambda g: (position.get(g.scenario, len(position)), g.scenario, g.variant))

    # -- pages --------------------------------------------------------------------------------
    def batches(self, suite: str | None = None, *, verdicts: bool = True) -> dict[str, Any]:
        """Every batch (of ``suite``), newest first. With ``verdicts`` each row also says whether
        every scenario met its threshold (one grouped query per page, not per batch)."""
        infos = self.store.batches(suite)
        rows = [BatchRow(info) for info in infos]
        if verdicts and rows:
            met = self._thresholds_met(infos)
            for row in rows:
                row.groups_met, row.groups = met.get(row.info.id, (None, None))
        return {"rows": rows, "suites": self.store.suites(), "suite": suite}

    def _thresholds_met(self, infos: list[Any]) -> dict[str, Any]:
        counts = self.store.group_counts([info.id for info in infos])
        result: dict[str, Any] = {}
        for info in infos:
            thresholds = self.thresholds(info)
            pairs = counts.get(info.id, [])
            met = sum(1 for scenario, _variant, passed, runs in pairs
                      if meets(passed, runs, thresholds.get(scenario, DEFAULT_THRESHOLD)))
            result[info.id] = (met, len(pairs))
        return result

    def batch(self, batch_id: str, *, failures_only: bool = False) -> dict[str, Any] | None:
        info = self.store.batch(batch_id)
        if info is None:
            return None
        outcomes = self.store.outcomes(batch_id=batch_id)
        groups = self.groups(info, outcomes)
        runs: dict[tuple, list[Any]] = {}
        for outcome in outcomes:
            if failures_only and outcome.status == "passed":
                continue
            runs.setdefault((outcome.scenario, outcome.variant), []).append(outcome)
        shown = [g for g in groups if not failures_only or not g.met or (g.scenario, g.variant) in runs]
        return {
            "batch": info,
            "verdicts": self.store.run_verdicts(batch_id),
            "live_runs": self.store.live_runs(batch_id) if info.status == "running" else [],
            "groups": shown,
            "all_groups": groups,
            "runs": runs,
            "failures_only": failures_only,
            "previous": self._previous(info),
        }

    def _previous(self, info: Any) -> Any | None:
        return self.store.previous_batch(info)

    def run(self, batch_id: str, run_id: str) -> dict[str, Any] | None:
        info = self.store.batch(batch_id)
        if info is None:
            return None
        record = self.store.record(batch_id, run_id)
        if record is None:
            return None
        about = {}
        for scenario in (info.info or {}).get("scenarios") or []:
            if isinstance(scenario, dict) and scenario.get("name") == record.scenario:
                about = scenario
        return {"batch": info, "record": record, "about": about}

    def live_run(self, batch_id: str, run_id: str) -> dict[str, Any] | None:
        """A run in flight: its transcript so far, or a pointer to its record once it finished."""
        info = self.store.batch(batch_id)
        if info is None:
            return None
        finished = self.store.record(batch_id, run_id)
        found = self.store.live_runs(batch_id, run_id)
        if not found and finished is None:
            return None
        if found:
            live = found[0]
        else:  # finished meanwhile: show its whole transcript, and link to its page
            live = {"id": run_id, "suite": finished.suite, "scenario": finished.scenario, "variant": finished.variant,
                    "index": finished.index, "turn": 0, "updated_at": None,
                    "messages": finished.result.messages if finished.result else []}
        return {"batch": info, "live_run": live, "finished": finished}

    def comparison(self, base_id: str | None, head_id: str | None,
                   suite: str | None = None) -> dict[str, Any] | None:
        """Two batches side by side; without ids, the latest batch of ``suite`` (or of the store,
        when it holds one suite) against the one before it. None when an id is unknown."""
        head = self.store.batch(head_id) if head_id else None
        base = self.store.batch(base_id) if base_id else None
        if (head_id and head is None) or (base_id and base is None):
            return None
        if head is None:
            suite = suite or (base.suite if base is not None else None) or self._only_suite()
            candidates = [b for b in self.store.batches(suite) if base is None or b.id != base.id]
            head = candidates[0] if candidates else None
        if base is None and head is not None:
            base = self._previous(head)
        if base is None or head is None:
            return {"comparison": None, "base": base, "head": head, "suites": self.store.suites(), "suite": suite,
                    "problem": "needs two batches of one suite: run the suite again, or pick two batches"}
        result = compare_batches(self.store, base, head)
        return {"comparison": result, "base": base, "head": head, "suites": self.store.suites(), "suite": head.suite,
                "problem": None if base.suite == head.suite else
                f"these batches are of different suites ({base.suite!r} and {head.suite!r}): compared by scenario name"}

    def _only_suite(self) -> str | None:
        suites = self.store.suites()
        return suites[0] if len(suites) == 1 else None

    def stamp(self) -> str:
        """Changes whenever anything was written to the store (what live pages poll)."""
        return self.store.change_stamp()


def compare_batches(store: Any, base: Any, head: Any, *, alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Compare two stored batches (the same computation for the page and ``scenario compare``)."""
    pages = Pages(store)
    return compare(
        store.outcomes(batch_id=base.id), store.outcomes(batch_id=head.id),
        base_id=base.id, head_id=head.id,
        thresholds=pages.thresholds(base), head_thresholds=pages.thresholds(head), alpha=alpha,
    )
