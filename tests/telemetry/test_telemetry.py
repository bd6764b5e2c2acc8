"""OpenTelemetry spans and the cost rollup: one tree per scenario, the same from run and arun."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import sys
import warnings
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import scenario
from scenario.telemetry import tracer as telemetry
from scenario.telemetry.tree import SpanNode, build_forest, render_tree
from scenario.testing import MockLLMServer
from tests.helpers.agents import EXECUTORS, EchoAgent, RaisingAgent, SyncEchoAgent

TIMING_AND_ID_ATTRIBUTES = {"scenario.thread_id", "scenario.total_time", "scenario.agent_time"}


# -- fixtures -------------------------------------------------------------------------------------
def _install_global_provider(provider: Any) -> tuple[Any, Any]:
    """Install ``provider`` as the application's global provider; return what to restore.

    The OpenTelemetry API lets a process set its provider once; tests need a fresh one each."""
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)
    return saved


def _restore_global_provider(saved: tuple[Any, Any]) -> None:
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


@pytest.fixture
def app_provider():
    """An application-installed SDK provider exporting to memory (what users with Jaeger,
    Langfuse... have, minus the network)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = _install_global_provider(provider)
    try:
        yield provider, exporter
    finally:
        _restore_global_provider(saved)
        provider.shutdown()


@pytest.fixture
def spans(app_provider) -> InMemorySpanExporter:
    return app_provider[1]


@pytest.fixture
def no_provider():
    """The application installed nothing (the API's proxy provider is in place)."""
    saved = _install_global_provider(None)
    try:
        yield
    finally:
        _restore_global_provider(saved)


@pytest.fixture
def outer_tracer(app_provider):
    return app_provider[0].get_tracer("the-application")


def _agents(criteria: list[str] | None = None, agent: Any = None) -> list[Any]:
    return [agent or EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=criteria or ["is polite"])]


def _forest(exporter: InMemorySpanExporter) -> list[SpanNode]:
    return build_forest(exporter.get_finished_spans())


def _scenario_roots(exporter: InMemorySpanExporter) -> list[SpanNode]:
    return [node for root in _forest(exporter) for node in root.walk() if node.name == telemetry.SPAN_RUN]


# -- the tree ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_one_tree_per_scenario_under_the_callers_span(executor, configured, spans, outer_tracer):
    with outer_tracer.start_as_current_span("ci job") as outer:
        result = await EXECUTORS[executor](name="refund", description="A customer wants a refund.", agents=_agents())
    assert result.success, result.reasoning

    (top,) = _forest(spans)
    assert top.name == "ci job" and top.span_id == f"{outer.get_span_context().span_id:016x}"
    (root,) = top.children
    assert root.name == "scenario.run"
    assert {n.trace_id for n in root.walk()} == {top.trace_id}
    attrs = root.attributes
    assert attrs["scenario.name"] == "refund"
    assert attrs["scenario.description"] == "A customer wants a refund."
    assert attrs["scenario.thread_id"] == result.thread_id
    assert attrs["scenario.success"] is True and attrs["scenario.verdict"] == "success"
    assert attrs["scenario.usage.calls"] == 4 == result.usage.calls
    assert attrs["scenario.usage.input_tokens"] == result.usage.input_tokens
    assert attrs["scenario.usage.output_tokens"] == result.usage.output_tokens
    assert attrs[telemetry.ATTR_ROLLUP_COST] == pytest.approx(result.usage.cost_usd, abs=1e-12)
    assert attrs["scenario.usage.judge.calls"] == 2 and attrs["scenario.usage.user.calls"] == 2
    # The rollup is not in the GenAI namespace: summing gen_ai.usage.* over the trace counts each
    # token and each cent once, on the model-call spans.
    assert not any(key.startswith("gen_ai.usage.") for key in attrs)
    spans_with_usage = [n for n in top.walk() if "gen_ai.usage.input_tokens" in n.attributes]
    assert spans_with_usage and all(n.name.startswith("chat ") for n in spans_with_usage)
    assert sum(n.attributes["gen_ai.usage.input_tokens"] for n in spans_with_usage) == result.usage.input_tokens
    assert sum(n.attributes["gen_ai.usage.output_tokens"] for n in spans_with_usage) == result.usage.output_tokens
    assert sum(n.attributes.get(telemetry.ATTR_COST, 0.0) for n in spans_with_usage) == pytest.approx(
        result.usage.cost_usd, abs=1e-12)

    assert [t.name for t in root.children] == ["scenario.turn", "scenario.turn"]
    assert [t.attributes["scenario.turn"] for t in root.children] == [0, 1]
    for turn in root.children:
        assert [a.name for a in turn.children] == [
            "invoke_agent UserSimulatorAgent", "invoke_agent EchoAgent", "invoke_agent JudgeAgent",
        ]
        roles = [a.attributes["scenario.role"] for a in turn.children]
        assert roles == ["user", "agent", "judge"]
        for agent_span in turn.children:
            assert agent_span.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert agent_span.attributes["gen_ai.agent.name"] == agent_span.name.split(" ", 1)[1]
        user, agent, judge = turn.children
        assert agent.children == []  # the echo agent calls no model
        for library_agent in (user, judge):
            (model_call,) = library_agent.children  # nested under the agent span, both executors
            assert model_call.name == "chat openai/gpt-4o-mini"
            a = model_call.attributes
            assert a["gen_ai.operation.name"] == "chat"
            assert a["gen_ai.provider.name"] == "openai"
            assert a["gen_ai.request.model"] == "openai/gpt-4o-mini"
            assert a["gen_ai.response.model"] == "gpt-4o-mini"
            assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
            assert a[telemetry.ATTR_COST] > 0
            assert "gen_ai.input.messages" in a and "gen_ai.output.messages" in a
            assert a["scenario.role"] == library_agent.attributes["scenario.role"]
    chat_costs = sum(n.attributes[telemetry.ATTR_COST] for n in root.walk() if n.name.startswith("chat "))
    assert chat_costs == pytest.approx(result.usage.cost_usd, abs=1e-12)


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_root_span_is_a_new_trace_when_the_caller_has_none(executor, configured, spans):
    await EXECUTORS[executor](name="s", description="d", agents=_agents())
    (root,) = _forest(spans)
    assert root.name == "scenario.run" and root.parent_id is None


