"""Each layer of the model call against a fake inner call: no server, no litellm.

The layers (scenario/llm/layers.py) each have one job; these tests hold each to it, then check the
assembled stack keeps the order that matters (a replay opens no span and records one cached call).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import scenario
from scenario.concurrency.strategies import SlidingWindow, use_strategy
from scenario.errors import ModelCallError
from scenario.events import ModelCallFinished, RateLimited, RetryScheduled, publish, subscribe, subscribed
from scenario.llm import layers
from scenario.llm.call import ModelRequest, ModelResponse
from scenario.llm.client import build_stack
from scenario.llm.retry import RetryEvent, RetryPolicy
from scenario.run_context import RunContext, current_run


class Fake429(Exception):
    status_code = 429


class Fake401(Exception):
    status_code = 401


class FakeInner:
    """A fake inner call: answers from a script of replies/exceptions and records each request."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes) or ["hello"]
        self.requests: list[ModelRequest] = []

    async def __call__(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, ModelResponse):
            return outcome
        return ModelResponse(content=outcome, model="fake/model-1", input_tokens=7, output_tokens=3, cost_usd=0.25)


def _request(role: str = "judge", **kwargs: Any) -> ModelRequest:
    return ModelRequest(role, {"model": "fake/model", "messages": [{"role": "user", "content": "hi"}], **kwargs}, 10.0)


@pytest.fixture
def run_context():
    run = RunContext(name="layers", thread_id="t")
    token = current_run.set(run)
    yield run
    current_run.reset(token)


@pytest.fixture
def heard():
    """Every model-path event published while the test runs (scoped: other tests hear nothing)."""
    events: list[Any] = []
    with subscribed(ModelCallFinished, events.append), subscribed(RateLimited, events.append), \
            subscribed(RetryScheduled, events.append):
        yield events


def _no_sleep_policy(max_attempts: int = 4) -> RetryPolicy:
    async def no_sleep(_: float) -> None:
        return None

    return RetryPolicy(max_attempts=max_attempts, initial_backoff=0.5, max_backoff=0.5, jitter=0.0, sleep=no_sleep)


# -- replay cache ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_replay_cache_asks_once_then_replays_as_a_cached_free_answer(tmp_path):
    scenario.configure(cache_key="layers", cache_dir=str(tmp_path))
    inner, hits = FakeInner("first answer"), []
    layer = layers.ReplayCache(inner, on_hit=lambda request, response: hits.append(response))

    first = await layer(_request())
    second = await layer(_request())

    assert len(inner.requests) == 1
    assert (first.content, first.cached, first.cost_usd) == ("first answer", False, 0.25)
    assert (second.content, second.cached, second.cost_usd, second.input_tokens) == ("first answer", True, 0.0, 7)
    assert hits == [second]


@pytest.mark.asyncio
async def test_replay_cache_without_a_key_always_asks(tmp_path):
    scenario.configure(cache_dir=str(tmp_path))
    inner = FakeInner("x")
    layer = layers.ReplayCache(inner, on_hit=lambda *_: pytest.fail("no key, no hit"))
    await layer(_request())
    await layer(_request())
    assert len(inner.requests) == 2


@pytest.mark.asyncio
async def test_replay_cache_keys_on_what_decides_the_answer_not_on_credentials(tmp_path):
    scenario.configure(cache_key="layers", cache_dir=str(tmp_path))
    inner = FakeInner("x")
    layer = layers.ReplayCache(inner, on_hit=lambda *_: None)
    await layer(_request(api_key="one"))
    await layer(_request(api_key="two"))  # same question, other key: a hit
    await layer(_request(temperature=0.9))  # another sampling parameter: a miss
    assert len(inner.requests) == 2


# -- explaining errors -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_explain_errors_raises_model_call_error_keeping_the_original_and_attempts():
    failure = Fake401("invalid api key provided")
    failure.scenario_attempts = 1  # type: ignore[attr-defined]
    layer = layers.ExplainErrors(FakeInner(failure))
    with pytest.raises(ModelCallError) as caught:
        await layer(_request())
    assert caught.value.original is failure and caught.value.__cause__ is failure
    assert caught.value.kind == "auth" and caught.value.attempts == 1
    assert "fake/model" in str(caught.value)


@pytest.mark.asyncio
async def test_explain_errors_passes_answers_through_untouched():
    answer = ModelResponse(content="fine")
    assert await layers.ExplainErrors(FakeInner(answer))(_request()) is answer


