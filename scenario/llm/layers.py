"""The layers around the one model call, each with one job, each a ``Complete`` wrapping another.

``scenario.llm.client`` stacks them, outermost first::

    ReplayCache -> ExplainErrors -> Accounting -> DebugLog -> Span -> Retry -> RateLimit -> call

The order is what the behaviour asks for:

- ``ReplayCache`` outermost: a replayed answer asks no provider, so it opens no span, takes no
  rate-limit permit, makes no retry, and is recorded as a cached call (by the ``on_hit`` callable
  it is handed, :func:`record_cache_hit`). Only an answer that came through every layer is stored;
  an in-process model (``scenario.testing.FunctionModel``) is never replayed.
- ``ExplainErrors`` turns the last failure into a :class:`scenario.errors.ModelCallError` whose
  message says what to do; everything inside it sees the provider's own exception.
- ``Accounting`` records the call into the current run (tokens, cost, attempts, waits, latency
  including retries) and announces :class:`scenario.events.ModelCallFinished`. It counts the run's
  retries through the retry observer it adds to the request.
- ``DebugLog`` prints request and response under ``configure(debug=True)``.
- ``Span`` opens the GenAI span around all attempts (retries are span events); the span records the
  provider's exception, not our explanation.
- ``Retry`` runs the retry policy; every rate-limited attempt is announced as
  :class:`scenario.events.RateLimited` and every scheduled retry as
  :class:`scenario.events.RetryScheduled`.
- ``RateLimit`` takes a permit of the model's rate limiter per attempt and reports the tokens used.

Each layer is built with its inner ``Complete`` and nothing else it does not own, so each is tested
against a fake inner call (tests/llm/test_llm_layers.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from scenario.concurrency.rate_limits import get_rate_limiter
from scenario.errors import ModelCallError
from scenario.events import ModelCallFinished, RateLimited, RetryScheduled, publish
from scenario.llm import replay_cache
from scenario.llm.call import (
    Complete,
    InProcessModel,
    ModelRequest,
    ModelResponse,
    cache_payload,
    estimate_tokens,
)
from scenario.llm.classify import classify_error, explain, model_error_kind, redact_url, retry_after_seconds
from scenario.llm.retry import RetryEvent, RetryPolicy, call_with_retries
from scenario.run_context import current_run
from scenario.settings import settings
from scenario.telemetry import tracer as telemetry
from scenario.usage import ModelCall


class Layer:
    """A ``Complete`` that wraps another one (``inner``)."""

    def __init__(self, inner: Complete) -> None:
        self.inner = inner

    async def __call__(self, request: ModelRequest) -> ModelResponse:  # pragma: no cover - abstract
        raise NotImplementedError


# ---------------------------------------------------------------------------
# Replay cache
# ---------------------------------------------------------------------------


def record_cache_hit(request: ModelRequest, response: ModelResponse) -> None:
    """A replayed answer in the run's usage: its tokens, no cost, no latency, marked cached."""
    run = current_run.get()
    model = response.model or request.model
    if run is not None:
        run.record_usage(role=request.role, model=model, input_tokens=response.input_tokens,
                         output_tokens=response.output_tokens, cost_usd=0.0, cached=True)
        run.record_call(ModelCall(role=request.role, model=model, input_tokens=response.input_tokens,
                                  output_tokens=response.output_tokens, cost_usd=0.0, latency=0.0, cached=True))
    publish(ModelCallFinished(role=request.role, model=model, cached=True))


class ReplayCache(Layer):
    """With a cache key in force, answer from the replay cache, or ask ``inner`` and store the answer."""

    def __init__(self, inner: Complete, on_hit: Callable[[ModelRequest, ModelResponse], None] = record_cache_hit) -> None:
        super().__init__(inner)
        self.on_hit = on_hit

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        cache_key = replay_cache.active_cache_key()
        if isinstance(request.kwargs.get("client"), InProcessModel):
            cache_key = None  # deterministic and free already; a replay would hide an edit to it
        key = replay_cache.make_key("model", cache_key, cache_payload(request.kwargs)) if cache_key else None
        if key is not None:
            hit = replay_cache.load(key)
            if hit is not None:
                response = ModelResponse(**{**hit, "cached": True, "cost_usd": 0.0})
                self.on_hit(request, response)
                return response
        response = await self.inner(request)
        if key is not None:
            replay_cache.store(key, response.cacheable())
        return response


