"""``run_batch(..., processes=N)``: runs on N forked worker processes of this machine.

The zero-dependency way past one core. fork (not spawn) because agents are usually lambdas and
closures, which cannot be pickled; the price is POSIX only. A worker inherits the prepared batch,
so the driver sends it only plan positions; it sends back records as JSON (the original
exception object stays in the worker; its type, message and where travel).

The parent is the coordinator of everything shared: the dispatch loop holds the one concurrency
strategy (runs go to the least-loaded worker when a slot frees), and the parent answers every
worker's rate-limit reservations from the one set of limiters, on the pipe's reader thread, so
an RPM limit holds for the batch, not per process.

Signals: a terminal's Ctrl-C and a CI runner's SIGTERM reach the whole process group. Workers
ignore SIGINT and defer SIGTERM: the parent decides, cancels the runs on every worker, collects
their cancelled records and exits 130/143 with the resume hint. A worker signalled on its own
stops after :data:`SELF_STOP_DELAY` unless the parent spoke first; the parent sees its runs lost
and sends them elsewhere. A worker whose parent died (killed) stops at once: its command pipe
closes, and on Linux the kernel also sends it SIGTERM (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from scenario.batch.backends.base import Backend, Feedback, Finished, Lost, WorkerFailed, WorkerLoads
from scenario.batch.worker import WorkerSession, load_record, parent_from_traceparent, traceparent_of
from scenario.concurrency.rate_limits import PermitSource, coordinate_rate_limits, get_rate_limits
from scenario.errors import ScenarioConfigError
from scenario.llm.client import litellm_module

if TYPE_CHECKING:  # pragma: no cover
    from scenario.batch.runner import BatchConfig
    from scenario.batch.spec import RunUnit

#: Seconds to wait for workers to exit once told to, before killing them.
EXIT_GRACE = 10.0
#: Seconds a worker that got SIGTERM waits for the parent's word before stopping on its own.
SELF_STOP_DELAY = 3.0

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Processes(Backend):
    name = "processes"

    def __init__(self, processes: int) -> None:
        super().__init__()
        self.processes = processes
        self._config: BatchConfig | None = None
        self._children: list[Any] = []
        self._conns: list[Any] = []
        self._locks: list[threading.Lock] = []
        self._readers: list[threading.Thread] = []
        self._loads = WorkerLoads()
        self._said_bye: list[bool] = []
        self._positions: dict[str, int] = {}
        self._reports: dict[int, dict[str, Any]] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, config: BatchConfig, parent_span: Any) -> None:
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ScenarioConfigError(
                "run_batch(processes=...) needs the fork start method (Linux, macOS); on this platform use "
                "shard_index/shard_count in separate processes, or the Ray backend."
            )
        self._config = config
        self._positions = {u.id: i for i, u in enumerate(config.units)}
        # Imported once here, so workers share it copy-on-write instead of importing it N times
        # (in a thread: it takes seconds, and the caller's loop should keep running meanwhile).
        await asyncio.to_thread(litellm_module)
        ctx = multiprocessing.get_context("fork")
        parts = min(self.processes, max(1, len(config.units)))
        carrier = traceparent_of(parent_span)
        limits = get_rate_limits()
        for which in range(parts):
            parent_end, child_end = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=_child_main, args=(config, which, parts, child_end, parent_end, carrier),
                name=f"scenario-batch-{which}", daemon=True,
            )
            # The worker starts with SIGINT/SIGTERM blocked (the mask is inherited) and unblocks
            # them once its own handlers are in place: a signal landing in between is held.
            blocked = _block_stop_signals()
            try:
                process.start()
            finally:
                _restore_signal_mask(blocked)
            child_end.close()
            self._children.append(process)
            self._conns.append(parent_end)
            self._locks.append(threading.Lock())
            self._loads.add_worker()
            self._said_bye.append(False)
            reader = threading.Thread(target=self._read, args=(which, limits), daemon=True,
                                      name=f"scenario-batch-reader-{which}")
            reader.start()
            self._readers.append(reader)

    def submit(self, unit: RunUnit) -> None:
        which = self._loads.assign(unit.id)
        if which is None:
            self.post(Lost([unit.id], "none", "no worker process is left"))
            return
        if not self._send(which, ("run", self._positions[unit.id])):
            self._loads.release(which, unit.id)
            self.post(Lost([unit.id], self._worker(which), "its pipe is closed"))

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        for which, mine in self._loads.holding(run_ids):
            self._send(which, ("cancel", mine, reason))

    async def close(self) -> None:
        for which in range(len(self._children)):
            if self._loads.taking(which):
                self._send(which, ("exit",))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._join)

    def _join(self) -> None:
        for process in self._children:
            process.join(timeout=EXIT_GRACE)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for reader in self._readers:
            reader.join(timeout=2)
        for conn in self._conns:
            conn.close()

    def metadata(self) -> dict[str, Any]:
        return {"processes": len(self._children),
                "workers": [self._reports.get(i, {}) for i in range(len(self._children))]}

    # -- plumbing -----------------------------------------------------------------------------
    @staticmethod
    def _worker(which: int) -> str:
        return f"process {which}"

    def _send(self, which: int, message: Any) -> bool:
        try:
            with self._locks[which]:
                self._conns[which].send(message)
            return True
        except (OSError, EOFError, ValueError):
            return False

    def _read(self, which: int, limits: Any) -> None:
        """One worker's messages: permits answered here at once, the rest posted to the driver."""
        conn = self._conns[which]
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "permit":
                _, request, key, tokens = message
                limiter = limits.limiter(key)
                wait = limiter.reserve(tokens) if limiter is not None else 0.0
                self._send(which, ("permit", request, wait))
            elif kind == "refund":
                limiter = limits.limiter(message[1])
                if limiter is not None:
                    limiter.refund(message[2])
            elif kind == "usage":
                limiter = limits.limiter(message[1])
                if limiter is not None:
                    limiter.record_usage(message[2], message[3])
            elif kind in ("record", "leaving"):
                self._post_threadsafe((kind, which, message[1]))
            elif kind == "feedback":
                self.post(Feedback(message[1], message[2], message[3]))
            elif kind == "bye":
                self._said_bye[which] = True
                self._reports[which] = message[1]
            elif kind == "error":
                self._reports[which] = {"error": message[1]}
        self._post_threadsafe(("eof", which, None))

    def _post_threadsafe(self, item: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_loop, item)
        except RuntimeError:  # the loop closed: nobody is listening any more
            pass

    def _on_loop(self, item: Any) -> None:
        """Runs on the driver's loop, so the load bookkeeping has one owner."""
        kind, which, payload = item
        if kind == "record":
            record = load_record(payload)
            self._loads.release(which, record.id)
            self.post(Finished(record, self._worker(which)))
        elif kind == "leaving":
            self._loads.stop_taking(which)
            self._reports[which] = {"error": payload}
        elif kind == "eof":
            lost = sorted(self._loads.retire(which), key=lambda i: self._positions.get(i, 0))
            if self._said_bye[which] and not lost:
                return
            code = self._children[which].exitcode
            report = self._reports.get(which, {})
            if "error" in report:
                self.post(WorkerFailed(RuntimeError(f"batch worker process {which} failed:\n{report['error']}")))
            reason = f"worker process {which} exited (exit code {code})" if code is not None else (
                f"worker process {which} closed its pipe")
            self._reports.setdefault(which, {"error": reason})
            if lost:
                self.post(Lost(lost, self._worker(which), reason))