# -- accounting --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_accounting_records_usage_call_and_attempts_and_announces_the_call(run_context, heard):
    async def inner(request: ModelRequest) -> ModelResponse:
        # Two retries happened below this layer, one of them for a rate limit.
        for classification, sleep in (("rate_limit", 1.5), ("server", 0.5)):
            for observer in request.retry_observers:
                observer(RetryEvent(attempt=1, exception=Fake429(), classification=classification, sleep=sleep))
        return ModelResponse(content="ok", model="fake/model-1", input_tokens=7, output_tokens=3, cost_usd=0.25,
                             attempts=3)

    response = await layers.Accounting(inner)(_request("user"))

    assert response.content == "ok"
    assert (run_context.model_attempts, run_context.retries, run_context.rate_limited) == (3, 2, 1)
    [call] = run_context.model_calls
    assert (call.role, call.model, call.input_tokens, call.output_tokens, call.cost_usd) == ("user", "fake/model-1", 7, 3, 0.25)
    assert (call.attempts, call.rate_limited, call.waited, call.error) == (3, 1, 2.0, None)
    assert run_context.usage.by_role["user"].calls == 1
    [finished] = [e for e in heard if isinstance(e, ModelCallFinished)]
    assert (finished.role, finished.model, finished.attempts, finished.ok, finished.cached) == ("user", "fake/model-1", 3, True, False)


@pytest.mark.asyncio
async def test_accounting_records_a_failed_call_without_usage_and_reraises_the_original(run_context, heard):
    failure = Fake401("nope")
    failure.scenario_attempts = 2  # type: ignore[attr-defined]
    with pytest.raises(Fake401):
        await layers.Accounting(FakeInner(failure))(_request())
    [call] = run_context.model_calls
    assert (call.error, call.attempts, call.model) == ("Fake401: nope", 2, "fake/model")
    assert run_context.model_attempts == 0 and run_context.usage.calls == 0
    [finished] = heard
    assert finished.error is failure and not finished.ok


def test_a_cache_hit_is_recorded_as_a_free_cached_call(run_context, heard):
    layers.record_cache_hit(_request("judge"), ModelResponse(content="x", model="m", input_tokens=5, output_tokens=2,
                                                              cached=True, cost_usd=0.0))
    [call] = run_context.model_calls
    assert (call.cached, call.cost_usd, call.latency, call.input_tokens) == (True, 0.0, 0.0, 5)
    assert run_context.usage.cached_calls == 1
    assert heard[0].cached


# -- debug log ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_debug_log_prints_request_and_answer_with_credentials_hidden(capsys):
    scenario.configure(debug=True)
    await layers.DebugLog(FakeInner("the answer"))(_request(api_key="sk-secret", api_base="https://u:p@h.test/v1"))
    err = capsys.readouterr().err
    assert "judge -> fake/model" in err and "the answer" in err
    assert "sk-secret" not in err and "u:p@" not in err


@pytest.mark.asyncio
async def test_debug_log_is_silent_unless_asked(capsys):
    await layers.DebugLog(FakeInner("the answer"))(_request())
    assert capsys.readouterr().err == ""


# -- span --------------------------------------------------------------------------------------


