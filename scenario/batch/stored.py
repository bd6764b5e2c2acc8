"""A batch recorded in a result store: a new batch by default, or an interrupted one resumed.

Policy: results are fresh unless a resume is asked for. ``run_batch(..., store=...)`` and
``scenario run`` start a new batch every time, so editing a criterion and running again never
judges old verdicts against new settings. ``resume=True`` (``--resume``) continues the latest
interrupted batch of the suite, ``resume="<batch id>"`` a given one. A resume keeps a stored run
only when it ended with a verdict (passed/failed) *and* its fingerprint matches what the run would
be today (:mod:`scenario.batch.fingerprint`); errored, missing and changed runs run again, and the plan
says how many of each and which parts changed.

Each finished run is written to the store before the caller's ``on_run_finished`` sees it
(nothing reported is ever unrecorded), and the batch row is closed as ``finished`` or
``interrupted`` on every way out, exceptions included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenario.batch.dispatch import execute_batch
from scenario.batch.fingerprint import changed_parts
from scenario.errors import ScenarioConfigError
from scenario.live import LiveSink, current_sink
from scenario.records import BatchResult, RunRecord
from scenario.store import VERDICT_STATUSES, BatchInfo, ResultStore, StoreError, new_batch_id

ResumeArg = bool | str | None


@dataclass
class ResumePlan:
    """What a batch will run: everything (a new batch), or what a resumed batch still needs."""

    batch: BatchInfo | None  # the batch being resumed; None for a new batch
    planned: int  # runs in the batch (this shard)
    kept: set[str] = field(default_factory=set)  # run ids finished with an unchanged fingerprint
    kept_passed: int = 0
    missing: int = 0  # never finished (not started, cancelled)
    errored: int = 0  # ended on an error or timeout: run again
    changed: dict[str, list[str]] = field(default_factory=dict)  # run id -> parts whose digest changed

    @property
    def to_run(self) -> int:
        return self.planned - len(self.kept)

    def describe(self) -> str:
        """One paragraph for people: what is kept and why the rest runs."""
        if self.batch is None:
            return f"New batch: {self.planned} run{'s' if self.planned != 1 else ''}."
        head = (f"Resuming batch {self.batch.id} of suite {self.batch.suite!r} (started "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(self.batch.started_at))}): "
                f"{len(self.kept)} of {self.planned} runs kept")
        reasons = []
        if self.missing:
            reasons.append(f"{self.missing} not finished")
        if self.errored:
            reasons.append(f"{self.errored} ended on an error or timeout")
        if self.changed:
            counts: dict[str, int] = {}
            for parts in self.changed.values():
                for part in parts or ["unknown"]:
                    counts[part] = counts.get(part, 0) + 1
            what = ", ".join(f"{part} ({n})" for part, n in counts.items())
            reasons.append(f"{len(self.changed)} changed since they ran: {what}")
        if not reasons:
            return head + "; nothing left to run."
        return head + f"; running {self.to_run}: " + "; ".join(reasons) + "."


class StoredBatch:
    """Opens (or resumes) a batch in a store for a prepared batch config, and runs it there.

    ``StoredBatch.open`` reads the store and trims ``config.units`` to what must run (nothing is
    written yet: a dry run can stop there); :meth:`execute` records the batch and runs it.
    """

    def __init__(self, store: ResultStore, config: Any, plan: ResumePlan, *, own_store: bool = False,
                 command: str | None = None, git_dir: Any = None, info: dict[str, Any] | None = None):
        self.store = store
        self.config = config
        self.plan = plan
        #: The batch's id, known before it starts (a new batch's id is chosen here, written by execute()).
        self.batch_id: str = plan.batch.id if plan.batch is not None else new_batch_id()
        self._started = False
        self._own_store = own_store
        self._command = command
        self._git_dir = git_dir
        self._info = info
        self._planned_units = list(config.units)

    @classmethod
    def open(cls, store: ResultStore | str | Path, config: Any, *, resume: ResumeArg = None,
             command: str | None = None, git_dir: Any = None,
             info: dict[str, Any] | None = None) -> StoredBatch:
        own = False
        if not isinstance(store, ResultStore):
            if not isinstance(store, (str, Path)):
                raise ScenarioConfigError(
                    f"run_batch(store=...): expected a scenario.ResultStore or a file path, got {type(store).__name__}."
                )
            try:
                store = ResultStore(store)
            except StoreError as exc:
                raise ScenarioConfigError(f"run_batch(store=...): {exc}") from None
            own = True
        try:
            batch = _batch_to_resume(store, config.suite, resume)
            plan = _plan(store, config, batch)
        except BaseException:
            if own:
                store.close()
            raise
        all_units = list(config.units)
        config.units = [unit for unit in all_units if unit.id not in plan.kept]
        config.skipped += len(all_units) - len(config.units)
        stored = cls(store, config, plan, own_store=own, command=command, git_dir=git_dir, info=info)
        stored._planned_units = all_units
        return stored

    async def execute(self, *, include_kept: bool = True) -> BatchResult:
        """Record the batch and run what the plan left to run.

        Args:
            include_kept: roll the kept runs (read back from the store) into the result, so it
                covers the whole batch; the CLI, which reports from the store, skips that read.
        """
        config, store, plan = self.config, self.store, self.plan
        try:
            info = self._info if self._info is not None else _default_info(config)
            if plan.batch is None:
                batch = store.start_batch(config.suite, planned=plan.planned, info=info, command=self._command,
                                          git_dir=self._git_dir, batch_id=self.batch_id)
            else:
                batch = store.resume_batch(plan.batch.id, planned=plan.planned, command=self._command)
            self._started = True
            store.save_fingerprint_parts({
                unit.recipe.fingerprint: unit.recipe.fingerprint_parts
                for unit in self._planned_units if unit.recipe.fingerprint
            })
            hook = config.on_run_finished
            batch_id = batch.id
            sink = LiveSink(store, batch_id)  # transcripts of runs in flight, for `scenario view`

            def record_then_report(record: RunRecord) -> Any:
                if record.status == "cancelled":
                    return None  # stopped from outside: not a result; it runs again on resume
                record.batch_id = batch_id
                store.put(record)
                sink.finished(record.id)
                return hook(record) if hook is not None else None

            config.on_run_finished = record_then_report
            live_token = current_sink.set(sink)
            try:
                result = await execute_batch(config)
            except BaseException as exc:
                self._close("interrupted", f"{type(exc).__name__}: {exc}")
                raise
            finally:
                current_sink.reset(live_token)
                sink.close()
                config.on_run_finished = hook
            stopped = result.cancelled or result.not_started > 0
            self._close("interrupted" if stopped else "finished", result.reason if stopped else None)
            return self._whole(result, include_kept)
        finally:
            if self._own_store:
                store.close()

    def _close(self, status: str, reason: str | None) -> None:
        if not self._started:
            return
        try:
            self.store.finish_batch(self.batch_id, status, reason)
        except StoreError:
            pass  # the write that failed is already the error being reported

    def _whole(self, result: BatchResult, include_kept: bool) -> BatchResult:
        """The result of the whole batch: kept runs from the store plus the runs just made."""
        config = self.config
        for record in result.runs:
            record.batch_id = self.batch_id
        metadata = dict(result.metadata)
        metadata.update({"batch_id": self.batch_id, "kept": len(self.plan.kept),
                         "resumed": self.plan.batch is not None})
        if not self.plan.kept or not include_kept:
            result.metadata = metadata
            return result
        kept = self.store.records(batch_id=self.batch_id, ids=sorted(self.plan.kept))
        position = {unit.id: unit.position for unit in self._planned_units}
        runs = sorted(kept + list(result.runs), key=lambda r: position.get(r.id, 0))
        return BatchResult.from_records(
            runs,
            min_pass_rate=config.min_pass_rate,
            scenario_min_pass_rates={s.name: s.min_pass_rate for s in config.scenarios},
            duration=result.duration,
            planned=self.plan.planned,
            cancelled=result.cancelled,
            reason=result.reason,
            metadata=metadata,
        )


def _batch_to_resume(store: ResultStore, suite: str, resume: ResumeArg) -> BatchInfo | None:
    if resume is None or resume is False:
        return None
    if resume is True:
        for batch in store.batches(suite):
            if batch.status == "interrupted":
                return batch
        latest = store.latest_batch(suite)
        if latest is None:
            raise ScenarioConfigError(
                f"resume: {store.path} holds no batch of suite {suite!r}, so there is nothing to resume; run without "
                "resume to start one."
            )
        raise ScenarioConfigError(
            f"resume: no interrupted batch of suite {suite!r} in {store.path}; its latest batch {latest.id} is "
            f"{latest.status}. Run without resume for a fresh batch, or resume that batch by id ({latest.id}) to "
            "re-run its errored and changed runs."
        )
    if not isinstance(resume, str):
        raise ScenarioConfigError(
            f"resume={resume!r}: give True (the latest interrupted batch of the suite) or a batch id string."
        )
    wanted = store.batch(resume)
    if wanted is None:
        recent = [b.id for b in store.batches(suite)[:5]]
        hint = f"recent batches of suite {suite!r}: {', '.join(recent)}" if recent else f"it has no batch of suite {suite!r}"
        raise ScenarioConfigError(f"resume: {store.path} has no batch {resume!r}; {hint}.")
    if wanted.suite != suite:
        raise ScenarioConfigError(
            f"resume: batch {resume} belongs to suite {wanted.suite!r}, not {suite!r}; resume it with that suite."
        )
    if wanted.status == "running":
        raise ScenarioConfigError(
            f"resume: batch {resume} is still running (process {wanted.writer}); wait for it to end or stop it first."
        )
    return wanted


def _plan(store: ResultStore, config: Any, batch: BatchInfo | None) -> ResumePlan:
    units = list(config.units)
    plan = ResumePlan(batch=batch, planned=len(units))
    if batch is None:
        return plan
    stored = {outcome.id: outcome for outcome in store.outcomes(batch_id=batch.id)}
    stale: dict[str, Any] = {}
    for unit in units:
        outcome = stored.get(unit.id)
        if outcome is None:
            plan.missing += 1
        elif outcome.status not in VERDICT_STATUSES:
            plan.errored += 1
        elif outcome.fingerprint != unit.recipe.fingerprint:
            stale[unit.id] = (outcome.fingerprint, unit.recipe.fingerprint_parts)
        else:
            plan.kept.add(unit.id)
            plan.kept_passed += outcome.status == "passed"
    if stale:
        old_parts = store.fingerprint_parts(old for old, _ in stale.values() if old)
        for run, (old, new_parts) in stale.items():
            if old is None:
                plan.changed[run] = ["fingerprint unknown (stored by an older version)"]
            else:
                plan.changed[run] = changed_parts(old_parts.get(old, {}), new_parts)
    return plan


def _default_info(config: Any) -> dict[str, Any]:
    """What reports need about a batch run from Python (the CLI passes its suite's own)."""
    thresholds = {}
    for spec in config.scenarios:
        rate = spec.min_pass_rate if spec.min_pass_rate is not None else config.min_pass_rate
        thresholds[spec.name] = 1.0 if rate is None else rate
    return {
        "scenario_order": [s.name for s in config.scenarios],
        "thresholds": thresholds,
        "min_pass_rate": config.min_pass_rate,
        "variants": list(config.variants),
        "scenarios": [{"name": s.name, "description": s.description, "runs": s.runs or config.runs,
                       "min_pass_rate": s.min_pass_rate, "max_turns": s.max_turns} for s in config.scenarios],
    }
