"""run_batch: results, rollups, summary, variants, isolation, strategies, errors, retries, shards.

Scripted scenarios (no model calls) keep the big runs fast; the autopilot ones talk to the mock
model over HTTP through litellm like users' runs do.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import scenario
from scenario.batch import BatchResult, RunRecord, Scenario, run_batch
from scenario.records import run_id
from scenario.rollup import percentile
from scenario.testing import MockBehavior, MockLLMServer
from tests.helpers.signals import as_in_a_terminal

EXECUTORS = ["thread", "loop"]


class Echo(scenario.AgentAdapter):
    """Stateful on purpose: it counts its own calls, so a shared instance would show."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, input: scenario.AgentInput) -> str:
        self.calls += 1
        return f"echo {self.calls}: {input.last_new_user_message_str()}"


class Raising(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        raise RuntimeError("database unavailable")


def autopilot(name: str, criteria: str = "The agent answers", description: str = "A customer asks about a parcel.",
              **kwargs: Any) -> Scenario:
    return Scenario(name=name, description=description,
                    agents=[Echo, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[criteria])], **kwargs)


def scripted(name: str, agents: Any = None, steps: Any = None, **kwargs: Any) -> Scenario:
    return Scenario(name=name, description="scripted", agents=agents if agents is not None else [Echo()],
                    script=steps or [scenario.user("hi"), scenario.agent(), scenario.succeed()], **kwargs)


# ---------------------------------------------------------------------------------------------
# Results and rollups


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_batch_rolls_up_runs_usage_latency_and_breakdowns(configured, executor):
    specs = [autopilot("parcel"), autopilot("refund", criteria="Offers a refund [mock:fail]")]
    result = await run_batch(specs, runs=3, executor=executor, max_concurrency=4)

    assert isinstance(result, BatchResult)
    assert result.total == 6 and result.planned == 6 and result.not_started == 0
    assert result.passed_runs == 3 and result.failed_runs == 3 and result.pass_rate == pytest.approx(0.5)
    assert result.passed is False  # without min_pass_rate every run must pass
    assert [(r.scenario, r.index) for r in result.runs] == [
        ("parcel", 0), ("refund", 0), ("parcel", 1), ("refund", 1), ("parcel", 2), ("refund", 2)]
    for record in result.runs:
        assert isinstance(record, RunRecord)
        assert record.id == run_id("", record.scenario, "default", record.index)
        assert record.attempts == 1 and record.duration > 0 and record.started_at > 0
        assert record.usage.calls == 4 and record.result is not None and record.result.messages
    assert result.usage.calls == sum(r.usage.calls for r in result.runs) == 24
    assert result.usage.by_role["judge"].calls == 12 and result.usage.cost_usd > 0
    assert 0 < result.latency_p50 <= result.latency_p95 <= result.latency_p99
    assert result.by_scenario["parcel"].passed == 3 and result.by_scenario["refund"].passed == 0
    assert result.by_variant["default"].total == 6
    assert result.by_scenario_variant["refund"]["default"].failed == 3
    assert result.metadata["executor"] == executor


@pytest.mark.asyncio
async def test_min_pass_rate_applies_to_the_pooled_runs_and_per_scenario_thresholds_per_group(configured):
    specs = [autopilot("good"), autopilot("bad", criteria="Impossible [mock:fail]")]
    pooled = await run_batch(specs, runs=2, executor="loop", min_pass_rate=0.5)
    assert pooled.passed and pooled.pass_rate == pytest.approx(0.5)

    strict = await run_batch(
        [autopilot("good"), autopilot("bad", criteria="Impossible [mock:fail]", min_pass_rate=0.5)],
        runs=2, executor="loop", min_pass_rate=0.0,
    )
    assert not strict.passed
    assert strict.by_scenario["bad"].min_pass_rate == 0.5 and not strict.by_scenario["bad"].ok


