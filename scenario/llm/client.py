"""The only place that calls litellm.

Every model call the library makes (user simulator, judge) goes through :func:`complete`, which
adds the timeout, retries, rate limits, replay cache, usage and cost accounting and the GenAI span.

Why a dedicated model loop: litellm caches its async HTTP clients per event loop. Driven from a
fresh loop per scenario (what ``run`` does) it leaks a keep-alive socket per dead loop, loses its
async callbacks and logs "Task was destroyed but it is pending!"; two loops at once can trip its
logging worker. So all litellm coroutines run on one long-lived loop in one background thread,
owned here and closed at exit; callers on any loop, in any thread, await a thread-safe future.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextvars
import json
import os
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from scenario import fork
from scenario.errors import ModelCallError
from scenario.run_context import current_run
from scenario.runtime.event_loops import consume_outcome, settle_future
from scenario.settings import DEFAULT_MODEL_TIMEOUT, ModelConfig, settings
from scenario.telemetry import tracer as telemetry
from scenario.usage import ModelCall

# Extra seconds past litellm's own timeout before we stop waiting ourselves: litellm enforces the
# timeout, this is the backstop that guarantees nothing hangs even if it does not.
TIMEOUT_BACKSTOP = 5.0

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
    import logging

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


class _Call:
    """One coroutine sent to the model loop on behalf of a caller on another loop."""

    __slots__ = ("coro", "context", "caller", "future", "task", "abandoned")

    def __init__(self, coro: Coroutine[Any, Any, Any], caller: asyncio.AbstractEventLoop, future: asyncio.Future[Any]):
        self.coro = coro
        self.context = contextvars.copy_context()
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
                from scenario.runtime.worker_pool import WorkerPool

                ready = threading.Event()
                new_loop = asyncio.new_event_loop()
                # litellm runs part of every call in the loop's default executor; ours lets those
                # threads end when idle, like the library's other workers (same size as asyncio's).
                new_loop.set_default_executor(
                    WorkerPool(min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="scenario-model-io")
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

    async def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Await ``coro`` executed on the model loop, from any loop in any thread.

        Past ``timeout`` seconds the call is cancelled on the model loop and ``asyncio.TimeoutError``
        raised here; cancelling the awaiting task cancels the call on the model loop too.
        """
        loop = self.loop()
        caller = asyncio.get_running_loop()
        if caller is loop:  # already there: no hop
            return await asyncio.wait_for(coro, timeout)
        future = caller.create_future()
        call = _Call(coro, caller, future)
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
            task = loop.create_task(call.coro, context=call.context)
            call.task = task
            task.add_done_callback(lambda _task, call=call: self._finished(call))

    def _finished(self, call: _Call) -> None:
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

