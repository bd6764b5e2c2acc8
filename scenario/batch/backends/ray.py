"""``backend="ray"``: a batch's runs on Ray actors, one async actor per worker core.

Why actors and not tasks: an async actor keeps one event loop, one litellm import and one model
loop for its whole life, so a run costs a method call, not a process start and a 2-second import.
The unit of dispatch is one run; the dispatch loop sends each to the least-loaded actor when a
slot frees, so a slow run never holds back a queue behind it.

Exactly once: actor methods are never retried by Ray (``max_task_retries=0``, ``max_restarts=0``
for workers): replaying a call after a worker death is what duplicates and loses items. A call
that fails because its actor died reports its run as lost; the dispatch loop re-sends it to
another actor, up to ``infra_retries`` times.

Quotas: one coordinator actor, pinned to the driver's node and restarted by Ray if it dies,
holds the batch's rate limiters; each worker reserves permits from it (one round trip per model
call) through the public seam in ``scenario.concurrency.rate_limits``. A restarted coordinator starts with
empty buckets; a worker that cannot reach it keeps to an even share, with a warning.

Lifetime: the batch joins ``address`` / ``RAY_ADDRESS`` / a cluster already running here, else
starts a local one; at the end it kills its actors and shuts down only a cluster it started. If the
driver dies, Ray's fate sharing ends its actors (measured: ~1.5 s).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import warnings
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario.batch.backends.base import Backend, Feedback, Finished, Lost, WorkerFailed, WorkerLoads
from scenario.batch.worker import WorkerSession, dump_record, load_record, parent_from_traceparent, traceparent_of
from scenario.concurrency.rate_limits import (
    PermitSource,
    RateLimits,
    coordinate_rate_limits,
    get_rate_limits,
    set_rate_limits,
)
from scenario.errors import ScenarioConfigError
from scenario.llm.client import litellm_module
from scenario.settings import configure, settings

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit
    from scenario.distributed import Ray

#: Environment variables a worker needs to behave like the driver (offline price list, tracing).
FORWARDED_ENV_PREFIXES = ("LITELLM_", "OTEL_", "SCENARIO_")

#: Seconds to wait for the actors to start (a fresh node imports litellm: several seconds).
READY_TIMEOUT = 180.0
#: Seconds a cancel or kill call may take before the batch moves on.
CONTROL_TIMEOUT = 10.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ScenarioConfigError(
            "run_batch(backend='ray'): Ray is not installed. Install the extra: pip install 'scenario[ray]' "
            f"(or pip install ray). ({exc})"
        ) from None
    return ray


class RayBackend(Backend):
    name = "ray"

    def __init__(self, options: Ray) -> None:
        super().__init__()
        self.options = options
        self.infra_retries = options.infra_retries
        self._ray: Any = None
        self._started_cluster = False
        self._actors: list[Any] = []
        self._loads = WorkerLoads()
        self._coordinator: Any = None
        self._positions: dict[str, int] = {}
        self._calls: set[asyncio.Task[Any]] = set()
        self._carrier: dict[str, str] = {}
        self._address: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, config: BatchConfig, parent_span: Any) -> None:
        self._ray = import_ray()
        self._positions = {u.id: i for i, u in enumerate(config.units)}
        self._carrier = traceparent_of(parent_span)
        connecting = asyncio.ensure_future(asyncio.to_thread(self._connect))
        try:
            await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # ray.init cannot be interrupted: let it finish, so close() shuts down what it started.
            await asyncio.wait({connecting}, timeout=READY_TIMEOUT)
            await self.close()
            raise
        try:
            await self._start_actors(config)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        ray = self._ray
        options = self.options
        if ray.is_initialized():
            return  # the caller's own connection: theirs to shut down
        kwargs: dict[str, Any] = {"runtime_env": _runtime_env(options), "log_to_driver": True,
                                  "logging_level": "warning", "configure_logging": True}
        kwargs.update(options.init_kwargs or {})
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        self._address = address
        # ray.init joins ``address`` (or RAY_ADDRESS, or a cluster started with `ray start` on this
        # machine) and otherwise starts a local cluster; either way this driver's ray.shutdown()
        # stops only processes it started. Called off the loop's thread (it takes seconds), where
        # Ray cannot install its SIGTERM handler and says so: the batch handles signals itself.
        quiet = _DropMessage("SIGTERM handler is not set")
        ray_logger = logging.getLogger("ray._private.worker")
        ray_logger.addFilter(quiet)
        try:
            ray.init(address=address, **kwargs)
        finally:
            ray_logger.removeFilter(quiet)
        self._started_cluster = True

    async def _start_actors(self, config: BatchConfig) -> None:
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options = self.options
        limits = get_rate_limits().limits()
        if options.workers is not None:
            workers = options.workers
        else:
            cpus = ray.cluster_resources().get("CPU", 1.0)
            workers = max(1, int(cpus // options.num_cpus))
        workers = max(1, min(workers, len(config.units)))
        payload = ray.put(_shippable(config))
        here = ray.get_runtime_context().get_node_id()
        if limits:
            coordinator_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(RateCoordinator)
            self._coordinator = coordinator_cls.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
            ).remote(limits)
        worker_cls = ray.remote(num_cpus=options.num_cpus, max_restarts=0, max_task_retries=0,
                                max_concurrency=10_000)(ScenarioWorker)
        # The runtime environment is the job's when the batch connected (ray.init uploads a local
        # working_dir). When the caller had connected already, it can only go on the actors, where
        # Ray accepts no local paths: say so rather than fail deep inside Ray.
        actor_env = _runtime_env(options) if not self._started_cluster else None
        snapshot = _settings_snapshot(settings())
        try:
            configured = worker_cls.options(runtime_env=actor_env) if actor_env else worker_cls
        except ValueError as exc:
            raise ScenarioConfigError(
                f"scenario.distributed.Ray(runtime_env=...): {exc} This process connected to Ray before the batch "
                "(ray.init was already called), so the batch cannot upload local files: pass runtime_env to your own "
                "ray.init(...), or let the batch connect (RAY_ADDRESS or Ray(address=...))."
            ) from None
        self._actors = [
            configured.remote(payload, snapshot, limits, self._coordinator, workers, i) for i in range(workers)
        ]
        self._loads = WorkerLoads(workers)
        ready = [actor.ready.remote() for actor in self._actors]
        try:
            await asyncio.wait_for(asyncio.gather(*ready), READY_TIMEOUT)
        except asyncio.TimeoutError:
            raise ScenarioConfigError(
                f"Ray backend: {workers} worker actor(s) were not ready within {READY_TIMEOUT:.0f}s; check that the "
                "cluster has free CPUs (scenario.distributed.Ray(workers=N) to ask for fewer) and that the package "
                "imports on its nodes (runtime_env)."
            ) from None
        except ray.exceptions.RayError as exc:
            raise ScenarioConfigError(
                f"Ray backend: the worker actors failed to start: {_cause_line(exc)}. The batch (its agents, "
                "factories and scenarios) is sent to the workers by pickling: classes and functions must import "
                "there under the same module names. Ship your code with scenario.distributed.Ray(runtime_env="
                "{'working_dir': '.'}) (the CLI does this with the suite's folder) or install it on the nodes."
            ) from exc

    def submit(self, unit: RunUnit) -> None:
        which = self._loads.assign(unit.id)
        if which is None:
            self.post(Lost([unit.id], "none", "no Ray worker actor is left"))
            return
        ref = self._actors[which].run.remote(self._positions[unit.id], self._carrier)
        assert self._loop is not None
        task = self._loop.create_task(self._await(which, unit, ref))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _await(self, which: int, unit: RunUnit, ref: Any) -> None:
        ray = self._ray
        try:
            payload, feedback = await ref
        except asyncio.CancelledError:
            raise
        except _worker_gone(ray) as exc:
            self._loads.stop_taking(which)
            self._loads.release(which, unit.id)
            self.post(Lost([unit.id], f"ray actor {which}", f"{type(exc).__name__}: {_first_line(exc)}"))
            return
        except Exception as exc:  # our worker code raised: a bug, keep its traceback
            self._loads.release(which, unit.id)
            self.post(WorkerFailed(exc))
            self.post(Lost([unit.id], f"ray actor {which}", f"{type(exc).__name__}"))
            return
        self._loads.release(which, unit.id)
        for kind, retry_after, message in feedback:
            self.post(Feedback(kind, retry_after, message))
        self.post(Finished(load_record(payload), f"ray actor {which}"))

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        for which, mine in self._loads.holding(run_ids):
            self._actors[which].cancel.remote(mine, reason)

    async def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
        await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        ray = self._ray
        for actor in self._actors + ([self._coordinator] if self._coordinator is not None else []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors = []
        self._coordinator = None
        if self._started_cluster:
            self._started_cluster = False
            ray.shutdown()

    def metadata(self) -> dict[str, Any]:
        return {"ray": {"workers": len(self._loads), "workers_alive": self._loads.taking_count,
                        "address": self._address}}


def _runtime_env(options: Ray) -> dict[str, Any] | None:
    """The actors' runtime environment: the caller's, plus the driver's LITELLM_/OTEL_/SCENARIO_
    variables (the caller's own env_vars win)."""
    runtime_env: dict[str, Any] = dict(options.runtime_env or {})
    forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    if forwarded:
        runtime_env["env_vars"] = {**forwarded, **runtime_env.get("env_vars", {})}
    return runtime_env or None


def _worker_gone(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's exceptions meaning "the worker (or its node) is gone", those this Ray version has."""
    names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError")
    return tuple(getattr(ray.exceptions, name) for name in names if hasattr(ray.exceptions, name))


class _DropMessage:
    """A logging filter dropping records that contain one text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def filter(self, record: Any) -> bool:
        return self.text not in record.getMessage()


def _cause_line(exc: BaseException) -> str:
    """The most telling line of a Ray error: its last 'SomeError: message' line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _shippable(config: BatchConfig) -> BatchConfig:
    """The batch as a worker needs it: no strategy (locks; the driver owns it), no hook (the
    driver delivers), no backend."""
    return dataclasses.replace(config, strategy=None, on_run_finished=None, backend="local")  # type: ignore[arg-type]


def _settings_snapshot(current: Any) -> dict[str, Any]:
    return {
        "default_model": current.default_model, "max_turns": current.max_turns, "cache_key": current.cache_key,
        "cache_dir": current.cache_dir, "retry": current.retry, "tracing": current.tracing,
        "trace_content": current.trace_content,
    }


# ---------------------------------------------------------------------------------------------
# The actors (classes made remote by the backend, so importing this module needs no Ray)


class RateCoordinator:
    """Holds the batch's rate limiters; workers reserve permits here."""

    def __init__(self, limits: dict[str, Any]) -> None:
        # Ray re-runs __init__ when it restarts a dead coordinator: that one starts drained, so
        # the restart is not a second burst of a minute's quota.
        import ray

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray's own internals on this property
            restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)
        self._limits = RateLimits()
        self._limits.set(limits, drained=restarted)
        self.restarted = restarted

    def reserve(self, key: str, tokens: int) -> float:
        limiter = self._limits.limiter(key)
        return limiter.reserve(tokens) if limiter is not None else 0.0

    def refund(self, key: str, tokens: int) -> None:
        limiter = self._limits.limiter(key)
        if limiter is not None:
            limiter.refund(tokens)

    def record_usage(self, key: str, actual: int, estimated: int) -> None:
        limiter = self._limits.limiter(key)
        if limiter is not None:
            limiter.record_usage(actual, estimated)

    def was_restarted(self) -> bool:
        return self.restarted


class _RayPermits(PermitSource):
    """A worker's permit source: the coordinator actor."""

    def __init__(self, coordinator: Any) -> None:
        self._coordinator = coordinator

    async def reserve(self, key: str, tokens: int) -> float:
        return float(await self._coordinator.reserve.remote(key, tokens))

    def refund(self, key: str, tokens: int) -> None:
        self._coordinator.refund.remote(key, tokens)

    def record_usage(self, key: str, actual_tokens: int, estimated_tokens: int) -> None:
        self._coordinator.record_usage.remote(key, actual_tokens, estimated_tokens)


class ScenarioWorker:
    """One async actor: runs the runs it is sent on its loop, returns their records."""

    def __init__(self, config: BatchConfig, snapshot: dict[str, Any], limits: dict[str, Any],
                 coordinator: Any, parts: int, which: int) -> None:
        self.config = config
        self.which = which
        configure(**{k: v for k, v in snapshot.items() if v is not None})
        if limits:
            set_rate_limits(limits)
            if coordinator is not None:
                coordinate_rate_limits(_RayPermits(coordinator), parts)
        self._feedback: list[tuple[str, float | None, str]] = []
        self._session: Any = None

    async def ready(self) -> int:
        # Import the model stack now, so the first run does not pay for it inside its timeout.
        await asyncio.to_thread(litellm_module)
        return os.getpid()

    def _sessions(self) -> Any:
        if self._session is None:
            def send(message: Any) -> None:
                if message[0] == "feedback":
                    self._feedback.append((message[1], message[2], message[3]))

            self._session = WorkerSession(self.config, send)
        return self._session

    async def run(self, position: int, carrier: dict[str, str]) -> tuple[str, list[Any]]:
        session = self._sessions()
        unit = self.config.units[position]
        record = await session.run(unit, parent_from_traceparent(carrier))
        feedback, self._feedback = self._feedback, []
        return dump_record(record), feedback

    def cancel(self, run_ids: list[str], reason: str) -> None:
        self._sessions().cancel(run_ids, reason)