@pytest.fixture
def exporter(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(layers.telemetry, "get_tracer", lambda: provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


@pytest.mark.asyncio
async def test_span_covers_the_call_with_gen_ai_attributes_and_retry_events(exporter):
    async def inner(request: ModelRequest) -> ModelResponse:
        for observer in request.retry_observers:
            observer(RetryEvent(attempt=1, exception=Fake429("slow down"), classification="rate_limit", sleep=0.1))
        return ModelResponse(content="ok", model="fake/model-1", input_tokens=7, output_tokens=3, cost_usd=0.25,
                             attempts=2)

    await layers.Span(inner)(_request("user", temperature=0.2))

    [span] = exporter.get_finished_spans()
    assert span.name == "chat fake/model"
    attributes = dict(span.attributes)
    assert attributes["gen_ai.request.model"] == "fake/model" and attributes["scenario.role"] == "user"
    assert attributes["gen_ai.usage.input_tokens"] == 7 and attributes["scenario.attempts"] == 2
    assert [event.name for event in span.events] == ["retry"]


@pytest.mark.asyncio
async def test_span_records_the_provider_error_and_the_attempts(exporter):
    failure = Fake401("nope")
    failure.scenario_attempts = 1  # type: ignore[attr-defined]
    with pytest.raises(Fake401):
        await layers.Span(FakeInner(failure))(_request())
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.attributes["scenario.attempts"] == 1


@pytest.mark.asyncio
async def test_span_is_closed_when_the_call_is_cancelled(exporter):
    async def never(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(3600)
        raise AssertionError

    task = asyncio.ensure_future(layers.Span(never)(_request()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(exporter.get_finished_spans()) == 1


# -- retry -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_retry_tries_again_on_429_announcing_each_rate_limit_and_retry(heard):
    scenario.configure(retry=_no_sleep_policy())
    inner, seen = FakeInner(Fake429(), Fake429(), "third time"), []
    request = _request()
    request.retry_observers.append(seen.append)

    response = await layers.Retry(inner)(request)

    assert (response.content, response.attempts, len(inner.requests)) == ("third time", 3, 3)
    assert [e.classification for e in seen] == ["rate_limit", "rate_limit"]
    assert [type(e).__name__ for e in heard] == ["RateLimited", "RetryScheduled", "RateLimited", "RetryScheduled"]
    assert heard[1].role == "judge" and heard[1].kind == "rate_limit" and heard[1].attempt == 1
    assert (heard[0].role, heard[0].model) == ("judge", "fake/model")


@pytest.mark.asyncio
async def test_retry_never_repeats_a_client_error():
    scenario.configure(retry=_no_sleep_policy())
    inner = FakeInner(Fake401("bad key"), "unreachable")
    with pytest.raises(Fake401) as caught:
        await layers.Retry(inner)(_request())
    assert len(inner.requests) == 1 and caught.value.scenario_attempts == 1


@pytest.mark.asyncio
async def test_rate_limits_reach_the_current_strategy_through_events():
    scenario.configure(retry=_no_sleep_policy())
    strategy = SlidingWindow(4)
    with use_strategy(strategy):
        await layers.Accounting(layers.Retry(FakeInner(Fake429(), "ok")))(_request())
    snapshot = strategy.snapshot()
    assert snapshot["rate_limited"] == 1


# -- rate limit --------------------------------------------------------------------------------


class FakeLimiter:
    def __init__(self) -> None:
        self.log: list[tuple[str, int, int | None]] = []

    async def acquire(self, estimated: int) -> None:
        self.log.append(("acquire", estimated, None))

    def record_usage(self, used: int, estimated: int) -> None:
        self.log.append(("used", used, estimated))


@pytest.mark.asyncio
async def test_rate_limit_takes_a_permit_per_attempt_and_reports_the_tokens_used(monkeypatch):
    limiter = FakeLimiter()
    monkeypatch.setattr(layers, "get_rate_limiter", lambda model: limiter if model == "fake/model" else None)
    raw = types.SimpleNamespace(usage=types.SimpleNamespace(total_tokens=42))
    inner = FakeInner(ModelResponse(content="ok", input_tokens=1, output_tokens=1, raw=raw))

    await layers.RateLimit(inner)(_request(max_tokens=100))

    [(_, estimated, _none), used] = limiter.log
    assert estimated > 100  # the prompt's characters / 4 plus max_tokens
    assert used == ("used", 42, estimated)


@pytest.mark.asyncio
async def test_rate_limit_without_a_limiter_only_passes_through(monkeypatch):
    monkeypatch.setattr(layers, "get_rate_limiter", lambda model: None)
    inner = FakeInner("ok")
    assert (await layers.RateLimit(inner)(_request())).content == "ok"


# -- the assembled stack -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_stack_replays_without_span_retry_or_second_call_record(tmp_path, run_context, exporter):
    scenario.configure(cache_key="stack", cache_dir=str(tmp_path), retry=_no_sleep_policy())
    inner = FakeInner(Fake429(), "answer")
    stack = build_stack(inner)

    first = await stack(_request())
    second = await stack(_request())

    assert (first.attempts, first.cached, second.cached, second.content) == (2, False, True, "answer")
    assert len(inner.requests) == 2  # the 429 and its retry; the replay asked nobody
    assert len(exporter.get_finished_spans()) == 1
    assert [(c.cached, c.attempts) for c in run_context.model_calls] == [(False, 2), (True, 1)]


@pytest.mark.asyncio
async def test_the_stack_raises_model_call_error_after_recording_the_failure(run_context):
    scenario.configure(retry=_no_sleep_policy(max_attempts=2))
    stack = build_stack(FakeInner(Fake429()), replay=False)
    with pytest.raises(ModelCallError) as caught:
        await stack(_request())
    assert caught.value.kind == "rate_limit" and caught.value.attempts == 2
    [call] = run_context.model_calls
    assert call.attempts == 2 and call.rate_limited == 1 and call.error.startswith("Fake429")


# -- events ------------------------------------------------------------------------------------


def test_process_wide_subscribers_hear_every_event_until_they_unsubscribe():
    heard: list[Any] = []
    unsubscribe = subscribe(RateLimited, heard.append)
    try:
        publish(RateLimited(1.0))
        publish(RetryScheduled(attempt=1, kind="server", sleep=0.1))  # another type: not heard
    finally:
        unsubscribe()
    publish(RateLimited(2.0))
    unsubscribe()  # idempotent
    assert [e.retry_after for e in heard] == [1.0]


@pytest.mark.asyncio
async def test_scoped_subscribers_hear_only_their_own_context():
    mine: list[Any] = []

    async def elsewhere() -> None:
        publish(RateLimited(9.0))

    task = asyncio.ensure_future(elsewhere())  # created outside the scope: not heard
    with subscribed(RateLimited, mine.append):
        await task
        publish(RateLimited(1.0))
        await asyncio.to_thread(publish, RateLimited(2.0))  # a copied context: heard
    publish(RateLimited(3.0))
    assert [e.retry_after for e in mine] == [1.0, 2.0]


def test_a_failing_subscriber_is_logged_and_does_not_stop_the_others(caplog):
    heard: list[Any] = []

    def broken(event: Any) -> None:
        raise RuntimeError("observer bug")

    with subscribed(RateLimited, broken), subscribed(RateLimited, heard.append):
        publish(RateLimited(1.0))
    assert len(heard) == 1 and "observer bug" in caplog.text
