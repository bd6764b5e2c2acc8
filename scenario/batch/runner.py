"""``run_batch``: many runs of many scenarios, bounded, retried, cancellable, rolled up.

This module is the door: it checks every argument and every scenario x variant's agents once,
plans the runs, picks the backend and hands both to the one dispatch loop (``dispatch.py``), which
drives every backend the same way. What one run does lives in ``execute.py``; where runs execute
lives in ``backends/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from scenario.batch.backends import Backend
from scenario.batch.dispatch import SPAN_BATCH  # noqa: F401
from scenario.batch.execute import BACKSTOP_GRACE, SPAN_BATCH_RUN  # noqa: F401 - re-exported for callers of this module
from scenario.batch.spec import (
    AgentRecipe,
    RunUnit,
    Scenario,
    check_rate,
    check_runs,
    check_timeout,
    normalize_variants,
    plan_units,
)
from scenario.concurrency.strategies import ConcurrencyStrategy, SlidingWindow
from scenario.distributed import DEFAULT_INFRA_RETRIES, Ray
from scenario.engine.loop import build_spec
from scenario.errors import ScenarioConfigError
from scenario.records import BatchResult, RunRecord

#: Runs in flight when neither ``max_concurrency`` nor ``concurrency`` is given.
DEFAULT_MAX_CONCURRENCY = 20
EXECUTORS = ("thread", "loop")
ON_ERROR = ("continue", "fail_fast")
BACKENDS = ("local", "ray")

RunFinishedHook = Callable[[RunRecord], Any]


@dataclasses.dataclass
class BatchConfig:
    """Validated ``run_batch`` arguments (everything checked before anything runs)."""

    scenarios: list[Scenario]
    variants: dict[str, Any]
    runs: int
    executor: str
    strategy: ConcurrencyStrategy
    retry_policy: Any  # scenario.llm.retry.RetryPolicy; max_attempts = retries + 1
    timeout: float | None
    on_error: str
    min_pass_rate: float | None
    on_run_finished: RunFinishedHook | None
    suite: str
    skip: Collection[str]
    shard_index: int | None
    shard_count: int | None
    processes: int
    backend: Any = "local"  # "local" | scenario.distributed.Ray | a Backend instance
    infra_retries: int = DEFAULT_INFRA_RETRIES
    units: list[RunUnit] = dataclasses.field(default_factory=list)
    skipped: int = 0

    @property
    def max_attempts(self) -> int:
        return self.retry_policy.max_attempts


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
    config = prepare_batch(
        scenarios, runs, variants=variants, agents=agents, executor=executor, max_concurrency=max_concurrency,
        concurrency=concurrency, retries=retries, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
        on_run_finished=on_run_finished, suite=suite, skip=skip, shard_index=shard_index, shard_count=shard_count,
        processes=processes, backend=backend,
    )
    if store is not None:
        from scenario.batch.stored import StoredBatch

        return await StoredBatch.open(store, config, resume=resume).execute()
    return await execute_batch(config)


async def execute_batch(config: BatchConfig) -> BatchResult:
    """Run a prepared batch through the one dispatch loop, on the backend it asks for."""
    from scenario.batch.backends import resolve_backend
    from scenario.batch.dispatch import Dispatcher

    processes_used = config.processes if len(config.units) > 1 else 1
    return await Dispatcher(config, resolve_backend(config.backend, processes_used)).execute()


# ---------------------------------------------------------------------------------------------
# Validation


def prepare_batch(
    scenarios: Sequence[Scenario],
    runs: int = 1,
    *,
    variants: Any = None,
    agents: Any = None,
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
    backend: Any = "local",
) -> BatchConfig:
    """Check every argument and every scenario x variant's agents; plan the runs."""
    if isinstance(scenarios, Scenario):
        raise ScenarioConfigError("run_batch(scenarios=...): pass a list of scenario.Scenario, e.g. run_batch([spec]).")
    if not isinstance(scenarios, (list, tuple)):
        raise ScenarioConfigError(
            f"run_batch(scenarios=...): expected a list of scenario.Scenario specs, got {type(scenarios).__name__}."
        )
    if not scenarios:
        raise ScenarioConfigError("run_batch(scenarios=[]): the list is empty; pass at least one scenario.Scenario(...).")
    names: set[str] = set()
    for position, spec in enumerate(scenarios):
        if not isinstance(spec, Scenario):
            raise ScenarioConfigError(
                f"run_batch: scenarios[{position}] is a {type(spec).__name__}, not a scenario.Scenario. Wrap the run() "
                "arguments: scenario.Scenario(name=..., description=..., agents=[...])."
            )
        if spec.name in names:
            raise ScenarioConfigError(
                f"run_batch: two scenarios are named {spec.name!r}; names identify runs in results and stores, so "
                "they must be unique."
            )
        names.add(spec.name)
    check_runs(runs, "run_batch(runs=...)")
    if executor not in EXECUTORS:
        raise ScenarioConfigError(
            f"run_batch(executor={executor!r}): unknown executor; use 'thread' (each run on a worker thread, like "
            "scenario.run) or 'loop' (each run on this event loop, like scenario.arun)."
        )
    if on_error not in ON_ERROR:
        raise ScenarioConfigError(
            f"run_batch(on_error={on_error!r}): use 'continue' (record errors and go on) or 'fail_fast' (stop at the "
            "first error)."
        )
    strategy = _strategy(max_concurrency, concurrency)
    policy = _retry_policy(retries)
    if timeout is not None:
        timeout = check_timeout(timeout, "run_batch(timeout=...)")
    if min_pass_rate is not None:
        min_pass_rate = check_rate(min_pass_rate, "run_batch(min_pass_rate=...)")
    if on_run_finished is not None and not callable(on_run_finished):
        raise ScenarioConfigError(
            f"run_batch(on_run_finished=...): expected a function taking a RunRecord, got {type(on_run_finished).__name__}."
        )
    if not isinstance(suite, str):
        raise ScenarioConfigError(f"run_batch(suite=...): expected a string, got {type(suite).__name__}.")
    shard_index, shard_count = _shard(shard_index, shard_count)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ScenarioConfigError(f"run_batch(processes={processes!r}): must be an integer >= 1.")
    backend, infra_retries = _backend(backend, processes)
    if variants is not None and agents is not None:
        raise ScenarioConfigError("run_batch: give variants= or agents= (the same option), not both.")
    named = normalize_variants(variants if variants is not None else agents, "variants" if variants is not None else "agents")

    recipes: dict[tuple[str, str], AgentRecipe] = {}
    for spec in scenarios:
        wanted = list(named) if spec.variants is None else spec.variants
        unknown = [v for v in wanted if v not in named]
        if unknown:
            raise ScenarioConfigError(
                f"scenario {spec.name!r}: variants {unknown} are not in the batch; it has {list(named)}."
            )
        for variant in wanted:
            recipe = AgentRecipe(spec, named[variant], variant)
            probe = recipe.probe(min_pass_rate=min_pass_rate, timeout=timeout)
            try:
                build_spec(**spec.run_kwargs(probe, timeout=timeout))
            except ScenarioConfigError as exc:
                suffix = f" (variant {variant!r})" if variant in named and len(named) > 1 else ""
                raise ScenarioConfigError(f"{exc}{suffix}") from None
            recipes[(spec.name, variant)] = recipe

    units = plan_units(scenarios, recipes, list(named), runs, suite)
    if shard_count is not None:
        from scenario.batch.plan import select_shard

        units = select_shard(units, shard_index or 0, shard_count)
    skipped = 0
    skip_ids = set(skip or ())
    if skip_ids:
        before = len(units)
        units = [u for u in units if u.id not in skip_ids]
        skipped = before - len(units)
    return BatchConfig(
        scenarios=list(scenarios), variants=named, runs=runs, executor=executor, strategy=strategy,
        retry_policy=policy, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
        on_run_finished=on_run_finished, suite=suite, skip=skip_ids, shard_index=shard_index,
        shard_count=shard_count, processes=processes, backend=backend, infra_retries=infra_retries,
        units=units, skipped=skipped,
    )