def test_rollup_from_stored_records_round_trips_through_json():
    records = [
        RunRecord(id=run_id("s", "a", "default", i), suite="s", scenario="a", index=i,
                  status="passed" if i < 9 else "failed", duration=float(i + 1))
        for i in range(10)
    ]
    loaded = [RunRecord.model_validate_json(r.model_dump_json()) for r in records]
    result = BatchResult.from_records(loaded, min_pass_rate=0.9)
    assert result.passed and result.total == 10 and result.passed_runs == 9
    assert result.latency_p50 == pytest.approx(5.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([], 50) == 0.0
    assert BatchResult.from_records([]).passed is False


# ---------------------------------------------------------------------------------------------
# The summary


@pytest.mark.asyncio
async def test_summary_groups_by_scenario_and_variant_with_a_line_per_failed_run(configured):
    specs = [autopilot("parcel"), autopilot("refund", criteria="Offers a refund [mock:fail]")]
    result = await run_batch(specs, runs=2, executor="loop",
                             variants={"echo": Echo, "broken": Raising}, retries=0)
    text = result.summary()
    lines = text.splitlines()
    assert lines[0].startswith("FAILED (25% pass rate, 8 runs, $")
    assert "parcel [echo]: 2/2 passed (100%)" in text
    assert "parcel [broken]: 0/2 passed (0%)" in text
    assert "refund [echo]: 0/2 passed (0%)" in text
    failed_lines = [line for line in lines if line.startswith("  run ")]
    assert len(failed_lines) == 6
    assert any("run 0 failed: Mock judge verdict" in line for line in failed_lines)
    assert any("run 1 error: Error at step autopilot, agent adapter Raising: RuntimeError: database unavailable" in line
               for line in failed_lines)
    assert "By variant: echo 2/4 (50%" in text and "broken 0/4 (0%" in text
    assert lines[-1].startswith("Latency p50 ")


def test_summary_header_of_a_passing_batch():
    usage = scenario.Usage(calls=30, cost_usd=0.042)
    records = [RunRecord(id=str(i), scenario="refund", index=i, status="passed" if i else "failed", usage=usage if i == 1 else scenario.Usage(),
                         result=scenario.ScenarioResult(success=bool(i), reasoning="never asked for the order number"))
               for i in range(30)]
    result = BatchResult.from_records(records, min_pass_rate=0.9)
    text = result.summary()
    assert text.splitlines()[0] == "PASSED (97% pass rate, 30 runs, $0.042) — min pass rate 90%"
    assert "refund: 29/30 passed (97%)" in text
    assert "  run 0 failed: never asked for the order number" in text


# ---------------------------------------------------------------------------------------------
# Variants and fresh agents


@pytest.mark.asyncio
async def test_each_variant_runs_every_scenario_with_its_own_agent(configured):
    class Polite(Echo):
        async def call(self, input: scenario.AgentInput) -> str:
            return "Certainly! " + await super().call(input)

    specs = [autopilot("a"), autopilot("b", variants=["polite"])]
    result = await run_batch(specs, runs=2, variants={"echo": Echo, "polite": lambda: Polite()}, executor="loop")
    assert {(r.scenario, r.variant) for r in result.runs} == {("a", "echo"), ("a", "polite"), ("b", "polite")}
    assert result.total == 6 and result.passed
    polite_reply = next(r for r in result.runs if r.variant == "polite").result.messages[1]["content"]
    assert polite_reply.startswith("Certainly! echo 1:")
    listed = await run_batch([autopilot("a")], agents=[Echo, Polite], executor="loop")
    assert set(listed.by_variant) == {"Echo", "Polite"}


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_no_state_leaks_between_1000_runs(executor):
    shared = Echo()  # given as an instance: every run must get its own copy
    seen: list[str] = []

    def check(state: scenario.ScenarioState) -> None:
        # A fresh agent has answered exactly once in this run, and the conversation is this run's.
        assert state.messages[-1]["content"] == "echo 1: hi", state.messages
        assert len(state.messages) == 2
        seen.append(state.thread_id)

    specs = [scripted("iso", agents=[shared], steps=[scenario.user("hi"), scenario.agent(), check, scenario.succeed()])]
    result = await run_batch(specs, runs=1000, executor=executor, max_concurrency=200)
    assert result.passed and result.total == 1000
    assert shared.calls == 0
    assert len(set(seen)) == 1000


@pytest.mark.asyncio
async def test_factories_are_called_for_every_run_and_library_agents_are_shared(configured):
    made: list[Echo] = []

    def factory() -> Echo:
        agent = Echo()
        made.append(agent)
        return agent

    result = await run_batch([scripted("f", agents=factory)], runs=5, executor="loop")
    assert result.passed and len(made) == 5 and all(a.calls == 1 for a in made)


# ---------------------------------------------------------------------------------------------
# Strategies, in both executors


class Gauge(scenario.AgentAdapter):
    """Measures how many runs are inside the agent at once."""

    lock = threading.Lock()
    current = 0
    peak = 0
    threads: set = set()

    async def call(self, input: scenario.AgentInput) -> str:
        with Gauge.lock:
            Gauge.current += 1
            Gauge.peak = max(Gauge.peak, Gauge.current)
            Gauge.threads.add(threading.current_thread().name)
        await asyncio.sleep(0.01)
        with Gauge.lock:
            Gauge.current -= 1
        return "ok"

    @classmethod
    def reset(cls) -> None:
        cls.current = cls.peak = 0
        cls.threads = set()


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("strategy", ["max_concurrency", "sliding", "adaptive"])
async def test_every_strategy_bounds_runs_in_flight(executor, strategy):
    Gauge.reset()
    options = {
        "max_concurrency": {"max_concurrency": 3},
        "sliding": {"concurrency": scenario.SlidingWindow(3)},
        "adaptive": {"concurrency": scenario.Adaptive(initial=3, min=1, max=3)},
    }[strategy]
    result = await run_batch([scripted("g", agents=[Gauge])], runs=30, executor=executor, **options)
    assert result.passed and result.total == 30
    assert 1 < Gauge.peak <= 3
    assert result.metadata["concurrency"]["in_flight"] == 0


@pytest.mark.asyncio
async def test_thread_executor_workers_are_bounded_by_the_resource_guard():
    from scenario.runtime import worker_pool

    Gauge.reset()
    scenario.configure(max_workers=4)
    worker_pool.shutdown()
    try:
        result = await run_batch([scripted("g", agents=[Gauge])], runs=40, executor="thread", max_concurrency=40)
        assert result.passed
        assert len(Gauge.threads) <= 4 and Gauge.peak <= 4
    finally:
        worker_pool.shutdown()


@pytest.mark.asyncio
async def test_plain_gather_of_run_and_arun_stays_bounded(configured):
    from scenario.runtime import worker_pool

    scenario.configure(max_workers=6)
    worker_pool.shutdown()
    Gauge.reset()
    try:
        def call(fn: Any) -> Any:
            return fn(name="g", description="d", agents=[Gauge()], script=[scenario.user("hi"), scenario.agent(),
                                                                          scenario.succeed()])

        results = await asyncio.gather(*(call(scenario.run) for _ in range(200)),
                                       *(call(scenario.arun) for _ in range(200)))
        assert all(r.success for r in results)
        workers = {t for t in Gauge.threads if t.startswith("scenario-worker")}
        assert len(workers) <= 6
    finally:
        worker_pool.shutdown()


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_adaptive_backs_off_in_a_429_storm_and_finishes_every_run(executor):
    behavior = MockBehavior(latency=0.02, rate_limit_above=4, retry_after=0.02)
    with MockLLMServer(behavior=behavior) as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock",
                                               timeout=10),
            retry=scenario.RetryPolicy(max_attempts=30, initial_backoff=0.01, max_backoff=0.05),
        )
        adaptive = scenario.Adaptive(initial=16, min=1, max=16, cooldown=0.05)
        result = await run_batch([autopilot("storm")], runs=24, executor=executor, concurrency=adaptive)
        assert result.passed and result.total == 24
        snapshot = adaptive.snapshot()
        assert snapshot["rate_limited"] > 0 and snapshot["decreases"] > 0
        assert adaptive.limit < 16
        assert server.stats.errors_served.get(429, 0) > 0