# ---------------------------------------------------------------------------
# Errors the user can act on
# ---------------------------------------------------------------------------


class ExplainErrors(Layer):
    """The last failure as a ModelCallError that names the cause and the fix (original kept)."""

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        try:
            return await self.inner(request)
        except Exception as exc:
            kwargs = request.kwargs
            attempts = getattr(exc, "scenario_attempts", 1)
            raise ModelCallError(
                explain(exc, role=request.role, model=request.model,
                        api_base=kwargs.get("api_base") or kwargs.get("base_url"), timeout=request.timeout,
                        attempts=attempts, elapsed=time.perf_counter() - started),
                original=exc,
                attempts=attempts,
                kind=model_error_kind(exc),
            ) from exc


# ---------------------------------------------------------------------------
# Accounting
# ---------------------------------------------------------------------------


class Accounting(Layer):
    """Each call into the current run's usage and call log, and announced as ModelCallFinished."""

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        run = current_run.get()
        waits = _Waits(run)
        request.retry_observers.append(waits.on_retry)
        started = time.perf_counter()
        try:
            response = await self.inner(request)
        except Exception as exc:
            latency = time.perf_counter() - started
            attempts = getattr(exc, "scenario_attempts", 1)
            if run is not None:
                run.record_call(ModelCall(
                    role=request.role, model=request.model, latency=latency, attempts=attempts,
                    rate_limited=waits.rate_limited, waited=waits.waited, error=f"{type(exc).__name__}: {exc}",
                ))
            publish(ModelCallFinished(role=request.role, model=request.model, attempts=attempts, latency=latency,
                                      error=exc))
            raise
        latency = time.perf_counter() - started
        model = response.model or request.model
        attempts = response.attempts
        if run is not None:
            run.model_attempts += attempts
            run.record_usage(role=request.role, model=model, input_tokens=response.input_tokens,
                             output_tokens=response.output_tokens, cost_usd=response.cost_usd)
            run.record_call(ModelCall(
                role=request.role, model=model, input_tokens=response.input_tokens,
                output_tokens=response.output_tokens, cost_usd=response.cost_usd, latency=latency,
                attempts=attempts, rate_limited=waits.rate_limited, waited=waits.waited,
            ))
        publish(ModelCallFinished(role=request.role, model=model, attempts=attempts, latency=latency))
        return response


class _Waits:
    """One call's retries: its own waits (for its ModelCall record) and the run's counters."""

    __slots__ = ("run", "rate_limited", "waited")

    def __init__(self, run: Any) -> None:
        self.run = run
        self.rate_limited = 0
        self.waited = 0.0

    def on_retry(self, event: RetryEvent) -> None:
        self.waited += float(event.sleep or 0.0)
        if self.run is not None:
            self.run.retries += 1
        if event.classification == "rate_limit":
            self.rate_limited += 1
            if self.run is not None:
                self.run.rate_limited += 1


# ---------------------------------------------------------------------------
# configure(debug=True)
# ---------------------------------------------------------------------------


class DebugLog(Layer):
    """Under ``configure(debug=True)``: each request and its response (or failure), whole, to stderr."""

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        if not settings().debug:
            return await self.inner(request)
        role, model = request.role, request.model
        debug_print(f"{role} -> {model}", redacted(request.kwargs))
        started = time.perf_counter()
        try:
            response = await self.inner(request)
        except Exception as exc:
            debug_print(f"{role} <- {model} failed after {time.perf_counter() - started:.2f}s",
                        {"error": f"{type(exc).__name__}: {exc}"})
            raise
        debug_print(f"{role} <- {response.model or model} in {time.perf_counter() - started:.2f}s", {
            "message": response.message(), "input_tokens": response.input_tokens,
            "output_tokens": response.output_tokens, "cost_usd": response.cost_usd, "attempts": response.attempts})
        return response


_SECRET_NAME = ("key", "token", "secret", "password", "authorization", "auth", "cookie", "signature")


def redacted(value: Any, name: str = "") -> Any:
    """A copy safe to print: credential-looking fields replaced, URLs stripped of credentials."""
    if name and any(word in name.lower() for word in _SECRET_NAME) and not name.lower().endswith("tokens"):
        return "***" if value else value
    if isinstance(value, dict):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    if name in ("api_base", "base_url") and isinstance(value, str):
        return redact_url(value)
    return value


