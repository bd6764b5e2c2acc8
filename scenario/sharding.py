"""Spreading a batch past one core: shards, and ``run_batch(..., processes=N)``.

One process tops out at a few hundred model calls per second: litellm costs ~4 ms of CPU per
call and everything in the process shares one GIL. Two ways past that:

* **Shards** (``shard_index``/``shard_count``): every process computes the same plan and keeps
  the runs whose plan position ``% shard_count == shard_index``. The CLI and pytest-xdist start
  the processes themselves; run ids are the same in every shard, so one result store collects
  them all.
* **processes=N**: ``run_batch`` forks N workers, deals the runs to them round-robin, and
  streams every finished record back over a pipe the moment it ends, so ``on_run_finished``
  still sees each run before it is counted and an interrupted batch loses nothing. fork (not
  spawn) because agents are usually lambdas and closures, which cannot be pickled; the price is
  POSIX only. Each worker gets its share of the concurrency limit and of every rate limit, so the
  whole batch keeps the limits it was given. A record's original exception object stays in the
  worker (its type and message travel).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, TypeVar

from .errors import ScenarioConfigError
from .records import BatchResult, RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from .batch.runner import BatchConfig
    from .concurrency import ConcurrencyStrategy

T = TypeVar("T")

#: Seconds to wait for a worker to report after it was asked to stop, before killing it.
STOP_GRACE = 30.0


def select_shard(units: Sequence[T], shard_index: int, shard_count: int) -> List[T]:
    """The runs of one shard: plan positions ``p`` with ``p % shard_count == shard_index``.

    Dealing round-robin over the repetition-major plan spreads every scenario over every shard.
    """
    if shard_count < 1 or not (0 <= shard_index < shard_count):
        raise ScenarioConfigError(
            f"shard_index={shard_index}, shard_count={shard_count}: need shard_count >= 1 and "
            "0 <= shard_index < shard_count."
        )
    return [u for u in units if getattr(u, "position") % shard_count == shard_index]


def share(total: int, parts: int, which: int) -> int:
    """``which``-th of ``parts`` near-equal integer shares of ``total``, at least 1."""
    return max(1, total // parts + (1 if which < total % parts else 0))


def scale_strategy(strategy: "ConcurrencyStrategy", parts: int, which: int) -> None:
    """Give this worker process its share of a concurrency limit (in place: the worker owns a
    forked copy). Strategies other than the built-in two keep their full limit per process."""
    from .concurrency import Adaptive, SlidingWindow

    if isinstance(strategy, Adaptive):
        # Bounds first, so the resize below is clamped to this worker's share.
        strategy._min = share(strategy.min, parts, which)  # noqa: SLF001 - our forked copy
        strategy._max = max(strategy._min, share(strategy.max, parts, which))  # noqa: SLF001
        strategy.resize(share(strategy.limit, parts, which))
    elif isinstance(strategy, SlidingWindow):
        strategy.resize(share(strategy.limit, parts, which))


def scale_rate_limits(parts: int) -> None:
    """Divide every configured rate limit among ``parts`` processes (run in a worker)."""
    from .rate_limits import RateLimit, get_rate_limits, set_rate_limits

    registry = get_rate_limits()
    scaled: Dict[str, RateLimit] = {}
    for key in registry.keys():
        limiter = registry.get(key)
        if limiter is None:
            continue
        limit = limiter.limit
        scaled[key] = RateLimit(
            requests_per_minute=limit.requests_per_minute / parts if limit.requests_per_minute else None,
            tokens_per_minute=limit.tokens_per_minute / parts if limit.tokens_per_minute else None,
        )
    if scaled:
        set_rate_limits(scaled)


#: Objects a forked worker inherited from the parent and must never finalize (see below).
_INHERITED: List[Any] = []


def _reset_after_fork() -> None:
    """A forked worker has only the forking thread: forget the parent's threads and loops
    without touching them.

    The worker shares the parent's epoll instances (fork duplicates the descriptors, not the
    kernel objects behind them). Closing one of the parent's loops or HTTP connections here
    would unregister its sockets from that shared epoll, and the *parent* would stop hearing
    about them. So every inherited loop and client is kept alive, unused, until the worker exits
    with ``os._exit`` (which closes nothing but descriptors), and the cyclic GC is told to leave
    everything that existed at fork time alone.
    """
    import gc

    gc.freeze()
    # The parent's loop may have set a wakeup fd (shared with the parent after fork) and signal
    # handlers that poke the parent's loop objects: neither may fire here.
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        pass
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    _die_with_parent()
    from . import models, worker_pool

    old = models.model_loop
    _INHERITED.append(old)
    old_loop = old._loop  # noqa: SLF001 - the parent's, dead here
    if old_loop is not None:
        # Tasks of the parent's model loop (litellm's logging worker) can never run here; when
        # litellm drops them they would each log "Task was destroyed but it is pending!".
        for task in asyncio.all_tasks(old_loop):
            task._log_destroy_pending = False  # noqa: SLF001
    models.model_loop = models.ModelLoop()
    if models._litellm is not None:  # noqa: SLF001
        # Clients bound to the parent's model loop: moved out of litellm's cache so it neither
        # hands them out nor closes them on eviction.
        cache = getattr(models._litellm, "in_memory_llm_clients_cache", None)  # noqa: SLF001
        for name in ("cache_dict", "ttl_dict"):
            store = getattr(cache, name, None)
            if isinstance(store, dict):
                _INHERITED.append(dict(store))
                store.clear()
    _INHERITED.append(worker_pool._pool)  # noqa: SLF001 - its threads do not exist here
    worker_pool._pool = None  # noqa: SLF001


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _block_stop_signals() -> set:
    """Block SIGINT/SIGTERM in this thread; return the previous mask (empty where unsupported)."""
    if not hasattr(signal, "pthread_sigmask"):
        return set()
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS))


def _restore_signal_mask(previous: set) -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _die_with_parent() -> None:
    """Linux: have the kernel send this worker SIGTERM if the batch process dies (killed, not
    just interrupted), so no worker goes on spending model calls for nobody."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort
        pass