def _without_ids(key: str, value: Any) -> Any:
    if key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        return re.sub(r'"id": "[^"]*"', '"id": "<id>"', value)  # tool-call ids are per response
    return value


def _normalise(node: SpanNode) -> dict[str, Any]:
    """Everything but ids and timings, for comparing trees from two runs."""
    events = []
    for event in node.events:
        a = event["attributes"]
        events.append((event["name"], a.get("exception.type"), a.get("exception.message"), a.get("attempt")))
    return {
        "name": node.name,
        "status": node.status,
        "status_message": node.status_message,
        "attributes": {
            k: _without_ids(k, v) for k, v in sorted(node.attributes.items()) if k not in TIMING_AND_ID_ATTRIBUTES
        },
        "events": events,
        "children": [_normalise(child) for child in node.children],
    }


async def _parity_suite(run: Any) -> dict[str, scenario.ScenarioResult]:
    """Scripted and autopilot scenarios, passing, failing and erroring."""
    results = {}
    results["autopilot pass"] = await run(
        name="autopilot pass", description="A customer asks about shipping.", agents=_agents()
    )
    results["autopilot fail"] = await run(
        name="autopilot fail", description="A customer complains.", agents=_agents(["[mock:fail] offers a refund"])
    )
    results["autopilot sync agent"] = await run(
        name="autopilot sync agent", description="Three turns [mock:turns=3]", agents=_agents(agent=SyncEchoAgent())
    )
    results["scripted"] = await run(
        name="scripted",
        description="A scripted conversation.",
        agents=_agents(["answers"]),
        script=[
            scenario.user("hello there"),
            scenario.agent(),
            scenario.judge(criteria=["greets back"]),
            scenario.user(),
            scenario.agent(),
            scenario.judge(),
        ],
    )
    results["scripted verdict"] = await run(
        name="scripted verdict",
        description="Ends by itself.",
        agents=[EchoAgent()],
        script=[scenario.user("ping"), scenario.agent(), lambda state: None, scenario.succeed("enough")],
    )
    results["scripted error"] = await run(
        name="scripted error",
        description="The agent raises.",
        agents=[RaisingAgent()],
        script=[scenario.user("hi"), scenario.agent(), scenario.succeed()],
    )
    return results


