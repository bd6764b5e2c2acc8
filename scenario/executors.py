"""The two doors into the engine.

``arun`` awaits the engine on the caller's loop: agents holding loop-bound state (async fixtures,
gRPC channels, queues made in the test) keep working. ``run`` hands the same engine to a thread
from the shared worker pool, which runs it on a fresh loop and shuts that loop down completely
afterwards: blocking, synchronous agents then parallelise for free. The caller's ``contextvars``
(and so its OpenTelemetry span) travel into the thread, so both doors produce the same trace.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, TypeVar, Union

from .engine import ScenarioEngine, build_spec
from .event_loops import drain
from .peer_keywords import warn_ignored
from .types import ScenarioResult
from .worker_pool import get_pool

T = TypeVar("T")

# How long a cancelled `run` waits for its worker loop to unwind before giving up on it.
CANCEL_GRACE = 10.0


async def arun(
    name: str,
    description: str,
    agents: Optional[List[Any]] = None,
    max_turns: Optional[int] = None,
    script: Optional[List[Any]] = None,
    cache_key: Optional[str] = None,
    set_id: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
    verbose: Optional[Union[bool, int]] = None,
    timeout: Optional[float] = None,
    debug: Optional[bool] = None,
    min_turns: Optional[int] = None,
    fields: Optional[Dict[str, Any]] = None,
    fetch_remote_traces: Optional[bool] = None,
    trace_wait_timeout: Optional[float] = None,
    parameters: Optional[Dict[str, Any]] = None,
    evaluators: Optional[Sequence[Any]] = None,
    on_audio_chunk: Optional[Callable[[Any], None]] = None,
    on_voice_event: Optional[Callable[[Any], None]] = None,
    audio_playback: bool = False,
) -> ScenarioResult:
    """Run a scenario on the caller's event loop and return its result.

    Same arguments and result as :func:`run`. Synchronous adapters are offloaded to the shared
    worker pool so they never block this loop.
    """
    warn_ignored(
        {"fetch_remote_traces": fetch_remote_traces, "trace_wait_timeout": trace_wait_timeout, "parameters": parameters,
         "evaluators": evaluators, "on_audio_chunk": on_audio_chunk, "on_voice_event": on_voice_event,
         "audio_playback": audio_playback}
    )
    spec = build_spec(
        name=name, description=description, agents=agents, script=script, max_turns=max_turns,
        cache_key=cache_key, set_id=set_id, metadata=metadata, verbose=_verbose(verbose, debug), timeout=timeout,
        min_turns=min_turns, fields=fields,
    )
    return await ScenarioEngine(spec, owns_loop=False).execute()


async def run(
    name: str,
    description: str,
    agents: Optional[List[Any]] = None,
    max_turns: Optional[int] = None,
    script: Optional[List[Any]] = None,
    cache_key: Optional[str] = None,
    set_id: Optional[str] = None,
    metadata: Optional[Dict[str, Any]] = None,
    verbose: Optional[Union[bool, int]] = None,
    timeout: Optional[float] = None,
    debug: Optional[bool] = None,
    min_turns: Optional[int] = None,
    fields: Optional[Dict[str, Any]] = None,
    fetch_remote_traces: Optional[bool] = None,
    trace_wait_timeout: Optional[float] = None,
    parameters: Optional[Dict[str, Any]] = None,
    evaluators: Optional[Sequence[Any]] = None,
    on_audio_chunk: Optional[Callable[[Any], None]] = None,
    on_voice_event: Optional[Callable[[Any], None]] = None,
    audio_playback: bool = False,
) -> ScenarioResult:
    """Run a scenario on a worker thread with a fresh event loop and return its result.

    Args:
        name: short identifier shown in reports and spans.
        description: the situation, given to the user simulator and the judge.
        agents: adapters: the agent under test, usually a ``UserSimulatorAgent`` and a ``JudgeAgent``.
        max_turns: autopilot turn limit (default from ``configure``, 10).
        script: steps (``user``, ``agent``, ``judge``, ``proceed``, ...); default is autopilot.
        cache_key: replay model calls deterministically (see docs/caching.md).
        set_id, metadata: labels carried into reports and spans.
        verbose: print the conversation as it happens.
        timeout: seconds for the whole run; past it the run fails as timed out.
        debug: accepted for compatibility with langwatch-scenario; prints the conversation like
            ``verbose``.
        min_turns: turns that must complete before the judge may end the run on its own (0);
            explicit ``judge()`` steps and the last turn still get a verdict.
        fields: values the scenario carries beside its description (``state.fields``,
            ``state.field(name)``), e.g. a golden answer a script step compares against.
        fetch_remote_traces, trace_wait_timeout, parameters, evaluators, on_audio_chunk,
            on_voice_event, audio_playback: langwatch-scenario keywords for its hosted platform and
            voice support. Accepted so suites run unchanged; set, they warn once that they have
            no effect here (docs/migrating.md).

    Bad set-up raises :class:`scenario.ScenarioConfigError` here, before anything runs; errors
    during the run (an adapter raising, a model failing after retries) give a failed result whose
    ``reasoning`` and ``error`` say what and where.
    """
    warn_ignored(
        {"fetch_remote_traces": fetch_remote_traces, "trace_wait_timeout": trace_wait_timeout, "parameters": parameters,
         "evaluators": evaluators, "on_audio_chunk": on_audio_chunk, "on_voice_event": on_voice_event,
         "audio_playback": audio_playback}
    )
    spec = build_spec(
        name=name, description=description, agents=agents, script=script, max_turns=max_turns,
        cache_key=cache_key, set_id=set_id, metadata=metadata, verbose=_verbose(verbose, debug), timeout=timeout,
        min_turns=min_turns, fields=fields,
    )
    return await run_on_worker_loop(ScenarioEngine(spec, owns_loop=True).execute)


def _verbose(verbose: Optional[Union[bool, int]], debug: Optional[bool]) -> Optional[bool]:
    # langwatch-scenario also takes a verbosity level (0, 1, 2); any level above 0 prints.
    if verbose is None:
        return debug
    if isinstance(verbose, bool) or not isinstance(verbose, int):
        return bool(verbose)
    return verbose > 0


class _WorkerLoopJob:
    """One coroutine run to completion on a fresh loop in a pool thread, cancellable from outside."""

    def __init__(self, make_coro: Callable[[], Awaitable[T]], reuse_loop: bool = False):
        self._make_coro = make_coro
        self._reuse_loop = reuse_loop
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional["asyncio.Task[Any]"] = None
        self._cancelled = False

    def __call__(self) -> Any:
        if self._reuse_loop:
            loop = _take_thread_loop()
        else:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        try:
            with self._lock:
                if self._cancelled:
                    raise asyncio.CancelledError()
                self._task = loop.create_task(self._make_coro())  # type: ignore[arg-type]
                self._loop = loop
            return loop.run_until_complete(self._task)
        finally:
            with self._lock:
                self._loop = None
            if self._reuse_loop:
                _give_back_thread_loop(loop)
            else:
                _shutdown_loop(loop)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)


# Opt-in (run_batch's thread executor): a worker thread keeps the loop of its last run when that
# run left nothing behind on it, and its next run starts there instead of on a new one. A loop left exactly as new is
# indistinguishable from a new loop, and making and closing one costs more CPU than a short
# scripted run (epoll instance, self-pipe, three shutdown passes): about a third of a `run`'s
# overhead in the batch benchmarks. Any trace of the run (a task, an async generator, a default
# executor, a reader, a timer, a handler) and the loop is shut down and closed as before.
_thread_loop = threading.local()


# Kept loops inherited by a forked child (whose threads are gone): never closed there, because
# closing would unregister the self-pipe from the epoll instance the child shares with its parent.
_inherited_loops: List[asyncio.AbstractEventLoop] = []


class _KeptLoop:
    """Holds a thread's idle loop and closes it when the thread ends (no unclosed-loop warning)."""

    __slots__ = ("loop", "pid")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop: Optional[asyncio.AbstractEventLoop] = loop
        self.pid = os.getpid()

    def __del__(self) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if os.getpid() != self.pid:
            _inherited_loops.append(loop)
        elif not loop.is_running():
            loop.close()