def _child_main(config: "BatchConfig", units: list, which: int, parts: int, conn: Any) -> None:
    """Body of one worker process: run its runs, stream records back, report, exit."""
    from .batch.runner import BatchRunner

    _reset_after_fork()
    lock = threading.Lock()

    def send(message: Tuple[str, Any]) -> None:
        with lock:
            conn.send(message)

    def deliver(record: RunRecord) -> None:
        send(("record", _dump(record)))

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        scale_strategy(config.strategy, parts, which)
        scale_rate_limits(parts)
        sub = dataclasses.replace(config, units=units, processes=1, on_run_finished=deliver)
        task = loop.create_task(BatchRunner(sub).execute())
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        _restore_signal_mask(set())
        result = loop.run_until_complete(task)
        cancelled = [_dump(r) for r in result.runs if r.status == "cancelled"]
        send(("done", {"cancelled": cancelled, "reason": result.reason,
                       "concurrency": result.metadata.get("concurrency")}))
    except BaseException:  # report anything, so the parent can say what happened
        try:
            send(("error", traceback.format_exc()))
        except Exception:  # pragma: no cover - the pipe is gone
            pass
    finally:
        # No model_loop.close(): it would close litellm's clients, and the worker exits with
        # os._exit right after this anyway (multiprocessing's fork start method does).
        conn.close()


def _dump(record: RunRecord) -> str:
    try:
        return record.model_dump_json(fallback=str)
    except Exception:  # pragma: no cover - exotic message content
        import json

        return json.dumps(record.model_dump(mode="python"), default=str)