# ---------------------------------------------------------------------------------------------
# Errors, retries and timeouts


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_5xx_exhausts_model_retries_then_the_run_retry_and_keeps_the_original_exception(configured, executor):
    specs = [autopilot("down", description="The service is down [mock:error=500]")]
    result = await run_batch(specs, runs=2, executor=executor, retries=1)
    assert result.total == 2 and result.error_runs == 2 and not result.passed
    for record in result.runs:
        assert record.status == "error" and record.attempts == 2
        assert record.error_type == "ModelCallError" and "InternalServerError" in record.error_message
        assert isinstance(record.exception, scenario.ModelCallError)
        assert type(record.exception.original).__name__ == "InternalServerError"
        assert record.exception.attempts == 3  # the model-call policy of the test configuration


@pytest.mark.asyncio
async def test_4xx_is_never_retried(configured):
    result = await run_batch([autopilot("bad", description="Bad request [mock:error=400]")], executor="loop", retries=3)
    record = result.runs[0]
    assert record.status == "error" and record.attempts == 1
    assert record.exception.attempts == 1


@pytest.mark.asyncio
async def test_agent_errors_are_recorded_and_a_bug_is_not_rerun(configured):
    calls: list[int] = []

    class Flaky(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionResetError("peer reset")  # transient: re-run the scenario
            return "fine"

    result = await run_batch([scripted("flaky", agents=Flaky)], executor="loop", retries=2)
    assert result.passed and result.runs[0].attempts == 2
    buggy = await run_batch([scripted("bug", agents=Raising)], executor="loop", retries=2)
    assert buggy.runs[0].attempts == 1 and buggy.runs[0].status == "error"
    assert isinstance(buggy.runs[0].exception, RuntimeError)


class Hangs(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        await asyncio.sleep(60)
        return "never"


class Blocks(scenario.AgentAdapter):
    def call(self, input: scenario.AgentInput) -> str:
        import time

        time.sleep(1.0)
        return "late"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_a_hanging_run_is_cancelled_at_its_timeout_and_recorded_as_timed_out(executor):
    specs = [scripted("hang", agents=Hangs), scripted("quick")]
    result = await run_batch(specs, executor=executor, timeout=0.3)
    hang = result.runs[0]
    assert hang.status == "timeout" and hang.duration < 5
    assert isinstance(hang.exception, TimeoutError)
    assert "Timed out after 0.3s" in hang.reasoning
    assert result.runs[1].status == "passed" and result.timeout_runs == 1


@pytest.mark.asyncio
async def test_a_blocking_sync_agent_past_its_timeout_is_stopped_by_the_backstop(monkeypatch):
    from scenario.batch import execute

    monkeypatch.setattr(execute, "BACKSTOP_GRACE", 0.1)
    result = await run_batch([scripted("block", agents=Blocks, timeout=0.1)], executor="thread")
    record = result.runs[0]
    assert record.status == "timeout"
    assert record.error_where in ("batch timeout backstop", "step 2 (agent)")


# ---------------------------------------------------------------------------------------------
# Stopping: fail-fast, cancellation, the hook


class Slow(scenario.AgentAdapter):
    started = 0
    unwound = 0

    async def call(self, input: scenario.AgentInput) -> str:
        Slow.started += 1
        try:
            await asyncio.sleep(0.2 if "fast" not in input.scenario_state.name else 0)
        except asyncio.CancelledError:
            Slow.unwound += 1
            raise
        return "done"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_fail_fast_cancels_runs_in_flight_and_returns_the_partial_result(executor):
    Slow.started = Slow.unwound = 0
    finished: list[RunRecord] = []
    specs = [scripted("slow", agents=Slow), scripted("broken", agents=Raising)]
    result = await run_batch(specs, runs=20, executor=executor, max_concurrency=4, on_error="fail_fast",
                             on_run_finished=finished.append)
    assert result.cancelled and result.reason.startswith("fail_fast: 'broken'")
    assert result.error_runs >= 1 and result.total < 40
    assert result.not_started > 0
    cancelled = [r for r in result.runs if r.status == "cancelled"]
    assert cancelled and all(r.error_type == "CancelledError" for r in cancelled)
    assert Slow.unwound <= len(cancelled)  # a run cancelled before its agent started has nothing to unwind
    assert sorted(r.id for r in finished) == sorted(r.id for r in result.runs if r.status != "cancelled")
    assert result.metadata["concurrency"]["in_flight"] == 0
    assert "CANCELLED" in result.summary().splitlines()[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_cancelling_the_batch_mid_way_keeps_finished_runs_and_unwinds_the_rest(executor):
    Slow.started = Slow.unwound = 0
    finished: list[RunRecord] = []
    specs = [scripted("fast one", agents=Slow), scripted("slow", agents=Slow)]
    task = asyncio.ensure_future(run_batch(specs, runs=10, executor=executor, max_concurrency=4,
                                           on_run_finished=finished.append))
    while len(finished) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    result = await task  # a cancelled batch returns what it has rather than raising
    assert result.cancelled and result.reason.startswith("interrupted")
    done = [r for r in result.runs if r.status != "cancelled"]
    assert len(done) >= 3 and sorted(r.id for r in finished) == sorted(r.id for r in done)
    in_flight = [r for r in result.runs if r.status == "cancelled"]
    assert in_flight and Slow.unwound <= len(in_flight)
    assert result.metadata["concurrency"]["in_flight"] == 0
    assert result.total == len(done) and result.not_started == 20 - len(result.runs)
    assert not result.passed


@pytest.mark.asyncio
async def test_on_run_finished_sees_each_record_before_it_is_counted_and_its_error_stops_the_batch():
    counted: list[int] = []

    async def persist(record: RunRecord) -> None:
        counted.append(record.index)
        if len(counted) == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full") as info:
        await run_batch([scripted("s")], runs=50, executor="loop", max_concurrency=2, on_run_finished=persist)
    assert len(counted) <= 5
    assert any("on_run_finished" in note for note in getattr(info.value, "__notes__", []))


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors before anything starts


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scenarios": []}, "the list is empty"),
        ({"runs": 0}, "runs=...) must be an integer >= 1"),
        ({"max_concurrency": 0}, "max_concurrency=0): must be an integer >= 1"),
        ({"executor": "process"}, "unknown executor; use 'thread'"),
        ({"on_error": "ignore"}, "use 'continue'"),
        ({"min_pass_rate": 1.5}, "between 0 and 1"),
        ({"retries": -1}, "retries=-1"),
        ({"timeout": 0}, "positive number of seconds"),
        ({"max_concurrency": 2, "concurrency": scenario.SlidingWindow(2)}, "not both"),
        ({"concurrency": 5}, "expected a strategy"),
        ({"shard_index": 2, "shard_count": 2}, "0 <= shard_index < shard_count"),
        ({"processes": 0}, "processes=0"),
        ({"variants": {"x": Echo}, "agents": [Echo]}, "not both"),
        ({"variants": {}}, "at least one variant"),
    ],
)
async def test_bad_arguments_fail_before_anything_runs(kwargs, message):
    made: list[int] = []
    spec = scripted("s", agents=lambda: made.append(1) or Echo())
    arguments = {"scenarios": [spec], **kwargs}
    with pytest.raises(scenario.ScenarioConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await run_batch(**arguments)
    assert len(made) <= 1  # at most the up-front probe; no run started


@pytest.mark.asyncio
async def test_bad_specs_and_agents_fail_before_anything_runs(mock_server):
    requests_before = mock_server.stats.requests

    def broken_factory() -> Any:
        raise KeyError("API_TOKEN")

    with pytest.raises(scenario.ScenarioConfigError, match="making the agents raised KeyError"):
        await run_batch([autopilot("ok"), scripted("broken", agents=broken_factory)])
    with pytest.raises(scenario.ScenarioConfigError, match="two scenarios are named 'a'"):
        await run_batch([scripted("a"), scripted("a")])
    with pytest.raises(scenario.ScenarioConfigError, match="not a scenario.Scenario"):
        await run_batch([{"name": "a"}])
    with pytest.raises(scenario.ScenarioConfigError, match="pass a list"):
        await run_batch(scripted("a"))
    with pytest.raises(scenario.ScenarioConfigError, match="no agent under test"):
        await run_batch([Scenario(name="x", description="d", agents=[scenario.UserSimulatorAgent()])])
    with pytest.raises(scenario.ScenarioConfigError, match=r"variants \['nope'\] are not in the batch"):
        await run_batch([scripted("a", variants=["nope"])])

    class HoldsALock(Echo):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    with pytest.raises(scenario.ScenarioConfigError, match="cannot be copied for each run"):
        await run_batch([scripted("lock", agents=[HoldsALock()])])
    with pytest.raises(scenario.ScenarioConfigError, match="returned int"):
        await run_batch([scripted("int", agents=lambda: 3)])
    with pytest.raises(scenario.ScenarioConfigError, match="runs must be an integer >= 1"):
        Scenario(name="x", description="d", runs=0)
    with pytest.raises(scenario.ScenarioConfigError, match="name must be a non-empty string"):
        Scenario(name="", description="d")
    assert mock_server.stats.requests == requests_before


# ---------------------------------------------------------------------------------------------
# Shards, resume, processes, the single-run helpers


@pytest.mark.asyncio
async def test_shards_partition_the_plan_and_skip_leaves_out_finished_ids():
    specs = [scripted("a"), scripted("b")]
    shards = [await run_batch(specs, runs=5, executor="loop", shard_index=i, shard_count=3) for i in range(3)]
    ids = [r.id for shard in shards for r in shard.runs]
    assert len(ids) == len(set(ids)) == 10
    assert all(shard.metadata["shard"]["count"] == 3 for shard in shards)
    everything = {run_id("", s, "default", i) for s in "ab" for i in range(5)}
    assert set(ids) == everything

    done = {r.id for r in shards[0].runs}
    rest = await run_batch(specs, runs=5, executor="loop", skip=done)
    assert {r.id for r in rest.runs} == everything - done and rest.metadata["skipped"] == len(done)


@pytest.mark.asyncio
async def test_processes_spread_runs_and_stream_records_back_to_the_hook(configured):
    # Worker threads keep idle loops between batch runs; the forked workers inherit them and must
    # leave them (and the model loop) working for the parent.
    assert (await run_batch([autopilot("before")], runs=4, executor="thread")).passed
    finished: list[RunRecord] = []
    specs = [scripted("a"), scripted("b", agents=Raising)]
    result = await run_batch(specs, runs=6, executor="loop", processes=2, on_run_finished=finished.append)
    assert result.total == 12 and result.passed_runs == 6 and result.error_runs == 6
    assert len(finished) == 12 and result.metadata["processes"] == 2
    assert [r.index for r in result.runs if r.scenario == "a"] == list(range(6))
    assert all(r.error_message == "database unavailable" for r in result.runs if r.scenario == "b")
    after = await run_batch([autopilot("after")], runs=4, executor="thread", timeout=8)
    assert after.passed, after.summary()
    assert max(r.duration for r in after.runs) < 5


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_cancelling_a_multi_process_batch_stops_the_workers_and_keeps_finished_runs(executor):
    finished: list[RunRecord] = []
    specs = [scripted("fast one"), scripted("slow", agents=Hangs)]
    task = asyncio.ensure_future(run_batch(specs, runs=4, executor=executor, processes=2, max_concurrency=8,
                                           on_run_finished=finished.append))
    while len(finished) < 4:
        await asyncio.sleep(0.02)
    task.cancel()
    result = await asyncio.wait_for(task, 20)
    assert result.cancelled and result.reason.startswith("interrupted")
    assert result.total == 4 and result.cancelled_runs == 4
    assert all(r.status == "cancelled" for r in result.runs if r.scenario == "slow")
    # Every worker process said goodbye with nothing left running.
    assert result.metadata["processes"] == 2
    assert [w.get("runs_left") for w in result.metadata["workers"]] == [0, 0]


@pytest.mark.asyncio
async def test_a_scenario_spec_runs_once_like_run_and_arun(configured):
    spec = autopilot("once")
    assert (await spec.run()).success
    assert (await spec.arun()).success


@pytest.mark.asyncio
async def test_batch_and_run_spans_carry_status_and_attempts(configured):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = provider, trace.Once()
    trace._TRACER_PROVIDER_SET_ONCE._done = True
    try:
        await run_batch([scripted("s")], runs=2, executor="thread")
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved
        provider.shutdown()
    spans = exporter.get_finished_spans()
    batch = [s for s in spans if s.name == "scenario.batch"]
    runs = [s for s in spans if s.name == "scenario.batch.run"]
    assert len(batch) == 1 and len(runs) == 2
    assert all(s.attributes["scenario.attempts"] == 1 and s.attributes["scenario.status"] == "passed" for s in runs)
    engine_runs = [s for s in spans if s.name == "scenario.run"]
    assert {s.parent.span_id for s in engine_runs} == {s.context.span_id for s in runs}


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", EXECUTORS)
async def test_rate_limits_pace_the_model_calls_of_every_run(configured, executor):
    from scenario.concurrency.rate_limits import get_rate_limiter, set_rate_limits

    set_rate_limits({"openai/*": scenario.RateLimit(requests_per_minute=600)})
    try:
        result = await run_batch([autopilot("paced")], runs=3, executor=executor)
        limiter = get_rate_limiter("openai/gpt-4o-mini")
        assert result.passed and limiter is not None
        # 12 requests were taken from the shared bucket (it refills at 10/s).
        assert limiter.snapshot()["requests_available"] < 600
    finally:
        set_rate_limits(None)


CTRL_C_SCRIPT = r"""
import asyncio, sys
import scenario

class Slow(scenario.AgentAdapter):
    async def call(self, input):
        if "slow" in input.scenario_state.name:
            await asyncio.sleep(30)
        return "ok"

def finished(record):
    print("finished", record.scenario, record.index, flush=True)

async def main():
    specs = [scenario.Scenario(name=n, description="d", agents=[Slow],
                               script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
             for n in ("quick", "slow")]
    result = await scenario.run_batch(specs, runs=3, executor=sys.argv[1], max_concurrency=6,
                                      on_run_finished=finished)
    print("RESULT", result.cancelled, result.total, result.cancelled_runs, flush=True)
    print(result.summary().splitlines()[0], flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("executor", EXECUTORS)
def test_ctrl_c_returns_the_partial_result_with_every_finished_run(tmp_path, executor):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "batch_ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), executor], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"),
                            preexec_fn=as_in_a_terminal)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while sum(1 for line in lines if line.startswith("finished")) < 3 and time.monotonic() < deadline:
        lines.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines += out.splitlines()
    result_line = next(line for line in lines if line.startswith("RESULT"))
    assert result_line == "RESULT True 3 3", (lines, err)
    assert any(line.startswith("FAILED, CANCELLED (100% pass rate, 3 runs") for line in lines), lines
    assert proc.returncode == 0, err


@pytest.mark.asyncio
async def test_a_strategy_that_fails_to_acquire_surfaces_instead_of_a_short_batch():
    class Broken(scenario.SlidingWindow):
        async def acquire(self) -> None:
            raise RuntimeError("strategy backend down")

    with pytest.raises(RuntimeError, match="strategy backend down"):
        await run_batch([scripted("s")], runs=3, executor="loop", concurrency=Broken(2))
