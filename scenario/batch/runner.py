"""``run_batch``: many runs of many scenarios, bounded, retried, cancellable, rolled up.

This module is the door: :class:`~scenario.batch.options.BatchOptions` checks every argument once,
:func:`plan_batch` checks every scenario x variant's agents and plans the runs, and the planned
:class:`BatchConfig` goes to the one dispatch loop (``dispatch.py``) on the backend it names, which
drives every backend the same way. What one run does lives in ``execute.py``; where runs execute
lives in ``backends/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from scenario.batch.backends import Backend
from scenario.batch.dispatch import execute_batch  # noqa: F401 - also importable from here, as before
from scenario.batch.options import DEFAULT_MAX_CONCURRENCY, BatchOptions, RunFinishedHook  # noqa: F401 - re-exported
from scenario.batch.plan import select_shard
from scenario.batch.spec import AgentRecipe, RunUnit, Scenario, plan_units
from scenario.batch.stored import StoredBatch
from scenario.concurrency.strategies import ConcurrencyStrategy
from scenario.distributed import Ray
from scenario.errors import ScenarioConfigError
from scenario.records import BatchResult


@dataclasses.dataclass
class BatchConfig(BatchOptions):
    """A planned batch: its checked options plus the runs to do (``units``, in plan order) and how
    many planned runs ``skip`` left out."""

    units: list[RunUnit] = dataclasses.field(default_factory=list)
    skipped: int = 0


async def run_batch(
    scenarios: Sequence[Scenario],
    runs: int = 1,
    *,
    variants: Mapping[str, Any] | Sequence[Any] | None = None,
    agents: Mapping[str, Any] | Sequence[Any] | None = None,
    executor: str = "thread",
    max_concurrency: int | None = None,
    concurrency: ConcurrencyStrategy | None = None,
    retries: Any = 0,
    timeout: float | None = None,
    on_error: str = "continue",
    min_pass_rate: float | None = None,
    on_run_finished: RunFinishedHook | None = None,
    suite: str = "",
    skip: Collection[str] | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    processes: int = 1,
    backend: str | Ray | Backend = "local",
    store: Any = None,
    resume: bool | str | None = None,
) -> BatchResult:
    """Run every scenario ``runs`` times (with every variant) and roll the results up.

    Args:
        scenarios: :class:`scenario.Scenario` specs; names must be unique.
        runs: repetitions of each scenario (a scenario's own ``runs`` wins).
        variants: several agents under test, each run on every scenario: ``{name: factory}`` or a
            list of factories (named after them). A factory is a zero-argument callable (or class)
            returning the agent-under-test adapter or a list of adapters; its adapters replace the
            scenario's adapters of the same roles. ``agents=`` is the same option.
        executor: ``"thread"`` (each run as ``scenario.run``: a worker thread with its own loop) or
            ``"loop"`` (each run as ``scenario.arun``: on this loop).
        max_concurrency: runs in flight at most (default 20); or pass ``concurrency=`` a strategy
            (``scenario.SlidingWindow(n)``, ``scenario.Adaptive(...)``), shared with other batches if
            you like. Rate limits (``configure(rate_limits=...)``) apply on top, per model call.
        retries: re-run a whole scenario whose run ended on a transient error (rate limit,
            timeout, connection, 5xx; never a 4xx or a bug in the agent) up to this many times,
            with exponential backoff and jitter honouring Retry-After; or a ``scenario.RetryPolicy``.
        timeout: seconds per run (a scenario's own ``timeout`` wins); a run past it is cancelled
            and recorded as ``timeout``.
        on_error: ``"continue"`` records a run's error and goes on; ``"fail_fast"`` stops at the
            first run that errors or times out (failed verdicts do not stop a batch), cancels the
            runs in flight and returns the partial result.
        min_pass_rate: pass rate the batch needs (default: every run passes); see
            :meth:`scenario.BatchResult.from_records` for how per-scenario thresholds combine.
        on_run_finished: called (sync or async) with each finished run's record *before* it is
            counted: persist it here and an interrupted batch loses nothing. If it raises, the batch
            stops and the exception propagates.
        suite: suite name, part of every run id (:func:`scenario.records.run_id`).
        skip: run ids to leave out (already finished in a result store).
        shard_index, shard_count: run only shard ``shard_index`` of ``shard_count`` (runs dealt
            round-robin in plan order), for the CLI and pytest-xdist.
        processes: spread the batch over this many forked worker processes on this machine (POSIX);
            see docs/batch.md.
        backend: where runs execute: ``"local"`` (this process, or ``processes`` forked ones),
            ``"ray"`` (``RAY_ADDRESS``, a running cluster, else a local one started for the batch) or
            ``scenario.distributed.Ray(address=..., workers=..., ...)``; see docs/batch.md, "Past one
            machine". Every backend is driven by the same dispatch loop: same limits, fail-fast,
            cancellation and exactly one record per run.
        store: a :class:`scenario.ResultStore` (or a path to one): the batch is recorded in it as a
            new batch, each finished run written before ``on_run_finished`` sees it.
        resume: with ``store``, continue a batch instead of starting one: ``True`` for the latest
            interrupted batch of ``suite``, or a batch id. Runs it finished with a verdict and an
            unchanged fingerprint are kept; errored, missing and changed ones run. The result then
            covers the whole batch, kept runs included.

    Returns:
        A :class:`scenario.BatchResult`. If the task awaiting this is cancelled (Ctrl-C under
        ``asyncio.run``), the runs in flight are cancelled and the partial result is returned
        with ``cancelled=True`` instead of raising.

    Raises:
        scenario.ScenarioConfigError: bad arguments, an agent factory that fails, or a batch to
            resume that does not exist, before any run starts.
    """
    if resume and store is None:
        raise ScenarioConfigError(
            f"run_batch(resume={resume!r}): resuming needs the store holding the batch; pass store=ResultStore(path)."
        )
    config = plan_batch(BatchOptions.check(
        scenarios, runs, variants=variants, agents=agents, executor=executor, max_concurrency=max_concurrency,
        concurrency=concurrency, retries=retries, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
        on_run_finished=on_run_finished, suite=suite, skip=skip, shard_index=shard_index, shard_count=shard_count,
        processes=processes, backend=backend,
    ))
    if store is not None:
        return await StoredBatch.open(store, config, resume=resume).execute()
    return await execute_batch(config)


# ---------------------------------------------------------------------------------------------
# Planning


def prepare_batch(scenarios: Sequence[Scenario], runs: int = 1, **arguments: Any) -> BatchConfig:
    """Check ``run_batch``'s arguments (the same keywords, ``store``/``resume`` aside) and plan the
    batch, without running it: :meth:`BatchOptions.check`, then :func:`plan_batch`."""
    return plan_batch(BatchOptions.check(scenarios, runs, **arguments))


def plan_batch(options: BatchOptions) -> BatchConfig:
    """Check every scenario x variant's agents (each built once, and its first run's spec checked),
    then plan the runs: repetitions, this shard, minus the runs to skip."""
    named = options.variants
    recipes: dict[tuple[str, str], AgentRecipe] = {}
    for spec in options.scenarios:
        wanted = list(named) if spec.variants is None else spec.variants
        unknown = [v for v in wanted if v not in named]
        if unknown:
            raise ScenarioConfigError(
                f"scenario {spec.name!r}: variants {unknown} are not in the batch; it has {list(named)}."
            )
        for variant in wanted:
            recipe = AgentRecipe(spec, named[variant], variant)
            probe = recipe.probe(min_pass_rate=options.min_pass_rate, timeout=options.timeout)
            try:
                spec.spec(probe, timeout=options.timeout)
            except ScenarioConfigError as exc:
                suffix = f" (variant {variant!r})" if variant in named and len(named) > 1 else ""
                raise ScenarioConfigError(f"{exc}{suffix}") from None
            recipes[(spec.name, variant)] = recipe

    units = plan_units(options.scenarios, recipes, list(named), options.runs, options.suite)
    if options.shard_count is not None:
        units = select_shard(units, options.shard_index or 0, options.shard_count)
    skipped = 0
    if options.skip:
        before = len(units)
        units = [u for u in units if u.id not in options.skip]
        skipped = before - len(units)
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return BatchConfig(**values, units=units, skipped=skipped)