async def run_in_processes(config: "BatchConfig") -> BatchResult:
    """Run a prepared batch over ``config.processes`` forked worker processes."""
    import inspect
    import multiprocessing
    import time

    if "fork" not in multiprocessing.get_all_start_methods():
        raise ScenarioConfigError(
            "run_batch(processes=...) needs the fork start method (Linux, macOS); on this platform use "
            "shard_index/shard_count in separate processes instead."
        )
    from .models import litellm_module

    # Imported once here, so workers share it copy-on-write instead of importing it N times
    # (in a thread: it takes seconds, and the caller's loop should keep running meanwhile).
    try:
        await asyncio.to_thread(litellm_module)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if getattr(task, "uncancel", None) is not None:
            task.uncancel()  # type: ignore[union-attr]
        return BatchResult.from_records(
            [], planned=len(config.units), cancelled=True, reason="interrupted: the batch was cancelled",
            metadata={"executor": config.executor, "processes": 0, "workers": []},
        )
    ctx = multiprocessing.get_context("fork")
    parts = min(config.processes, len(config.units))
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    inbox: "asyncio.Queue[Tuple[int, str, Any]]" = asyncio.Queue()
    positions = {u.id: u.position for u in config.units}

    children: List[Any] = []
    readers: List[threading.Thread] = []
    for which in range(parts):
        receiver, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child_main, args=(config, config.units[which::parts], which, parts, sender),
            name=f"scenario-batch-{which}", daemon=True,
        )
        # The worker starts with SIGINT/SIGTERM blocked (the mask is inherited) and unblocks them
        # once its own handlers are in place: a Ctrl-C landing in between is held, not lost to the
        # parent's inherited handler and not fatal.
        blocked = _block_stop_signals()
        try:
            process.start()
        finally:
            _restore_signal_mask(blocked)
        sender.close()
        children.append(process)
        reader = threading.Thread(target=_read, args=(receiver, which, loop, inbox), daemon=True,
                                  name=f"scenario-batch-reader-{which}")
        reader.start()
        readers.append(reader)

    records: List[RunRecord] = []
    reports: Dict[int, Dict[str, Any]] = {}
    open_children = set(range(parts))
    fatal: Optional[BaseException] = None
    reason: Optional[str] = None
    interrupted = False
    stop_sent = False

    def stop_children(why: str) -> None:
        nonlocal stop_sent, reason
        if reason is None:
            reason = why
        if stop_sent:
            return
        stop_sent = True
        for process in children:
            if process.is_alive() and process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    async def handle(which: int, kind: str, payload: Any) -> None:
        nonlocal fatal
        if kind == "record":
            record = RunRecord.model_validate_json(payload)
            hook = config.on_run_finished
            if hook is not None and fatal is None:
                try:
                    value = hook(record)
                    if inspect.isawaitable(value):
                        await value
                except Exception as exc:
                    fatal = exc
                    stop_children(f"on_run_finished raised {type(exc).__name__}")
                    return
            records.append(record)
            if config.on_error == "fail_fast" and record.status in ("error", "timeout"):
                stop_children(
                    f"fail_fast: {record.scenario!r} [{record.variant}] run {record.index} ended with "
                    f"{record.status} ({record.error_type})"
                )
        elif kind == "done":
            reports[which] = {k: v for k, v in payload.items() if k != "cancelled"}
            records.extend(RunRecord.model_validate_json(item) for item in payload.get("cancelled", []))
            open_children.discard(which)
        elif kind == "error":
            reports[which] = {"error": payload}
            open_children.discard(which)
            if fatal is None:
                fatal = RuntimeError(f"batch worker process {which} failed:\n{payload}")
            stop_children(f"worker process {which} failed")
        elif kind == "eof":
            if which in open_children:
                open_children.discard(which)
                code = children[which].exitcode
                reports[which] = {"error": f"exited without reporting (exit code {code})"}
                stop_children(f"worker process {which} exited unexpectedly (exit code {code})")

    try:
        while open_children:
            which, kind, payload = await inbox.get()
            await handle(which, kind, payload)
    except asyncio.CancelledError:
        interrupted = True
        stop_children("interrupted: the batch was cancelled")
        task = asyncio.current_task()
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        deadline = loop.time() + STOP_GRACE
        while open_children and loop.time() < deadline:
            try:
                which, kind, payload = await asyncio.wait_for(inbox.get(), max(0.01, deadline - loop.time()))
            except asyncio.TimeoutError:
                break
            await handle(which, kind, payload)
    finally:
        for process in children:
            process.join(timeout=0 if interrupted else STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for reader in readers:
            reader.join(timeout=1)

    records.sort(key=lambda r: positions.get(r.id, 0))
    cancelled_runs = sum(1 for r in records if r.status == "cancelled")
    not_started = len(config.units) - len(records)
    result = BatchResult.from_records(
        records,
        min_pass_rate=config.min_pass_rate,
        scenario_min_pass_rates={s.name: s.min_pass_rate for s in config.scenarios},
        duration=time.perf_counter() - started,
        planned=len(config.units),
        cancelled=stop_sent and (cancelled_runs > 0 or not_started > 0 or interrupted),
        reason=reason,
        metadata={
            "executor": config.executor,
            "processes": parts,
            "workers": [reports.get(i, {}) for i in range(parts)],
            "retries": config.max_attempts - 1,
            "timeout": config.timeout,
            "on_error": config.on_error,
            "skipped": config.skipped,
            "variants": list(config.variants),
            **({"shard": {"index": config.shard_index, "count": config.shard_count}}
               if config.shard_count is not None else {}),
        },
    )
    if fatal is not None:
        raise fatal
    return result


def _read(receiver: Any, which: int, loop: asyncio.AbstractEventLoop, inbox: "asyncio.Queue[Any]") -> None:
    """Forward one worker's messages to the batch loop until its pipe closes."""
    try:
        while True:
            try:
                kind, payload = receiver.recv()
            except (EOFError, OSError):
                break
            loop.call_soon_threadsafe(inbox.put_nowait, (which, kind, payload))
    finally:
        receiver.close()
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, (which, "eof", None))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass
