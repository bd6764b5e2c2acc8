"""``run_batch``'s arguments, validated once: :class:`BatchOptions`.

Policy: the batch's keywords are checked in one place, :meth:`BatchOptions.check`, before anything
runs or is planned, and every bad one raises :class:`scenario.ScenarioConfigError` saying which
argument, what was wrong and what to give (the rules shared with ``run`` and ``Scenario`` come from
:mod:`scenario.checks`). What comes out holds resolved values, not what the caller typed:
``max_concurrency``/``concurrency`` became one strategy, ``retries`` a retry policy, ``variants``/
``agents`` one ``{name: source}`` map, ``backend`` a backend the dispatch loop can drive. The
planned batch (``batch.runner.BatchConfig``) extends these options with its runs, so every later
stage reads the same, already checked, values.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from scenario.batch.backends import Backend
from scenario.batch.spec import Scenario, normalize_variants
from scenario.checks import check_choice, check_positive_int, check_rate, check_runs, check_timeout, is_whole_number
from scenario.concurrency.strategies import ConcurrencyStrategy, SlidingWindow
from scenario.distributed import DEFAULT_INFRA_RETRIES, Ray
from scenario.errors import ScenarioConfigError
from scenario.llm.retry import RetryPolicy
from scenario.records import RunRecord
from scenario.settings import settings

__all__ = ["BACKENDS", "DEFAULT_MAX_CONCURRENCY", "EXECUTORS", "ON_ERROR", "BatchOptions", "RunFinishedHook"]

#: Runs in flight when neither ``max_concurrency`` nor ``concurrency`` is given.
DEFAULT_MAX_CONCURRENCY = 20
EXECUTORS = ("thread", "loop")
ON_ERROR = ("continue", "fail_fast")
BACKENDS = ("local", "ray")

RunFinishedHook = Callable[[RunRecord], Any]


@dataclasses.dataclass
class BatchOptions:
    """``run_batch``'s arguments as checked, resolved values. Build with :meth:`check`."""

    scenarios: list[Scenario]
    variants: dict[str, Any]
    runs: int
    executor: str
    strategy: ConcurrencyStrategy
    retry_policy: RetryPolicy  # max_attempts = retries + 1
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

    @property
    def max_attempts(self) -> int:
        return self.retry_policy.max_attempts

    @classmethod
    def check(
        cls,
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
        backend: Any = "local",
    ) -> BatchOptions:
        """Check every argument of ``run_batch`` (see its docstring for what each means)."""
        _check_scenarios(scenarios)
        check_runs(runs, "run_batch(runs=...)")
        check_choice(executor, EXECUTORS, (
            f"run_batch(executor={executor!r}): unknown executor; use 'thread' (each run on a worker thread, like "
            "scenario.run) or 'loop' (each run on this event loop, like scenario.arun)."
        ))
        check_choice(on_error, ON_ERROR, (
            f"run_batch(on_error={on_error!r}): use 'continue' (record errors and go on) or 'fail_fast' (stop at the "
            "first error)."
        ))
        strategy = _strategy(max_concurrency, concurrency)
        policy = _retry_policy(retries)
        if timeout is not None:
            timeout = check_timeout(timeout, "run_batch(timeout=...)")
        if min_pass_rate is not None:
            min_pass_rate = check_rate(min_pass_rate, "run_batch(min_pass_rate=...)")
        if on_run_finished is not None and not callable(on_run_finished):
            raise ScenarioConfigError(
                "run_batch(on_run_finished=...): expected a function taking a RunRecord, got "
                f"{type(on_run_finished).__name__}."
            )
        if not isinstance(suite, str):
            raise ScenarioConfigError(f"run_batch(suite=...): expected a string, got {type(suite).__name__}.")
        shard_index, shard_count = _shard(shard_index, shard_count)
        check_positive_int(processes, f"run_batch(processes={processes!r})", "an integer >= 1")
        resolved_backend, infra_retries = _backend(backend, processes)
        if variants is not None and agents is not None:
            raise ScenarioConfigError("run_batch: give variants= or agents= (the same option), not both.")
        named = normalize_variants(variants if variants is not None else agents,
                                   "variants" if variants is not None else "agents")
        return cls(
            scenarios=list(scenarios), variants=named, runs=runs, executor=executor, strategy=strategy,
            retry_policy=policy, timeout=timeout, on_error=on_error, min_pass_rate=min_pass_rate,
            on_run_finished=on_run_finished, suite=suite, skip=set(skip or ()), shard_index=shard_index,
            shard_count=shard_count, processes=processes, backend=resolved_backend, infra_retries=infra_retries,
        )


def _check_scenarios(scenarios: Any) -> None:
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
    check_positive_int(max_concurrency, f"run_batch(max_concurrency={max_concurrency!r})",
                       "an integer >= 1 (runs in flight at once)")
    return SlidingWindow(max_concurrency)


def _retry_policy(retries: Any) -> RetryPolicy:
    if isinstance(retries, RetryPolicy):
        return retries
    if not is_whole_number(retries) or retries < 0:
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
        if not is_whole_number(value):
            raise ScenarioConfigError(f"run_batch({name}={value!r}): must be an integer.")
    if count < 1 or not (0 <= index < count):
        raise ScenarioConfigError(
            f"run_batch(shard_index={index}, shard_count={count}): need shard_count >= 1 and 0 <= shard_index < shard_count."
        )
    return index, count
