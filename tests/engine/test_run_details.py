"""What a run's page shows beyond the transcript: every model call in order, and every attempt."""

from __future__ import annotations

import pytest

import scenario
from scenario.testing import MockLLMServer
from tests.helpers.agents import EchoAgent


@pytest.mark.asyncio
async def test_model_calls_are_recorded_in_order_with_tokens_cost_latency_and_429_waits():
    with MockLLMServer() as server:
        model = scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=10)
        scenario.configure(default_model=model)
        server.fail_next(1, status=429, retry_after=0.05)  # the first call is rate-limited once, then answers
        result = await scenario.run(
            name="parcel", description="Where is my parcel?", max_turns=3,
            agents=[EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent answers"])],
        )
    calls = result.model_calls
    assert len(calls) == result.usage.calls >= 3
    assert calls[0].role == "user" and calls[-1].role == "judge"  # the simulator speaks first, the judge ends
    assert all(c.input_tokens > 0 and c.output_tokens > 0 and c.latency > 0 for c in calls)
    assert sum(c.cost_usd or 0 for c in calls) == pytest.approx(result.usage.cost_usd)
    first = calls[0]
    assert first.attempts == 2 and first.rate_limited == 1 and first.waited >= 0.05
    assert all(c.attempts == 1 and c.rate_limited == 0 for c in calls[1:])


@pytest.mark.asyncio
async def test_a_retried_run_keeps_its_attempt_history(tmp_path):
    class FlakyAgent(scenario.AgentAdapter):
        calls = 0

        async def call(self, input):
            FlakyAgent.calls += 1
            if FlakyAgent.calls == 1:
                raise ConnectionError("the agent's backend dropped the connection")
            return "fine"

    spec = scenario.Scenario(name="flaky", description="d", agents=[FlakyAgent],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed("ok")])
    result = await scenario.run_batch([spec], suite="s", retries=2, store=tmp_path / "r.db")
    [record] = result.runs
    assert record.status == "passed" and record.attempts == 2
    first, second = record.attempt_history
    assert first.status == "error" and "ConnectionError" in (first.error or "") and first.waited > 0
    assert second.status == "passed" and second.error is None and second.waited == 0
    with scenario.ResultStore(tmp_path / "r.db", readonly=True) as store:
        [stored] = store.records()
    assert [a.status for a in stored.attempt_history] == ["error", "passed"]  # kept in the store


@pytest.mark.asyncio
async def test_a_run_that_passes_first_time_has_no_attempt_history():
    spec = scenario.Scenario(name="ok", description="d", agents=[EchoAgent],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed("ok")])
    result = await scenario.run_batch([spec], suite="s")
    assert result.runs[0].attempt_history == []


def test_live_transcripts_are_published_only_for_runs_that_last(tmp_path, monkeypatch):
    import types

    import scenario.live as live
    from scenario.store import ResultStore

    clock = {"now": 100.0}
    monkeypatch.setattr(live, "time", types.SimpleNamespace(monotonic=lambda: clock["now"]))
    with ResultStore(tmp_path / "r.db") as store:
        batch = store.start_batch("s")
        sink = live.LiveSink(store, batch.id, after=0.5, every=0.5)
        run = live.LiveRun("r1", "s", "a", "default", 0)
        sink.update(run, [{"role": "user", "content": "1"}], 1)  # the run just started: nothing written
        assert store.live_runs(batch.id) == []
        clock["now"] += 0.6
        sink.update(run, [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}], 1)
        assert [len(r["messages"]) for r in store.live_runs(batch.id)] == [2]
        clock["now"] += 0.1  # too soon for another write
        sink.update(run, [{"role": "user", "content": "x"}] * 3, 2)
        assert [len(r["messages"]) for r in store.live_runs(batch.id)] == [2]
        clock["now"] += 0.5
        sink.update(run, [{"role": "user", "content": "x"}] * 4, 2)
        assert [(r["turn"], len(r["messages"])) for r in store.live_runs(batch.id)] == [(2, 4)]
        sink.finished("r1")
        assert store.live_runs(batch.id) == []
