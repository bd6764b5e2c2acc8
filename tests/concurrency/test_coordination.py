"""One quota and one concurrency signal for a batch spread over processes: the rate-limit seam
(PermitSource, CoordinatedLimiter, the even-share fallback, drained restarts), processes=N
reserving from the parent, 429s seen by forked workers reaching the parent's Adaptive, and the
caller's trace context reaching a worker's run spans."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import scenario
from scenario.batch import Scenario, run_batch
from scenario.concurrency.rate_limits import (
    CoordinatedLimiter,
    PermitSource,
    RateLimit,
    RateLimiter,
    coordinate_rate_limits,
    get_rate_limiter,
    get_rate_limits,
    set_rate_limits,
)
from scenario.testing import MockBehavior, MockLLMServer


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return "ok"


class FakeCoordinator(PermitSource):
    """Answers from a real limiter, like a coordinator does, and logs every call."""

    def __init__(self, limit: RateLimit, *, hang: bool = False) -> None:
        self.limiter = RateLimiter(limit)
        self.hang = hang
        self.calls: list[tuple[Any, ...]] = []

    async def reserve(self, key: str, tokens: int) -> float:
        self.calls.append(("reserve", key, tokens))
        if self.hang:
            await asyncio.sleep(3600)
        return self.limiter.reserve(tokens)

    def refund(self, key: str, tokens: int) -> None:
        self.calls.append(("refund", key, tokens))
        self.limiter.refund(tokens)

    def record_usage(self, key: str, actual_tokens: int, estimated_tokens: int) -> None:
        self.calls.append(("usage", key, actual_tokens, estimated_tokens))
        self.limiter.record_usage(actual_tokens, estimated_tokens)


@pytest.fixture(autouse=True)
def _no_rate_limits():
    yield
    set_rate_limits(None)


def test_a_drained_limiter_starts_empty_and_a_fresh_one_full():
    assert RateLimiter(RateLimit(requests_per_minute=60)).reserve() == 0.0
    assert RateLimiter(RateLimit(requests_per_minute=60), drained=True).reserve() == pytest.approx(1.0, abs=0.05)


@pytest.mark.asyncio
async def test_coordinated_limits_reserve_from_the_coordinator_and_sleep_locally():
    set_rate_limits({"openai/*": RateLimit(requests_per_minute=60, tokens_per_minute=6000)})
    coordinator = FakeCoordinator(RateLimit(requests_per_minute=60, tokens_per_minute=6000))
    coordinate_rate_limits(coordinator, parts=2)
    limiter = get_rate_limiter("openai/gpt-4o-mini")
    assert isinstance(limiter, CoordinatedLimiter) and limiter.key == "openai/*"
    assert await limiter.acquire(100) == 0.0
    limiter.record_usage(150, 100)
    assert coordinator.calls == [("reserve", "openai/*", 100), ("usage", "openai/*", 150, 100)]
    # Past the burst the coordinator says "wait": the worker sleeps, and a cancelled wait gives
    # the permit back to the whole batch.
    coordinator.limiter = RateLimiter(RateLimit(requests_per_minute=60), drained=True)
    task = asyncio.ensure_future(limiter.acquire(7))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert coordinator.calls[-1] == ("refund", "openai/*", 7)


@pytest.mark.asyncio
async def test_an_unreachable_coordinator_falls_back_to_an_even_share_with_a_warning(caplog):
    set_rate_limits({"openai/*": RateLimit(requests_per_minute=120)})
    coordinate_rate_limits(FakeCoordinator(RateLimit(requests_per_minute=120), hang=True), parts=4)
    limiter = get_rate_limiter("openai/gpt-4o-mini")
    limiter._timeout = 0.05  # noqa: SLF001 - the default waits seconds
    with caplog.at_level(logging.WARNING, logger="scenario.concurrency.rate_limits"):
        waited = await limiter.acquire()
    assert limiter.fallen_back
    # 1/4 of 120/min, starting drained: the next permit is 2 s away, never a burst over the quota.
    assert waited == pytest.approx(2.0, abs=0.2)
    assert "coordinator is unreachable" in caplog.text and "1/4 of the limit" in caplog.text


@pytest.mark.asyncio
async def test_processes_reserve_every_model_call_from_the_parents_limiter(mock_server):
    scenario.configure(default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=mock_server.base_url,
                                                          api_key="mock", timeout=10),
                       rate_limits={"openai/*": RateLimit(requests_per_minute=60)})
    spec = Scenario(name="one call", description="d", agents=[Echo, scenario.UserSimulatorAgent()],
                    script=[scenario.user(), scenario.agent(), scenario.succeed()])
    started = time.monotonic()
    result = await run_batch([spec], runs=20, processes=2, executor="loop")
    elapsed = time.monotonic() - started
    assert result.passed_runs == 20 and result.metadata["processes"] == 2
    # The parent's limiter paid for all 20 calls (less what refilled meanwhile, 1/s); workers
    # limiting on their own would have left it full at 60.
    available = get_rate_limits().limiter("openai/*").snapshot()["requests_available"]
    assert available <= 60 - 20 + elapsed + 1


@pytest.mark.asyncio
async def test_adaptive_in_the_parent_hears_the_429s_of_forked_workers():
    behavior = MockBehavior(latency=0.02, rate_limit_above=2, retry_after=0.02)
    with MockLLMServer(behavior=behavior) as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock",
                                               timeout=10),
            retry=scenario.RetryPolicy(max_attempts=30, initial_backoff=0.01, max_backoff=0.05),
        )
        adaptive = scenario.Adaptive(initial=16, min=1, max=16, cooldown=0.05)
        spec = Scenario(name="storm", description="d",
                        agents=[Echo, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["answers"])])
        result = await run_batch([spec], runs=16, processes=2, executor="loop", concurrency=adaptive)
        assert result.passed_runs == 16
        assert server.stats.errors_served.get(429, 0) > 0
        assert adaptive.snapshot()["rate_limited"] > 0 and adaptive.limit < 16


@pytest.mark.asyncio
async def test_a_workers_run_spans_continue_the_callers_trace_from_its_traceparent():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from scenario.batch import prepare_batch
    from scenario.batch.worker import WorkerSession, load_record, parent_from_traceparent, traceparent_of

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = provider, trace.Once()
    trace._TRACER_PROVIDER_SET_ONCE._done = True
    try:
        spec = Scenario(name="s", description="d", agents=[Echo], script=[scenario.user("hi"), scenario.succeed()])
        config = prepare_batch([spec], runs=1, executor="loop")
        driver_span = provider.get_tracer("test").start_span("caller")
        carrier = traceparent_of(driver_span)
        assert set(carrier) == {"traceparent"}
        sent: list[Any] = []
        session = WorkerSession(config, sent.append, parent_from_traceparent(carrier))
        await asyncio.wait({session.start(config.units[0])})
        driver_span.end()
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved
        provider.shutdown()
    (kind, payload), = [m for m in sent if m[0] == "record"]
    assert load_record(payload).status == "passed"
    run_span = next(s for s in exporter.get_finished_spans() if s.name == "scenario.batch.run")
    assert run_span.context.trace_id == driver_span.context.trace_id
    assert run_span.parent.span_id == driver_span.context.span_id


@pytest.mark.asyncio
async def test_a_worker_process_signalled_alone_hands_its_runs_back_and_each_run_ends_once(monkeypatch):
    import multiprocessing
    import os
    import signal

    from scenario.batch.backends import processes as processes_backend

    monkeypatch.setattr(processes_backend, "SELF_STOP_DELAY", 0.2)  # inherited by the forked workers

    class Slow(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            await asyncio.sleep(0.2)
            return "ok"

    seen: list[Any] = []
    spec = Scenario(name="slow", description="d", agents=[Slow], script=[scenario.user("hi"), scenario.agent(),
                                                                        scenario.succeed()])
    task = asyncio.ensure_future(run_batch([spec], runs=30, processes=2, executor="loop", max_concurrency=6,
                                           on_run_finished=seen.append))
    while len(seen) < 4:
        await asyncio.sleep(0.02)
    workers = [p for p in multiprocessing.active_children() if p.name.startswith("scenario-batch-")]
    assert len(workers) == 2
    os.kill(workers[0].pid, signal.SIGTERM)
    result = await asyncio.wait_for(task, 60)
    assert result.passed_runs == 30 and not result.cancelled
    assert len(seen) == len({r.id for r in seen}) == 30
    assert result.metadata["workers_lost"] == 1 and result.metadata["runs_resent"] >= 1