def debug_print(title: str, payload: dict[str, Any]) -> None:
    """One model request or response, whole, to standard error."""
    body = json.dumps(payload, default=str, ensure_ascii=False, indent=2)
    try:
        print(f"[scenario debug] {title}\n{body}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed stream: debugging output is never worth failing a call
        pass


# ---------------------------------------------------------------------------
# The GenAI span
# ---------------------------------------------------------------------------


class Span(Layer):
    """A ``chat {model}`` span around all attempts, with the GenAI attributes (docs/observability.md)."""

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        kwargs, model = request.kwargs, request.model
        span = telemetry.start_span(
            telemetry.get_tracer(),
            telemetry.model_span(model),
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": telemetry.provider_name(model),
                "gen_ai.request.model": model,
                "gen_ai.request.temperature": kwargs.get("temperature"),
                "gen_ai.request.max_tokens": kwargs.get("max_tokens"),
                "scenario.role": request.role,
            },
        )
        if span is not None:
            if settings().trace_content:
                telemetry.set_attributes(span, {"gen_ai.input.messages": json.dumps(
                    request.messages, default=str, ensure_ascii=False)})
            request.retry_observers.append(lambda event: telemetry.add_event(span, "retry", {
                "attempt": event.attempt, "error": f"{type(event.exception).__name__}: {event.exception}"[:500]}))
        try:
            with telemetry.use_span(span):
                response = await self.inner(request)
        except Exception as exc:
            telemetry.end_span(span, exc, {"scenario.attempts": getattr(exc, "scenario_attempts", 1)})
            raise
        except BaseException as exc:  # cancelled (run timeout, caller gave up): still close the span
            telemetry.end_span(span, exc)
            raise
        if span is not None:
            attributes: dict[str, Any] = {
                "gen_ai.response.model": response.model,
                "gen_ai.usage.input_tokens": response.input_tokens,
                "gen_ai.usage.output_tokens": response.output_tokens,
                telemetry.ATTR_COST: response.cost_usd,
                "scenario.attempts": response.attempts,
            }
            if settings().trace_content:
                attributes["gen_ai.output.messages"] = json.dumps([response.message()], default=str,
                                                                  ensure_ascii=False)
            telemetry.end_span(span, None, attributes)
        return response


# ---------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------


_DEFAULT_RETRY = RetryPolicy()  # immutable: made once, not per call


class Retry(Layer):
    """Try ``inner`` again on transient failures under ``configure(retry=...)`` (default RetryPolicy()).

    Before each retry sleeps, the request's retry observers are called and RetryScheduled is
    announced; every rate-limited attempt is announced as RateLimited (with the role and model).
    """

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        observers = request.retry_observers
        role, model = request.role, request.model

        def on_retry(event: RetryEvent) -> None:
            for observer in observers:
                observer(event)
            publish(RetryScheduled(attempt=event.attempt, kind=event.classification, sleep=event.sleep,
                                   retry_after=event.retry_after, error=event.exception, role=role, model=model))

        async def attempt() -> ModelResponse:
            try:
                return await self.inner(request)
            except Exception as exc:
                if classify_error(exc) == "rate_limit":  # every rate-limited attempt, the last one included
                    publish(RateLimited(retry_after_seconds(exc), role=role, model=model))
                raise

        policy = settings().retry or _DEFAULT_RETRY
        response, attempts = await call_with_retries(attempt, policy, on_retry=on_retry)
        response.attempts = attempts
        return response


# ---------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------


class RateLimit(Layer):
    """Per attempt: a permit from the model's rate limiter (if one is configured), tokens reported after."""

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        limiter = get_rate_limiter(request.model)
        if limiter is None:
            return await self.inner(request)
        estimated = estimate_tokens(request.kwargs)
        await limiter.acquire(estimated)
        response = await self.inner(request)
        limiter.record_usage(_total_tokens(response), estimated)
        return response


def _total_tokens(response: ModelResponse) -> int:
    usage = getattr(response.raw, "usage", None) if response.raw is not None else None
    if usage is not None:
        return int(getattr(usage, "total_tokens", 0) or 0)
    return response.input_tokens + response.output_tokens