@pytest.mark.asyncio
async def test_run_and_arun_produce_the_same_trees(configured, spans):
    trees: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, scenario.ScenarioResult]] = {}
    for executor in ("run", "arun"):
        spans.clear()
        results[executor] = await _parity_suite(EXECUTORS[executor])
        roots = _scenario_roots(spans)
        assert len(roots) == 6
        trees[executor] = {root.attributes["scenario.name"]: _normalise(root) for root in roots}

    assert [r.success for r in results["run"].values()] == [True, False, True, True, True, False]
    assert trees["run"].keys() == trees["arun"].keys()
    for name in trees["run"]:
        assert trees["run"][name] == trees["arun"][name], f"span trees differ for {name!r}"
        assert results["run"][name].usage == results["arun"][name].usage

    error_tree = trees["run"]["scripted error"]
    assert error_tree["status"] == "ERROR" and "database unavailable" in error_tree["status_message"]
    (agent_span,) = [c for t in error_tree["children"] for c in t["children"] if c["name"] == "invoke_agent RaisingAgent"]
    assert agent_span["status"] == "ERROR"
    assert agent_span["events"][0][:3] == ("exception", "RuntimeError", "database unavailable")


# -- concurrency ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_concurrent_runs_keep_their_own_traces_under_both_executors(configured, spans, outer_tracer):
    async def one(index: int, run: Any) -> tuple[int, scenario.ScenarioResult]:
        with outer_tracer.start_as_current_span(f"caller {index}") as caller:
            result = await run(name=f"s{index}", description=f"Customer number {index}.", agents=_agents())
        return caller.get_span_context().span_id, result

    runs = [scenario.run, scenario.arun] * 6
    outcomes = await asyncio.gather(*(one(i, run) for i, run in enumerate(runs)))

    forest = _forest(spans)
    assert len(forest) == len(runs)  # one tree per caller: no stray roots, no cross-links
    by_caller = {int(root.span_id, 16): root for root in forest}
    for index, (caller_id, result) in enumerate(outcomes):
        caller = by_caller[caller_id]
        assert caller.name == f"caller {index}"
        (root,) = caller.children
        assert root.attributes["scenario.name"] == f"s{index}"
        assert root.attributes["scenario.thread_id"] == result.thread_id
        nodes = list(root.walk())
        assert {n.trace_id for n in nodes} == {caller.trace_id}
        assert len(nodes) == 1 + 2 + 6 + 4  # run, turns, agent calls, model calls
        for node in nodes:
            if node.name.startswith("chat "):
                assert json.loads(node.attributes["gen_ai.input.messages"])  # content of this run only
        assert root.attributes["scenario.usage.calls"] == result.usage.calls == 4


@pytest.mark.asyncio
async def test_many_runs_leave_no_pending_tasks_or_sockets(configured, spans, caplog):
    # Garbage left by earlier tests (a user's litellm call on a test's loop leaves litellm's
    # logging task pending there) is collected first, so what is caught below is these runs'.
    gc.collect()
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        results = await asyncio.gather(
            *(scenario.run(name=f"s{i}", description="d", agents=_agents()) for i in range(30))
        )
        gc.collect()
    assert all(r.success for r in results)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    # litellm keeps one global logging task and drops it when it moves to another loop; one left
    # on an earlier test's closed loop may be collected here. That one is litellm's, not ours.
    ours = [r.getMessage() for r in caplog.records
            if "Task was destroyed" in r.getMessage() and "litellm" not in r.getMessage()]
    assert not ours
    assert len(_scenario_roots(spans)) == 30


