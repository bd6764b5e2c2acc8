"""The one event loop that drives litellm, and litellm itself, imported on first use.

Why a dedicated model loop: litellm caches its async HTTP clients per event loop. Driven from a
fresh loop per scenario (what ``run`` does) it leaks a keep-alive socket per dead loop, loses its
async callbacks and logs "Task was destroyed but it is pending!"; two loops at once can trip its
logging worker. So all litellm coroutines run on one long-lived loop in one background thread,
owned here and closed at exit; callers on any loop, in any thread, await a thread-safe future.

This module is the owner of that loop and of the litellm module object: after a fork only
:func:`reset_after_fork` (here) replaces them, nobody else writes their fields.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from typing import Any

from scenario import fork
from scenario.runtime.event_loops import consume_outcome, create_task_in, settle_future
from scenario.runtime.worker_pool import WorkerPool

TIMEOUT_BACKSTOP = 5.0

#: Providers whose synchronous set-up inside ``litellm.acompletion`` (argument mapping, request
#: transformation, the logging object, an HTTP client from litellm's cache) is computation only:
#: credentials come from arguments or environment variables and the network is touched only by
#: the awaited request. Providers that may fetch credentials there (Vertex AI and Bedrock refresh
#: tokens, Azure AD token providers, SageMaker, watsonx) are not listed.
INLINE_SETUP_PROVIDERS = frozenset({
    "openai", "text-completion-openai", "anthropic", "groq", "mistral", "deepseek", "xai", "openrouter",
    "together_ai", "fireworks_ai", "hosted_vllm", "litellm_proxy", "cerebras", "deepinfra", "perplexity",
})
#: Set to ``0`` to send every call's set-up to the model loop's thread pool, as litellm does itself.
INLINE_SETUP_ENV = "SCENARIO_LITELLM_INLINE_SETUP"


class _CallSetup:
    """One model call's executor jobs, as its own task submits them (see :class:`ModelIOPool`).

    Carried in a context variable, so tasks the call spawns see it too: ``task`` (set when the
    call's task is made) keeps it to the call's own task. ``inline`` lets the first job (``used``)
    run on the model loop. ``requests`` holds the coroutines its jobs returned: litellm's
    ``completion()`` returns the request that ``acompletion`` awaits next, so a call cancelled in
    between (a run's timeout, Ctrl-C) would drop it unawaited and Python would print "coroutine ...
    was never awaited"; when the call's task ends, one never started is closed instead.
    """

    __slots__ = ("task", "inline", "used", "requests")

    def __init__(self, inline: bool) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.inline = inline
        self.used = False
        self.requests: list[Coroutine[Any, Any, Any]] = []

    def keep(self, value: Any) -> None:
        """On the model loop: a job's result, closed with the call if it is a request never awaited."""
        if not inspect.iscoroutine(value):
            return
        if self.task is not None and self.task.done():  # the call ended while its job ran on a thread
            _close_unawaited(value)
        else:
            self.requests.append(value)

    def close_unawaited(self, _task: asyncio.Task[Any] | None = None) -> None:
        """On the model loop, when the call's task is done."""
        requests, self.requests = self.requests, []
        for request in requests:
            _close_unawaited(request)


def _close_unawaited(value: Coroutine[Any, Any, Any]) -> None:
    if inspect.getcoroutinestate(value) == inspect.CORO_CREATED:
        value.close()


def _keep_from_thread(loop: asyncio.AbstractEventLoop, setup: _CallSetup, future: Future[Any]) -> None:
    """A call's job finished on a pool thread: hand its result to :meth:`_CallSetup.keep` on the loop."""
    if future.cancelled() or future.exception() is not None:
        return
    result = future.result()
    if inspect.iscoroutine(result):
        try:
            loop.call_soon_threadsafe(setup.keep, result)
        except RuntimeError:  # the model loop is closed: nobody will await it
            _close_unawaited(result)


_call_setup: contextvars.ContextVar[_CallSetup | None] = contextvars.ContextVar("scenario_call_setup", default=None)

_import_lock = threading.Lock()
_litellm: Any = None


def litellm_module() -> Any:
    """Import litellm on first use.

    litellm fetches its price list over the network at import unless told to use its bundled
    copy; offline that stalls ~5 s. We ask for the bundled copy for the import only and restore
    the variable after, so the user's environment is left as it was. Set
    ``SCENARIO_LITELLM_REMOTE_PRICES=1`` to let litellm fetch fresh prices.
    """
    global _litellm
    if _litellm is not None:
        return _litellm
    with _import_lock:
        if _litellm is None:
            name = "LITELLM_LOCAL_MODEL_COST_MAP"
            previous = os.environ.get(name)
            scoped = previous is None and not os.environ.get("SCENARIO_LITELLM_REMOTE_PRICES")
            if scoped:
                os.environ[name] = "True"
            try:
                import litellm
            finally:
                if scoped:
                    os.environ.pop(name, None)
            _quiet(litellm)
            _litellm = litellm
    return _litellm


def _quiet(litellm: Any) -> None:
    """Keep litellm's own noise out of the user's output, and nothing else.

    - ``suppress_debug_info``: without it litellm prints a "Give Feedback / Get Help" banner and
      "Provider List" lines on *every* failed call, on top of the exception we raise with the
      fix. It only gates those banners, so it is set for the whole process (documented in
      docs/getting-started.md); set it back to False after importing scenario to see them.
    - A filter on the "LiteLLM" logger drops "LoggingWorker error" records: failures of
      litellm's best-effort background callback queue (e.g. a callback cut off when a call is
      cancelled), printed with a traceback though nothing failed for the caller. Every other
      litellm log record, and the library's own warnings, pass unchanged.
    """
    litellm.suppress_debug_info = True
    logger = logging.getLogger("LiteLLM")
    if not any(isinstance(f, _DropLoggingWorkerErrors) for f in logger.filters):
        logger.addFilter(_DropLoggingWorkerErrors())


class _DropLoggingWorkerErrors:
    """A logging filter: False for litellm's "LoggingWorker error..." records (see :func:`_quiet`)."""

    def filter(self, record: Any) -> bool:
        try:
            return not str(record.msg).startswith("LoggingWorker error")
        except Exception:
            return True


def setup_may_run_inline(kwargs: Mapping[str, Any]) -> bool:
    """May this litellm call's synchronous set-up run on the model loop instead of a thread?

    ``litellm.acompletion`` runs its synchronous ``completion()`` (everything before the HTTP
    request: argument mapping, request transformation, the logging object, a client from its
    cache) through ``loop.run_in_executor``: a hand-over to a pool thread and back, 0.5-0.9 ms of
    CPU per call on this machine beyond the work itself (15-25% of litellm's own), with the GIL
    changing hands twice. For the providers in :data:`INLINE_SETUP_PROVIDERS` that set-up does no
    I/O, so it runs inline (litellm's callbacks and pre-call hooks run on the loop either way).
    Anything that may block keeps the thread: another provider, a secret manager configured in
    litellm (keys are then fetched during the set-up), or ``SCENARIO_LITELLM_INLINE_SETUP=0``.
    """
    litellm = _litellm
    if litellm is None or getattr(litellm, "secret_manager_client", None) is not None:
        return False
    if getattr(litellm, "_key_management_system", None) is not None:
        return False
    if os.environ.get(INLINE_SETUP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _provider(kwargs.get("model"), kwargs.get("custom_llm_provider"), kwargs.get("api_base")) in INLINE_SETUP_PROVIDERS


@functools.lru_cache(maxsize=256)
def _provider(model: Any, custom_llm_provider: Any, api_base: Any) -> str | None:
    """litellm's provider for a model (what it resolves inside the call), or None if it cannot say."""
    try:  # a stand-in for litellm without get_llm_provider (a test's fake) lands here too
        return str(_litellm.get_llm_provider(model=model, custom_llm_provider=custom_llm_provider,
                                             api_base=api_base)[1])
    except Exception:
        return None


class ModelIOPool(WorkerPool):
    """The model loop's default executor: litellm's synchronous set-up runs here.

    A worker pool, except that the first job a model call's own task submits runs inline, on the
    model loop, when :func:`setup_may_run_inline` allowed it for that call (litellm's
    ``completion()``, submitted by ``acompletion`` before anything else). Later jobs of the call
    and jobs of tasks it spawns go to the threads as before. A request coroutine that a job of
    the call returned is closed if the call ends without awaiting it (:class:`_CallSetup`).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        setup = _call_setup.get()
        task = setup.task if setup is not None else None
        if setup is None or task is None or task is not _current_task():
            return super().submit(fn, *args, **kwargs)
        if setup.inline and not setup.used:
            setup.used = True
            future: Future[Any] = Future()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                setup.keep(result)
                future.set_result(result)
            return future
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(functools.partial(_keep_from_thread, task.get_loop(), setup))
        return future


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # submitted from outside any running loop
        return None


class _Call:
    """One coroutine sent to the model loop on behalf of a caller on another loop."""

    __slots__ = ("coro", "context", "caller", "future", "task", "abandoned")

    def __init__(self, coro: Coroutine[Any, Any, Any], caller: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
                 context: contextvars.Context):
        self.coro = coro
        self.context = context
        self.caller = caller
        self.future = future
        self.task: asyncio.Task[Any] | None = None
        self.abandoned = False


class ModelLoop:
    """One long-lived event loop on a daemon thread that runs every litellm coroutine.

    Calls cross between threads in batches: callers queue their coroutines in an inbox and only
    the first one to find the model loop without a pending wake-up writes to its self-pipe; the
    model loop takes every queued call in one pass. Results travel back the same way: the
    completions of one pass are grouped per caller loop, and each caller loop is woken once for
    its whole group. Under ``arun`` (every run on one loop) that is one wake-up for many
    completions instead of one each; under ``run`` (a loop per run) it is never more than one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inbox: collections.deque[_Call] = collections.deque()
        self._wake_pending = False
        self._outbox: dict[asyncio.AbstractEventLoop, list[_Call]] = {}

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return loop
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()
                # litellm runs part of every call in the loop's default executor; ours runs it inline
                # where that is safe and otherwise on threads that end when idle, like the
                # library's other workers (same size as asyncio's).
                new_loop.set_default_executor(
                    ModelIOPool(min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="scenario-model-io")
                )

                def serve() -> None:
                    asyncio.set_event_loop(new_loop)
                    ready.set()
                    new_loop.run_forever()

                thread = threading.Thread(target=serve, name="scenario-model-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = new_loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run ``coro`` on the model loop; a thread-safe future for code that is not on a loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

    async def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None, *,
                  setup_inline: bool = False) -> Any:
        """Await ``coro`` executed on the model loop, from any loop in any thread.

        Past ``timeout`` seconds the call is cancelled on the model loop and ``asyncio.TimeoutError``
        raised here; cancelling the awaiting task cancels the call on the model loop too.
        ``setup_inline`` lets the first executor job of ``coro`` run on the model loop (see
        :func:`setup_may_run_inline`, which decides it).
        """
        loop = self.loop()
        caller = asyncio.get_running_loop()
        context = contextvars.copy_context()
        context.run(_call_setup.set, _CallSetup(setup_inline))
        if caller is loop:  # already there: no hop
            return await asyncio.wait_for(_start_call(loop, coro, context), timeout)
        future = caller.create_future()
        call = _Call(coro, caller, future, context)
        self._inbox.append(call)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._take_inbox)
            except RuntimeError:  # closed between loop() and here (interpreter exit)
                self._wake_pending = False
                raise
        timer = caller.call_later(timeout, _expire, future) if timeout is not None else None
        try:
            return await future
        except BaseException:
            # Timed out or cancelled here: stop the call there too (its result is not wanted).
            call.abandoned = True
            try:
                loop.call_soon_threadsafe(_cancel_call, call)
            except RuntimeError:  # the model loop is closed: nothing left to cancel
                pass
            raise
        finally:
            if timer is not None:
                timer.cancel()

    # -- on the model loop ------------------------------------------------------------------
    def _take_inbox(self) -> None:
        self._wake_pending = False  # before taking: a call queued after this line wakes us again
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        while inbox:
            call = inbox.popleft()
            if call.abandoned:
                call.coro.close()
                continue
            task = _start_call(loop, call.coro, call.context)
            call.task = task
            task.add_done_callback(functools.partial(self._finished, call))

    def _finished(self, call: _Call, _task: asyncio.Task[Any] | None = None) -> None:
        if call.abandoned:
            consume_outcome(call.task)
            return
        group = self._outbox.get(call.caller)
        if group is None:
            if not self._outbox:
                asyncio.get_running_loop().call_soon(self._send_outbox)  # after every completion of this pass
            self._outbox[call.caller] = [call]
        else:
            group.append(call)

    def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, {}
        for caller, calls in outbox.items():
            try:
                caller.call_soon_threadsafe(_settle, calls)
            except RuntimeError:  # the caller's loop is closed: nobody waits for these any more
                for call in calls:
                    consume_outcome(call.task)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is in flight, close litellm's clients, stop and join the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed():
            return

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._release_callers()
            if _litellm is not None and self is model_loop:  # litellm's clients live on the process's loop
                try:
                    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

                    await asyncio.wait_for(close_litellm_async_clients(), timeout)
                except Exception:  # pragma: no cover - best effort at shutdown
                    pass
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout)
        except Exception:  # pragma: no cover - best effort at shutdown
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        if not loop.is_running():
            loop.close()

    def _release_callers(self) -> None:
        """At close, on the model loop: answer every caller still waiting (their calls were
        cancelled with the loop's tasks), and cancel calls that never started."""
        self._send_outbox()
        while self._inbox:
            call = self._inbox.popleft()
            call.coro.close()
            try:
                call.caller.call_soon_threadsafe(call.future.cancel)
            except RuntimeError:
                pass


def _start_call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                context: contextvars.Context) -> asyncio.Task[Any]:
    """The call's task on the model loop; the call's set-up state in its context is tied to this task."""
    task = create_task_in(loop, coro, context)
    setup = context.get(_call_setup)
    if setup is not None:
        setup.task = task  # before the task first runs: it starts on the loop's next pass
        task.add_done_callback(setup.close_unawaited)
    return task


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())