def _take_thread_loop() -> asyncio.AbstractEventLoop:
    kept = getattr(_thread_loop, "kept", None)
    _thread_loop.kept = None
    loop: Optional[asyncio.AbstractEventLoop] = None
    if kept is not None:
        loop, kept.loop = kept.loop, None  # taken back: the holder must not close it any more
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def _give_back_thread_loop(loop: asyncio.AbstractEventLoop) -> None:
    if _is_pristine(loop):
        asyncio.set_event_loop(None)
        _thread_loop.kept = _KeptLoop(loop)
        return
    _shutdown_loop(loop)


def _is_pristine(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop holds nothing a run could have left: no task, callback, live timer,
    async generator, default executor, registered file descriptor besides its own self-pipe,
    signal handler, custom exception handler or task factory, debug mode."""
    try:
        if loop.is_closed() or loop.get_debug() or loop.get_task_factory() is not None:
            return False
        if loop.get_exception_handler() is not None:
            return False
        if getattr(loop, "_ready", True) or getattr(loop, "_asyncgens", True):
            return False
        if getattr(loop, "_default_executor", True) is not None or getattr(loop, "_signal_handlers", True):
            return False
        scheduled = getattr(loop, "_scheduled", None)
        if scheduled is None or any(not handle.cancelled() for handle in scheduled):
            return False
        selector = getattr(loop, "_selector", None)
        if selector is None or len(selector.get_map()) != 1:
            return False
        return not any(not task.done() for task in asyncio.all_tasks(loop))
    except Exception:  # an unfamiliar loop implementation: do not keep it
        return False


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a worker loop for good: stray tasks, async generators, default executor, then close."""
    try:
        drain(loop)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def run_on_worker_loop(make_coro: Callable[[], Awaitable[T]], *, reuse_loop: bool = False) -> T:
    """Await ``make_coro()`` executed on a fresh loop in a worker thread, with our context.

    ``reuse_loop=True`` (batches) lets the thread start on the loop its previous job left
    pristine (see ``_is_pristine``) instead of making a new one.

    Cancelling the awaiting task cancels the worker's task and waits (boundedly) for its loop to
    shut down, so a cancelled batch leaves no loop or thread behind.
    """
    job = _WorkerLoopJob(make_coro, reuse_loop)
    context = contextvars.copy_context()
    future = asyncio.wrap_future(get_pool().submit(context.run, job))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        job.cancel()
        await asyncio.wait({future}, timeout=CANCEL_GRACE)
        if future.done() and not future.cancelled():
            future.exception()  # consumed: the cancellation below is what the caller sees
        raise