# ---------------------------------------------------------------------------------------------
# In the worker


class _PipePermits(PermitSource):
    """The worker's :class:`scenario.concurrency.rate_limits.PermitSource`: the parent over the pipe."""

    def __init__(self, send: Any) -> None:
        self._send = send
        self._ids = itertools.count()
        self._pending: dict[int, concurrent.futures.Future[float]] = {}
        self._lock = threading.Lock()

    async def reserve(self, key: str, tokens: int) -> float:
        future: concurrent.futures.Future[float] = concurrent.futures.Future()
        with self._lock:
            request = next(self._ids)
            self._pending[request] = future
        try:
            self._send(("permit", request, key, tokens))
            return await asyncio.wrap_future(future)
        finally:
            with self._lock:
                self._pending.pop(request, None)

    def answer(self, request: int, wait: float) -> None:
        with self._lock:
            future = self._pending.get(request)
        if future is not None and not future.done():
            future.set_result(wait)

    def refund(self, key: str, tokens: int) -> None:
        self._send(("refund", key, tokens))

    def record_usage(self, key: str, actual_tokens: int, estimated_tokens: int) -> None:
        self._send(("usage", key, actual_tokens, estimated_tokens))


def _child_main(config: BatchConfig, which: int, parts: int, conn: Any, parent_end: Any,
                carrier: dict[str, str]) -> None:
    """Body of one worker process: run what the parent sends until it says exit."""
    parent_end.close()
    _become_a_worker_process()
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            conn.send(message)

    permits = _PipePermits(send)
    coordinate_rate_limits(permits, parts)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    session = WorkerSession(config, send, parent_from_traceparent(carrier))
    done = asyncio.Event()
    units = config.units

    def on_command(message: Any) -> None:
        kind = message[0]
        if kind == "run":
            session.start(units[message[1]])
        elif kind == "cancel":
            session.cancel(message[1], message[2])
        elif kind in ("exit", "eof"):
            # The driver sends exit once every run it sent has reported (or it gave up waiting);
            # anything still going here is no longer wanted. On eof the parent is gone: stop
            # spending model calls for nobody.
            session.cancel_all("the batch process is gone" if kind == "eof" else "the batch is closing")
            done.set()

    def read_commands() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = ("eof",)
            if message[0] == "permit":  # answered off the loop: model calls wait on it
                permits.answer(message[1], message[2])
                continue
            try:
                loop.call_soon_threadsafe(on_command, message)
            except RuntimeError:  # the loop is closed
                return
            if message[0] in ("exit", "eof"):
                return

    def self_stop() -> None:
        # Say so first: the parent then sends nothing more here, and the runs cancelled below go
        # out again to the other workers.
        send(("leaving", "the worker process received SIGTERM"))
        session.cancel_all("the worker process received SIGTERM")
        done.set()

    def on_sigterm() -> None:
        # Usually the whole group got it and the parent is about to cancel everything; if it does
        # not, this worker was signalled alone and stops on its own.
        loop.call_later(SELF_STOP_DELAY, self_stop)

    exit_code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        _restore_signal_mask(set())
        threading.Thread(target=read_commands, daemon=True, name="scenario-batch-commands").start()
        loop.run_until_complete(done.wait())
        loop.run_until_complete(session.wait_idle(EXIT_GRACE))
        send(("bye", {"runs_left": session.running}))
    except BaseException:  # report anything, so the parent can say what happened
        exit_code = 1
        try:
            send(("error", traceback.format_exc()))
        except Exception:  # pragma: no cover - the pipe is gone
            pass
    finally:
        # No model_loop.close(): it would close litellm's clients shared with the parent, and
        # the worker exits right after this without running the parent's exit handlers.
        try:
            conn.close()
        finally:
            os._exit(exit_code)


def _become_a_worker_process() -> None:
    """A forked worker is a process of its own: it ignores the terminal's Ctrl-C, dies with its
    parent and never finalizes what it inherited.

    Every owner of process-wide state (model loop, worker pool, limiters, strategies, telemetry,
    live transcripts) already reset its own state in the at-fork hook (:mod:`scenario.fork`). The
    worker shares the parent's epoll instances (fork duplicates the descriptors, not the kernel
    objects behind them): a loop or HTTP client finalized here would unregister its sockets from
    that shared epoll, and the *parent* would stop hearing about them. So the cyclic GC is told
    to leave everything that existed at fork time alone, and the worker exits with ``os._exit``
    (which closes nothing but descriptors).
    """
    gc.freeze()
    # The parent's loop may have set a wakeup fd (shared with the parent after fork) and signal
    # handlers that poke the parent's loop objects: neither may fire here.
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()


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