def _ignore_everything(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    pass


#: What a forked child inherited and must never close or finalize (see :func:`reset_after_fork`).
_inherited: list[Any] = []


@fork.register
def reset_after_fork() -> None:
    """In a forked child (see :mod:`scenario.fork`): a new model loop, made on first use; the
    parent's loop and litellm's clients bound to it are kept, unused and unclosed.

    The child shares the parent's epoll instances and sockets: closing the parent's loop or an
    HTTP client here would unregister them from the shared epoll, and the *parent* would stop
    hearing about them.
    """
    global model_loop
    old = model_loop
    _inherited.append(old)
    if old._loop is not None:
        # Tasks of the parent's model loop (litellm's logging worker) can never run here; when
        # litellm drops them, each would report "Task was destroyed but it is pending!" to that
        # loop's exception handler: nothing of that loop is news in this process.
        old._loop.set_exception_handler(_ignore_everything)
    model_loop = ModelLoop()
    if _litellm is not None:
        # Clients bound to the parent's model loop: moved out of litellm's cache so it neither
        # hands them out nor closes them on eviction.
        cache = getattr(_litellm, "in_memory_llm_clients_cache", None)
        for name in ("cache_dict", "ttl_dict"):
            store = getattr(cache, name, None)
            if isinstance(store, dict):
                _inherited.append(dict(store))
                store.clear()


@dataclass
class ModelResponse:
    """What a model call produced, already normalised to plain data."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cached: bool = False
    attempts: int = 1

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


def _request_kwargs(config: ModelConfig, messages: list[dict[str, Any]], tools: Any, tool_choice: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {k: v for k, v in config.model_dump().items() if v is not None}
    kwargs["messages"] = messages
    # We retry ourselves (policy, Retry-After, accounting); the OpenAI SDK's hidden retries would
    # multiply attempts and hide them.
    kwargs.setdefault("max_retries", 0)
    if tools:
        kwargs["tools"] = tools
        # litellm routes any call with tools through its MCP gateway check, which imports the
        # optional `mcp` package; judge tools are plain functions, so skip it.
        kwargs["_skip_mcp_handler"] = True
    if tool_choice is not None:
        kwargs["tool_choice"] = tool_choice
    return kwargs


def _cache_payload(kwargs: dict[str, Any]) -> dict[str, Any]:
    # Credentials and transport details do not change the answer; leave them out of the key.
    return {k: v for k, v in kwargs.items() if k not in ("api_key", "api_base", "timeout", "max_retries", "_skip_mcp_handler", "client")}


def _parse_response(response: Any, requested_model: str) -> ModelResponse:
    litellm = litellm_module()
    try:
        choice = response.choices[0]
        message = choice.message
    except (AttributeError, IndexError, TypeError) as exc:
        raise ValueError(f"model {requested_model!r} returned no choices: {response!r:.300}") from exc
    tool_calls = []
    for call in getattr(message, "tool_calls", None) or []:
        data = call.model_dump() if hasattr(call, "model_dump") else dict(call)
        function = data.get("function") or {}
        tool_calls.append(
            {
                "id": data.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments") or "{}"},
            }
        )
    usage = getattr(response, "usage", None)
    input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if input_tokens == 0 and output_tokens == 0:
        # The provider reported no usage (litellm fills in zeros): the cost is unknown, not $0.
        cost = None
    elif cost is None and usage is not None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:
            cost = None  # unknown model price: recorded as unpriced, never a crash
    return ModelResponse(
        content=getattr(message, "content", None),
        tool_calls=tool_calls,
        model=getattr(response, "model", None) or requested_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=float(cost) if cost is not None else None,
    )


async def _attempt(kwargs: dict[str, Any], timeout: float) -> Any:
    litellm = litellm_module()
    from scenario.concurrency.rate_limits import get_rate_limiter

    limiter = get_rate_limiter(kwargs["model"])
    estimated = 0
    if limiter is not None:
        estimated = _estimate_tokens(kwargs)
        await limiter.acquire(estimated)
    client = kwargs.get("client")
    if client is not None:  # the user's own OpenAI-compatible client (scenario.llm.custom_client)
        from scenario.llm.custom_client import complete_with_client

        call = complete_with_client(client, kwargs)
    else:
        call = litellm.acompletion(**kwargs)
    try:
        response = await model_loop.run(call, timeout + TIMEOUT_BACKSTOP)
    except asyncio.TimeoutError:
        raise litellm.Timeout(
            message=f"no answer within {timeout + TIMEOUT_BACKSTOP:.0f}s (backstop)",
            model=kwargs["model"],
            llm_provider=telemetry.provider_name(kwargs["model"]),
        ) from None
    if limiter is not None:
        usage = getattr(response, "usage", None)
        limiter.record_usage(int(getattr(usage, "total_tokens", 0) or 0), estimated)
    return response


def _estimate_tokens(kwargs: dict[str, Any]) -> int:
    text = json.dumps(kwargs.get("messages", []), default=str)
    return len(text) // 4 + int(kwargs.get("max_tokens") or 256)


async def _traced_call(role: str, kwargs: dict[str, Any], timeout: float) -> tuple[Any, ModelResponse]:
    """One logical model call: GenAI span, retries, rate-limit signals, usage into the run."""
    from scenario.concurrency.strategies import notify_rate_limited, notify_success
    from scenario.llm.retry import RetryPolicy, call_with_retries, classify_error, retry_after_seconds

    run = current_run.get()
    model = kwargs["model"]
    messages = kwargs.get("messages", [])
    tracer = telemetry.get_tracer()
    span = telemetry.start_span(
        tracer,
        telemetry.model_span(model),
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": telemetry.provider_name(model),
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": kwargs.get("temperature"),
            "gen_ai.request.max_tokens": kwargs.get("max_tokens"),
            "scenario.role": role,
        },
    )
    if span is not None and settings().trace_content:
        telemetry.set_attributes(span, {"gen_ai.input.messages": json.dumps(messages, default=str, ensure_ascii=False)})

    waits = {"rate_limited": 0, "waited": 0.0}  # this call's own, for its ModelCall record

    def on_retry(event: Any) -> None:
        waits["waited"] += float(event.sleep or 0.0)
        if run is not None:
            run.retries += 1
        if event.classification == "rate_limit":
            waits["rate_limited"] += 1
            if run is not None:
                run.rate_limited += 1
            notify_rate_limited(retry_after_seconds(event.exception))
        telemetry.add_event(span, "retry", {"attempt": event.attempt, "error": f"{type(event.exception).__name__}: {event.exception}"[:500]})

    policy = settings().retry or RetryPolicy()
    debug = settings().debug
    if debug:
        _debug_print(f"{role} -> {model}", _redacted(kwargs))
    started = time.perf_counter()
    try:
        with telemetry.use_span(span):
            raw, attempts = await call_with_retries(lambda: _attempt(kwargs, timeout), policy, on_retry=on_retry)
        result = _parse_response(raw, model)
        result.attempts = attempts
    except Exception as exc:
        from scenario.llm.classify import explain, model_error_kind

        if debug:
            _debug_print(f"{role} <- {model} failed after {time.perf_counter() - started:.2f}s",
                         {"error": f"{type(exc).__name__}: {exc}"})

        attempts = getattr(exc, "scenario_attempts", 1)
        if classify_error(exc) == "rate_limit":
            notify_rate_limited(retry_after_seconds(exc))
        telemetry.end_span(span, exc, {"scenario.attempts": attempts})
        if run is not None:
            run.record_call(ModelCall(
                role=role, model=model, latency=time.perf_counter() - started, attempts=attempts,
                rate_limited=waits["rate_limited"], waited=waits["waited"], error=f"{type(exc).__name__}: {exc}",
            ))
        raise ModelCallError(
            explain(exc, role=role, model=model, api_base=kwargs.get("api_base") or kwargs.get("base_url"),
                    timeout=timeout, attempts=attempts, elapsed=time.perf_counter() - started),
            original=exc,
            attempts=attempts,
            kind=model_error_kind(exc),
        ) from exc
    except BaseException as exc:  # cancelled (run timeout, caller gave up): still close the span
        telemetry.end_span(span, exc)
        raise
    notify_success()
    if debug:
        _debug_print(f"{role} <- {result.model or model} in {time.perf_counter() - started:.2f}s", {
            "message": result.message(), "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "cost_usd": result.cost_usd, "attempts": attempts})
    if run is not None:
        run.model_attempts += attempts
        run.record_usage(role=role, model=result.model or model, input_tokens=result.input_tokens,
                         output_tokens=result.output_tokens, cost_usd=result.cost_usd)
        run.record_call(ModelCall(
            role=role, model=result.model or model, input_tokens=result.input_tokens,
            output_tokens=result.output_tokens, cost_usd=result.cost_usd, latency=time.perf_counter() - started,
            attempts=attempts, rate_limited=waits["rate_limited"], waited=waits["waited"],
        ))
    attributes: dict[str, Any] = {
        "gen_ai.response.model": result.model,
        "gen_ai.usage.input_tokens": result.input_tokens,
        "gen_ai.usage.output_tokens": result.output_tokens,
        telemetry.ATTR_COST: result.cost_usd,
        "scenario.attempts": attempts,
    }
    if span is not None and settings().trace_content:
        attributes["gen_ai.output.messages"] = json.dumps([result.message()], default=str, ensure_ascii=False)
    telemetry.end_span(span, None, attributes)
    return raw, result


_SECRET_NAME = ("key", "token", "secret", "password", "authorization", "auth", "cookie", "signature")


def _redacted(value: Any, name: str = "") -> Any:
    """A copy safe to print: credential-looking fields replaced, URLs stripped of credentials."""
    if name and any(word in name.lower() for word in _SECRET_NAME) and not name.lower().endswith("tokens"):
        return "***" if value else value
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    if name in ("api_base", "base_url") and isinstance(value, str):
        from scenario.llm.classify import redact_url

        return redact_url(value)
    return value


def _debug_print(title: str, payload: dict[str, Any]) -> None:
    """configure(debug=True): one model request or response, whole, to standard error."""
    import sys

    body = json.dumps(payload, default=str, ensure_ascii=False, indent=2)
    try:
        print(f"[scenario debug] {title}\n{body}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed stream: debugging output is never worth failing a call
        pass


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` for your agent under test, made safe for both executors.

    Takes litellm's arguments and returns litellm's response. The call runs on the library's
    model loop (litellm misbehaves when driven from a fresh loop per scenario, which is what
    ``scenario.run`` gives each scenario), gets a timeout, the retry policy and a GenAI span, and
    its tokens and cost count in ``result.usage`` under the "agent" role. Streaming is not
    supported here: call litellm directly for that.
    """
    if "model" not in kwargs or "messages" not in kwargs:
        raise TypeError("scenario.acompletion(...) needs model= and messages=, as litellm.acompletion does.")
    if kwargs.get("stream"):
        raise ValueError(
            "scenario.acompletion(stream=True) is not supported: a stream is bound to the loop that reads it. "
            "Call litellm.acompletion directly for streaming, or drop stream=True."
        )
    kwargs.setdefault("timeout", DEFAULT_MODEL_TIMEOUT)
    kwargs.setdefault("max_retries", 0)
    if kwargs.get("tools"):
        kwargs.setdefault("_skip_mcp_handler", True)
    raw, _result = await _traced_call("agent", kwargs, float(kwargs["timeout"]))
    return raw


async def complete(
    *,
    role: str,
    config: ModelConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
) -> ModelResponse:
    """Call the model once (with retries) on behalf of ``role`` ("user" or "judge")."""
    from scenario.llm import replay_cache as cache

    kwargs = _request_kwargs(config, messages, tools, tool_choice)
    run = current_run.get()
    model = config.model

    cache_key = cache.active_cache_key()
    key = cache.make_key("model", cache_key, _cache_payload(kwargs)) if cache_key else None
    if key is not None:
        hit = cache.load(key)
        if hit is not None:
            response = ModelResponse(**{**hit, "cached": True, "cost_usd": 0.0})
            if run is not None:
                run.record_usage(role=role, model=response.model or model, input_tokens=response.input_tokens,
                                 output_tokens=response.output_tokens, cost_usd=0.0, cached=True)
                run.record_call(ModelCall(role=role, model=response.model or model, input_tokens=response.input_tokens,
                                          output_tokens=response.output_tokens, cost_usd=0.0, latency=0.0,
                                          cached=True))
            return response

    _raw, result = await _traced_call(role, kwargs, config.timeout)
    if key is not None:
        cached = {k: v for k, v in result.__dict__.items() if k not in ("cached", "attempts")}
        cache.store(key, cached)
    return result