def _cancel_call(call: _Call) -> None:
    task = call.task
    if task is not None and not task.done():
        task.cancel()  # a call still in the inbox is dropped when the inbox is taken


def _settle(calls: list[_Call]) -> None:
    """On the caller's loop: hand each finished call's outcome to the future its caller awaits."""
    for call in calls:
        settle_future(call.future, call.task)


model_loop = ModelLoop()
atexit.register(model_loop.close)

#: What a forked child inherited and must keep referenced but never use (the parent's loop and
#: litellm's clients bound to it): dropping them would run their finalisers against a loop that
#: does not exist in this process.
_inherited: list[Any] = []


@fork.register
def reset_after_fork() -> None:
    """In a forked child: a fresh model loop, and litellm's cached clients (bound to the parent's
    loop) moved out of its cache so it neither hands them out nor closes them on eviction."""
    global model_loop
    old = model_loop
    _inherited.append(old)
    old_loop = old._loop
    if old_loop is not None:
        # Tasks of the parent's model loop (litellm's logging worker) can never run here; when
        # litellm drops them they would each log "Task was destroyed but it is pending!".
        for task in asyncio.all_tasks(old_loop):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
    model_loop = ModelLoop()
    if _litellm is not None:
        cache = getattr(_litellm, "in_memory_llm_clients_cache", None)
        for name in ("cache_dict", "ttl_dict"):
            store = getattr(cache, name, None)
            if isinstance(store, dict):
                _inherited.append(dict(store))
                store.clear()