def _backend(backend: Any, processes: int) -> tuple[Any, int]:
    if isinstance(backend, Backend):
        return backend, getattr(backend, "infra_retries", DEFAULT_INFRA_RETRIES)
    if backend == "ray":
        backend = Ray()
    if isinstance(backend, Ray):
        if processes > 1:
            raise ScenarioConfigError(
                f"run_batch(backend=..., processes={processes}): processes= forks workers on this machine; with the "
                "Ray backend give the worker count as scenario.distributed.Ray(workers=N) instead."
            )
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ScenarioConfigError(
                "run_batch(backend='ray'): Ray is not installed in this environment. Install the extra: "
                "pip install 'scenario[ray]'."
            )
        return backend, backend.infra_retries
    if backend == "local":
        return "local", DEFAULT_INFRA_RETRIES
    raise ScenarioConfigError(
        f"run_batch(backend={backend!r}): unknown backend; use 'local' (this machine; processes=N to fork "
        "workers), 'ray' (a Ray cluster) or scenario.distributed.Ray(address=..., workers=...)."
    )


def _strategy(max_concurrency: Any, concurrency: Any) -> ConcurrencyStrategy:
    if max_concurrency is not None and concurrency is not None:
        raise ScenarioConfigError(
            "run_batch: give max_concurrency=N or concurrency=<strategy>, not both "
            "(max_concurrency=N is concurrency=scenario.SlidingWindow(N))."
        )
    if concurrency is not None:
        if not isinstance(concurrency, ConcurrencyStrategy):
            raise ScenarioConfigError(
                f"run_batch(concurrency=...): expected a strategy such as scenario.SlidingWindow(10) or "
                f"scenario.Adaptive(), got {type(concurrency).__name__}. For a number, use max_concurrency=."
            )
        return concurrency
    if max_concurrency is None:
        return SlidingWindow(DEFAULT_MAX_CONCURRENCY)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ScenarioConfigError(
            f"run_batch(max_concurrency={max_concurrency!r}): must be an integer >= 1 (runs in flight at once)."
        )
    return SlidingWindow(max_concurrency)


def _retry_policy(retries: Any) -> Any:
    from scenario.llm.retry import RetryPolicy
    from scenario.settings import settings

    if isinstance(retries, RetryPolicy):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ScenarioConfigError(
            f"run_batch(retries={retries!r}): must be an integer >= 0 (extra attempts of a run that ended on a "
            "transient error) or a scenario.RetryPolicy."
        )
    # The backoff shape of the configured model-call policy, with this many attempts.
    base = settings().retry or RetryPolicy()
    return dataclasses.replace(base, max_attempts=retries + 1)


def _shard(index: Any, count: Any) -> tuple[int | None, int | None]:
    if index is None and count is None:
        return None, None
    if count is None or index is None:
        raise ScenarioConfigError("run_batch: give shard_index and shard_count together (e.g. shard_index=0, shard_count=4).")
    for name, value in (("shard_count", count), ("shard_index", index)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioConfigError(f"run_batch({name}={value!r}): must be an integer.")
    if count < 1 or not (0 <= index < count):
        raise ScenarioConfigError(
            f"run_batch(shard_index={index}, shard_count={count}): need shard_count >= 1 and 0 <= shard_index < shard_count."
        )
    return index, count