# -- cost rollup ----------------------------------------------------------------------------------
class _CountingMock(MockLLMServer):
    """The mock server, adding up the token counts it reports (what the provider bills)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported = {"input": 0, "output": 0}

    def _usage(self, parsed: Any, reply: Any) -> dict[str, int]:
        usage = super()._usage(parsed, reply)
        self.reported["input"] += usage["prompt_tokens"]
        self.reported["output"] += usage["completion_tokens"]
        return usage


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_cost_rollup_is_mock_usage_times_litellm_price(executor):
    import litellm

    with _CountingMock() as server:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=10))
        results = await asyncio.gather(*(
            EXECUTORS[executor](name=f"s{i}", description=f"Case {i} [mock:turns={1 + i % 3}]", agents=_agents())
            for i in range(5)
        ))
        reported = dict(server.reported)
    total = scenario.Usage()
    for result in results:
        total.merge(result.usage)
    price = litellm.model_cost["gpt-4o-mini"]
    expected = reported["input"] * price["input_cost_per_token"] + reported["output"] * price["output_cost_per_token"]
    assert (total.input_tokens, total.output_tokens) == (reported["input"], reported["output"])
    assert abs(total.cost_usd - expected) < 1e-11  # a billionth of a cent
    assert total.unpriced_calls == 0
    assert total.by_model.keys() == {"gpt-4o-mini"}
    assert total.by_role["user"].calls + total.by_role["judge"].calls == total.calls
    assert total.by_role["agent"].calls == 0


class _NoUsageMock(MockLLMServer):
    """A provider that leaves the usage block out of its answers."""

    def _completion_body(self, parsed: Any, reply: Any) -> bytes:
        body = json.loads(super()._completion_body(parsed, reply))
        body.pop("usage", None)
        return json.dumps(body).encode()


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_response_without_usage_counts_zero_tokens_and_unknown_cost(executor, spans):
    with _NoUsageMock() as server:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=10))
        result = await EXECUTORS[executor](name="s", description="d", agents=_agents())
    assert result.success, result.reasoning
    usage = result.usage
    assert (usage.calls, usage.input_tokens, usage.output_tokens, usage.cost_usd) == (4, 0, 0, 0.0)
    assert usage.unpriced_calls == 4
    (root,) = _scenario_roots(spans)
    assert root.attributes["scenario.usage.unpriced_calls"] == 4
    chats = [n for n in root.walk() if n.name.startswith("chat ")]
    assert len(chats) == 4
    assert all(telemetry.ATTR_COST not in n.attributes and n.attributes["gen_ai.usage.input_tokens"] == 0 for n in chats)


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_model_errors_are_span_status_and_exception_events(executor, configured, spans):
    result = await EXECUTORS[executor](
        name="broken model", description="The provider is down [mock:error=500]", agents=_agents()
    )
    assert not result.success and result.error is not None
    (root,) = _scenario_roots(spans)
    assert root.status == "ERROR"
    (chat,) = [n for n in root.walk() if n.name.startswith("chat ")]
    assert chat.status == "ERROR" and "InternalServerError" in chat.status_message
    assert [e["name"] for e in chat.events] == ["retry", "retry", "exception"]
    assert chat.attributes["scenario.attempts"] == 3
    (user_agent,) = [n for n in root.walk() if n.name == "invoke_agent UserSimulatorAgent"]
    assert user_agent.status == "ERROR" and user_agent.events[-1]["name"] == "exception"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_run_timeout_closes_every_span(executor, configured, spans):
    class Slow(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            await asyncio.sleep(30)
            return "late"

    result = await EXECUTORS[executor](
        name="slow", description="d", agents=[Slow()], script=[scenario.user("hi"), scenario.agent()], timeout=0.3
    )
    assert not result.success
    (root,) = _scenario_roots(spans)
    names = [n.name for n in root.walk()]
    assert names == ["scenario.run", "scenario.turn", "invoke_agent Slow"]
    assert root.status == "ERROR"
    assert root.children[0].children[0].status == "ERROR"


# -- configuration ----------------------------------------------------------------------------------
def _count_span_objects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every span object the OpenTelemetry API or SDK constructs from now on."""
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.trace import span as api_span

    made = [0]
    for cls in (sdk_trace.Span, api_span.NonRecordingSpan):
        original = cls.__init__

        def counting(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            made[0] += 1
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return made


@pytest.mark.asyncio
async def test_tracing_off_creates_no_span_objects(configured, spans, monkeypatch):
    made = _count_span_objects(monkeypatch)
    scenario.configure(tracing="off")
    for run in (scenario.run, scenario.arun):
        assert (await run(name="s", description="d", agents=_agents())).success
    assert made[0] == 0 and spans.get_finished_spans() == ()

    scenario.configure(tracing="auto")  # the check above is not vacuous
    await scenario.arun(name="s", description="d", agents=_agents())
    assert made[0] == 13


@pytest.mark.asyncio
async def test_no_provider_installed_creates_no_span_objects(configured, no_provider, monkeypatch):
    made = _count_span_objects(monkeypatch)
    for run in (scenario.run, scenario.arun):
        assert (await run(name="s", description="d", agents=_agents())).success
    assert made[0] == 0


@pytest.mark.asyncio
async def test_trace_content_false_keeps_messages_off_spans(configured, spans):
    scenario.configure(trace_content=False)
    result = await scenario.arun(name="s", description="d", agents=_agents())
    nodes = [n for root in _forest(spans) for n in root.walk()]
    assert len(nodes) == 13
    for node in nodes:
        assert not {"gen_ai.input.messages", "gen_ai.output.messages", "scenario.reasoning"} & node.attributes.keys()
    assert nodes[0].attributes["scenario.usage.calls"] == result.usage.calls  # the rest stays


@pytest.mark.asyncio
async def test_a_raising_span_processor_never_fails_a_scenario(configured, app_provider, caplog):
    provider, exporter = app_provider

    class Broken(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise RuntimeError("processor on fire")

        def on_end(self, span: Any) -> None:
            raise RuntimeError("processor on fire")

    provider.add_span_processor(Broken(InMemorySpanExporter()))
    caplog.set_level(logging.WARNING, logger="scenario.telemetry.tracer")
    telemetry._warned.discard("span")
    for run in (scenario.run, scenario.arun):
        result = await run(name="s", description="d", agents=_agents())
        assert result.success, result.reasoning
    warnings_logged = [r for r in caplog.records if r.name == "scenario.telemetry.tracer"]
    assert len(warnings_logged) == 1 and "processor on fire" in warnings_logged[0].getMessage()


@pytest.fixture(params=["nobody listening", "answers 404"])
def broken_endpoint(request):
    """An OTLP endpoint that cannot take spans: a closed port, or a server that is not a collector."""
    import http.server
    import socket
    import threading

    if request.param == "nobody listening":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            yield sock.getsockname()[1]
        return

    class NotACollector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotACollector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.asyncio
async def test_otlp_to_a_broken_endpoint_drops_spans_with_one_warning(
    configured, no_provider, broken_endpoint, monkeypatch, caplog
):
    port = broken_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    caplog.set_level(logging.DEBUG)
    telemetry._warned.discard("export")
    try:
        scenario.configure(tracing="otlp")
        for run in (scenario.run, scenario.arun):
            assert (await run(name="s", description="d", agents=_agents())).success
        telemetry.force_flush(5000)
        for run in (scenario.run, scenario.arun):
            assert (await run(name="s", description="d", agents=_agents())).success
        telemetry.force_flush(5000)
    finally:
        telemetry.shutdown_private_provider()
    ours = [r for r in caplog.records if r.name == "scenario.telemetry.tracer" and r.levelno >= logging.WARNING]
    assert len(ours) == 1 and f"127.0.0.1:{port}" in ours[0].getMessage()
    exporter_noise = [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]
    assert exporter_noise == []


@pytest.mark.asyncio
async def test_otlp_requested_without_the_exporter_package_warns_once(configured, no_provider, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    telemetry._warned.discard("otlp-missing")
    telemetry.shutdown_private_provider()
    caplog.set_level(logging.WARNING, logger="scenario.telemetry.tracer")
    made = _count_span_objects(monkeypatch)
    try:
        scenario.configure(tracing="otlp")
        for run in (scenario.run, scenario.arun):
            assert (await run(name="s", description="d", agents=_agents())).success
    finally:
        telemetry.shutdown_private_provider()
    assert made[0] == 0
    (record,) = [r for r in caplog.records if r.name == "scenario.telemetry.tracer"]
    assert "pip install 'scenario[otlp]'" in record.getMessage()


def test_environment_variables_enable_the_private_exporter_only_without_an_app_provider(no_provider, monkeypatch):
    assert telemetry.get_tracer() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/")
    try:
        tracer = telemetry.get_tracer()
        assert tracer is not None and telemetry._private_provider is not None
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"  # nothing installed globally
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert telemetry.get_tracer() is None
    finally:
        telemetry.shutdown_private_provider()


def test_the_application_provider_wins_over_otlp_mode(spans, app_provider):
    scenario.configure(tracing="otlp")
    tracer = telemetry.get_tracer()
    span = telemetry.start_span(tracer, "probe")
    telemetry.end_span(span)
    assert [s.name for s in spans.get_finished_spans()] == ["probe"]
    assert telemetry._private_provider is None


# -- the agent under test's own model calls ------------------------------------------------------------
class _InstrumentedAgent(scenario.AgentAdapter):
    """Stands in for an instrumented agent framework: a wrapping span repeating its child's
    totals, around a model-call span with GenAI usage (no cost attribute: priced by litellm)."""

    def call(self, input: scenario.AgentInput) -> str:
        tracer = trace.get_tracer("some.agent.framework")
        with tracer.start_as_current_span("invoke_agent support-bot") as outer:
            with tracer.start_as_current_span("chat gpt-4o-mini") as call:
                call.set_attributes({
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500,
                })
            outer.set_attributes({"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500})
        return "done"


class _ReportingAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        scenario.report_usage(input_tokens=10, output_tokens=20, cost_usd=0.5, model="in-house-model")
        return "reported"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_agent_side_model_calls_count_from_spans_and_reports(executor, configured, spans):
    result = await EXECUTORS[executor](
        name="s", description="d", agents=[_InstrumentedAgent(), _ReportingAgent(), scenario.JudgeAgent(criteria=["ok"])],
        script=[scenario.user("hi"), scenario.agent(), scenario.user("again"), scenario.agent(), scenario.judge()],
    )
    assert result.success, result.reasoning
    agent = result.usage.by_role["agent"]
    # Two turns x (one traced call, innermost span only + one reported call).
    assert agent.calls == 4
    assert (agent.input_tokens, agent.output_tokens) == (2 * 1000 + 2 * 10, 2 * 500 + 2 * 20)
    assert agent.cost_usd == pytest.approx(2 * 0.00045 + 2 * 0.5, abs=1e-12)
    assert result.usage.by_model["gpt-4o-mini"].calls == 1 + 2  # the judge's call and the agent's two
    assert result.usage.by_model["in-house-model"].calls == 2
    (root,) = _scenario_roots(spans)
    assert root.attributes["scenario.usage.agent.calls"] == 4


@pytest.mark.asyncio
async def test_spans_outside_any_scenario_are_not_counted(configured, spans):
    _InstrumentedAgent().call(None)  # type: ignore[arg-type]
    result = await scenario.arun(name="s", description="d", agents=_agents())
    _InstrumentedAgent().call(None)  # type: ignore[arg-type]
    assert result.usage.by_role["agent"].calls == 0


@pytest.fixture
def litellm_otel_callback(app_provider, monkeypatch):
    """litellm's own OpenTelemetry callback on the application's provider, emitting one span per
    request (USE_OTEL_LITELLM_REQUEST_SPAN) even when there is a parent span."""
    import litellm
    from litellm.integrations.opentelemetry import OpenTelemetry

    monkeypatch.setenv("USE_OTEL_LITELLM_REQUEST_SPAN", "true")
    saved = {name: list(getattr(litellm, name)) for name in (
        "callbacks", "success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback")}
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    litellm.callbacks = [OpenTelemetry(tracer_provider=app_provider[0])]
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(litellm, name, value)


class _LiteLLMAgent(scenario.AgentAdapter):
    """An agent under test calling litellm itself (sync, so it is safe under both executors)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, input: scenario.AgentInput) -> str:
        import litellm

        response = litellm.completion(
            model="openai/gpt-4o-mini", api_base=self.base_url, api_key="mock", messages=input.messages, timeout=10
        )
        return response.choices[0].message.content


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_litellm_spans_of_the_agent_count_once(executor, configured, mock_server, litellm_otel_callback, spans):
    import litellm

    result = await EXECUTORS[executor](name="s", description="d", agents=_agents(agent=_LiteLLMAgent(mock_server.base_url)))
    assert result.success, result.reasoning
    usage = result.usage
    # The library's own calls are traced by litellm too (under our chat spans): not counted twice.
    assert (usage.by_role["user"].calls, usage.by_role["judge"].calls, usage.by_role["agent"].calls) == (2, 2, 2)
    agent = usage.by_role["agent"]
    assert agent.input_tokens > 0 and agent.output_tokens > 0
    price = litellm.model_cost["gpt-4o-mini"]
    expected = agent.input_tokens * price["input_cost_per_token"] + agent.output_tokens * price["output_cost_per_token"]
    assert abs(agent.cost_usd - expected) < 1e-11
    (root,) = _scenario_roots(spans)
    agent_calls = [n for n in root.walk() if n.name == "invoke_agent _LiteLLMAgent"]
    assert all(len(n.children) == 1 and n.children[0].attributes["gen_ai.usage.input_tokens"] > 0 for n in agent_calls)


# -- rendering -----------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_render_tree_draws_the_scenario(configured, spans):
    await scenario.arun(name="s", description="d", agents=_agents())
    text = render_tree(_forest(spans), durations=False)
    lines = text.splitlines()
    assert lines[0].startswith("scenario.run  [scenario.verdict=success")
    assert lines[1].startswith("├─ scenario.turn")
    assert lines[2].startswith("│  ├─ invoke_agent UserSimulatorAgent  [scenario.role=user]")
    assert lines[3].startswith("│  │  └─ chat openai/gpt-4o-mini  [scenario.role=user, gen_ai.request.model=openai/gpt-4o-mini")
    assert len(lines) == 13
