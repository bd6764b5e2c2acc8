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
import json
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Coroutine, Dict, List, Optional

from . import telemetry
from .config import DEFAULT_MODEL_TIMEOUT, ModelConfig, settings
from .errors import ModelCallError
from .run_context import current_run
from .types import ModelCall

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


class ModelLoop:
    """One long-lived event loop on a daemon thread that runs every litellm coroutine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return loop
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(new_loop)
                    ready.set()
                    new_loop.run_forever()

                thread = threading.Thread(target=serve, name="scenario-model-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = new_loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> "Future[Any]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop())

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
            if _litellm is not None:
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


model_loop = ModelLoop()
atexit.register(model_loop.close)


@dataclass
class ModelResponse:
    """What a model call produced, already normalised to plain data."""

    content: Optional[str]
    tool_calls: List[Dict[str, Any]] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Optional[float] = None
    cached: bool = False
    attempts: int = 1

    def message(self) -> Dict[str, Any]:
        msg: Dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg


def _request_kwargs(config: ModelConfig, messages: List[Dict[str, Any]], tools: Any, tool_choice: Any) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = {k: v for k, v in config.model_dump().items() if v is not None}
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


def _cache_payload(kwargs: Dict[str, Any]) -> Dict[str, Any]:
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


async def _attempt(kwargs: Dict[str, Any], timeout: float) -> Any:
    litellm = litellm_module()
    from .rate_limits import get_rate_limiter

    limiter = get_rate_limiter(kwargs["model"])
    estimated = 0
    if limiter is not None:
        estimated = _estimate_tokens(kwargs)
        await limiter.acquire(estimated)
    client = kwargs.get("client")
    if client is not None:  # the user's own OpenAI-compatible client (scenario.custom_client)
        from .custom_client import complete_with_client

        future = model_loop.submit(complete_with_client(client, kwargs))
    else:
        future = model_loop.submit(litellm.acompletion(**kwargs))
    try:
        response = await asyncio.wait_for(asyncio.wrap_future(future), timeout + TIMEOUT_BACKSTOP)
    except asyncio.TimeoutError:
        future.cancel()
        raise litellm.Timeout(
            message=f"no answer within {timeout + TIMEOUT_BACKSTOP:.0f}s (backstop)",
            model=kwargs["model"],
            llm_provider=telemetry.provider_name(kwargs["model"]),
        ) from None
    if limiter is not None:
        usage = getattr(response, "usage", None)
        limiter.record_usage(int(getattr(usage, "total_tokens", 0) or 0), estimated)
    return response


def _estimate_tokens(kwargs: Dict[str, Any]) -> int:
    text = json.dumps(kwargs.get("messages", []), default=str)
    return len(text) // 4 + int(kwargs.get("max_tokens") or 256)


async def _traced_call(role: str, kwargs: Dict[str, Any], timeout: float) -> "tuple[Any, ModelResponse]":
    """One logical model call: GenAI span, retries, rate-limit signals, usage into the run."""
    from .concurrency import notify_rate_limited, notify_success
    from .retry import RetryPolicy, call_with_retries, classify_error, retry_after_seconds

    run = current_run.get()
    model = kwargs["model"]
    messages = kwargs.get("messages", [])
    tracer = telemetry.get_tracer()
    span = telemetry.start_span(
        tracer,
        f"chat {model}",
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
    started = time.perf_counter()
    try:
        with telemetry.use_span(span):
            raw, attempts = await call_with_retries(lambda: _attempt(kwargs, timeout), policy, on_retry=on_retry)
        result = _parse_response(raw, model)
        result.attempts = attempts
    except Exception as exc:
        from .model_errors import explain, model_error_kind

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
    if run is not None:
        run.model_attempts += attempts
        run.record_usage(role=role, model=result.model or model, input_tokens=result.input_tokens,
                         output_tokens=result.output_tokens, cost_usd=result.cost_usd)
        run.record_call(ModelCall(
            role=role, model=result.model or model, input_tokens=result.input_tokens,
            output_tokens=result.output_tokens, cost_usd=result.cost_usd, latency=time.perf_counter() - started,
            attempts=attempts, rate_limited=waits["rate_limited"], waited=waits["waited"],
        ))
    attributes: Dict[str, Any] = {
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
    messages: List[Dict[str, Any]],
    tools: Optional[List[Dict[str, Any]]] = None,
    tool_choice: Any = None,
) -> ModelResponse:
    """Call the model once (with retries) on behalf of ``role`` ("user" or "judge")."""
    from . import replay_cache as cache

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
