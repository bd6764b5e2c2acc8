"""A suite written the way langwatch-scenario's documented examples are written, run offline.

Weather agent with tool calls, parallel runs under ``run`` and ``arun``, custom deterministic
judges, scripts with inline judge checkpoints, remote HTTP agents answering in JSON, SSE and a
plain chunked stream, and a gateway client with custom headers. Everything talks to the mock
model (``scenario.testing.MockLLMServer``) or to a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import litellm
import openai
import pytest

import scenario

EXECUTORS = {"run": scenario.run, "arun": scenario.arun}


# -- the weather agent (the peer's flagship example, written our way) --------------------------
def get_current_weather(city: str) -> str:
    return f"The weather in {city} is sunny, 22C."


WEATHER_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


class WeatherAgent(scenario.AgentAdapter):
    """A blocking agent calling litellm itself, with tools, as users' agents do."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a weather assistant."}, *input.messages]
        new: list[dict[str, Any]] = []
        for _ in range(3):
            response = litellm.completion(model="openai/gpt-4o-mini", api_base=self.base_url, api_key="mock",
                                          messages=messages + new, tools=WEATHER_TOOLS, timeout=10)
            message = response.choices[0].message
            if not message.tool_calls:
                new.append({"role": "assistant", "content": message.content})
                return new
            new.append({"role": "assistant", "content": message.content,
                        "tool_calls": [c.model_dump() for c in message.tool_calls]})
            for call in message.tool_calls:
                city = json.loads(call.function.arguments).get("city", "?")
                new.append({"role": "tool", "tool_call_id": call.id, "content": get_current_weather(city)})
        return new


def check_weather_tool_called(state: scenario.ScenarioState) -> None:
    assert state.has_tool_call("get_current_weather")
    call = state.last_tool_call("get_current_weather")
    assert "Paris" in json.loads(call["function"]["arguments"])["city"]


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_weather_agent_with_tool_calls(executor, configured, mock_server):
    result = await EXECUTORS[executor](
        name="weather in Paris",
        description="The user asks for the weather in Paris.",
        agents=[WeatherAgent(mock_server.base_url), scenario.UserSimulatorAgent(),
                scenario.JudgeAgent(criteria=["The agent reports the weather"])],
        script=[
            scenario.user("What's the weather in Paris?"),
            scenario.agent(),
            check_weather_tool_called,
            scenario.judge(),
        ],
    )
    assert result.success, result.reasoning
    roles = [m["role"] for m in result.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert result.messages[2]["content"] == "The weather in What's the weather in Paris? is sunny, 22C."


@pytest.mark.asyncio
async def test_weather_agent_on_autopilot(configured, mock_server):
    result = await scenario.run(
        name="weather autopilot", description="The user wants to know if it rains in Paris.",
        agents=[WeatherAgent(mock_server.base_url), scenario.UserSimulatorAgent(),
                scenario.JudgeAgent(criteria=["The agent uses its weather tool"])],
    )
    assert result.success, result.reasoning
    tool_results = [m for m in result.messages if m["role"] == "tool"]
    assert tool_results and all(m["content"].endswith("is sunny, 22C.") for m in tool_results)


# -- parallel runs --------------------------------------------------------------------------------
class YouSaidAgent(scenario.AgentAdapter):
    """The echo agent of langwatch-scenario's examples ("You said: ..."; a KeywordJudge looks for "said")."""

    async def call(self, input: scenario.AgentInput) -> str:
        return f"You said: {input.last_new_user_message_str()}"


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_parallel_scenarios_keep_their_own_conversations(executor, configured):
    async def one(index: int) -> scenario.ScenarioResult:
        return await EXECUTORS[executor](
            name=f"parallel {index}", description=f"Customer number {index} asks about order {index}.",
            agents=[YouSaidAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent replies"])],
            set_id="parallel-suite",
        )

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert all(r.success for r in results)
    for index, result in enumerate(results):
        assert f"order {index}" in result.messages[0]["content"]
        assert len({r.thread_id for r in results}) == 8


# -- custom deterministic judges --------------------------------------------------------------------
class KeywordJudge(scenario.AgentAdapter):
    """A judge with no model: it rules by looking for a word, and says which criterion it checked."""

    role = scenario.AgentRole.JUDGE

    def __init__(self, word: str) -> None:
        self.word = word

    async def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
        said = any(self.word in str(m.get("content")) for m in input.messages if m["role"] == "assistant")
        if not said and not input.judgment_request:
            return []  # no verdict yet: let the conversation go on
        criterion = f"The agent says {self.word!r}"
        return scenario.ScenarioResult(
            success=said, messages=input.messages, reasoning=f"{'found' if said else 'never found'} {self.word!r}",
            passed_criteria=[criterion] if said else [], failed_criteria=[] if said else [criterion],
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_custom_deterministic_judge_decides(executor, configured):
    passing = await EXECUTORS[executor](
        name="keyword found", description="d", agents=[YouSaidAgent(), scenario.UserSimulatorAgent(), KeywordJudge("said")],
    )
    failing = await EXECUTORS[executor](
        name="keyword missing", description="d", max_turns=3,
        agents=[YouSaidAgent(), scenario.UserSimulatorAgent(), KeywordJudge("refund")],
    )
    assert passing.success and passing.reasoning == "found 'said'" and len(passing.messages) == 2
    assert not failing.success and failing.failed_criteria == ["The agent says 'refund'"]
    assert len(failing.messages) == 6  # asked for a verdict on the last of its 3 turns


# -- scripts with inline checkpoints -----------------------------------------------------------------
@pytest.mark.asyncio
async def test_script_with_inline_checkpoints_and_proceed(configured):
    turns: list[int] = []
    result = await scenario.run(
        name="checkpoints", description="A customer asks for a refund.",
        agents=[YouSaidAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent()],
        script=[
            scenario.user("I want a refund"),
            scenario.agent(),
            scenario.judge(criteria=["The agent acknowledges the request"]),
            scenario.proceed(turns=2, on_turn=lambda state: turns.append(state.current_turn)),
            scenario.judge(criteria=["The agent stays polite"]),
        ],
    )
    assert result.success, result.reasoning
    assert result.passed_criteria == ["The agent acknowledges the request", "The agent stays polite"]
    assert len(turns) == 2 and turns[1] == turns[0] + 1


# -- remote agents over HTTP --------------------------------------------------------------------------
class RemoteAgentServer:
    """A local HTTP agent answering in JSON, SSE or a chunked text stream (on 127.0.0.1)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def __enter__(self) -> RemoteAgentServer:
        self._thread.start()
        assert self._ready.wait(10), "remote agent server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        from aiohttp import web

        async def reply_text(request: web.Request) -> str:
            self.headers.append(dict(request.headers))
            body = await request.json()
            return f"Remote agent heard: {body['messages'][-1]['content']}"

        async def as_json(request: web.Request) -> web.Response:
            return web.json_response({"message": {"role": "assistant", "content": await reply_text(request)}})

        async def as_sse(request: web.Request) -> web.StreamResponse:
            text = await reply_text(request)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for word in text.split(" "):
                await response.write(f"data: {json.dumps({'delta': word + ' '})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response

        async def as_stream(request: web.Request) -> web.StreamResponse:
            text = await reply_text(request)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            for start in range(0, len(text), 7):
                await response.write(text[start:start + 7].encode())
            return response

        app = web.Application()
        app.router.add_post("/json", as_json)
        app.router.add_post("/sse", as_sse)
        app.router.add_post("/stream", as_stream)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


class RemoteAgent(scenario.AgentAdapter):
    """Calls a remote agent over HTTP, forwarding the trace headers, in one of three formats."""

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.kind = url, kind

    async def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
        headers = {**input.propagation_headers, "X-Thread-Id": input.thread_id}
        payload = {"messages": input.messages}
        async with httpx.AsyncClient(timeout=10) as client:
            if self.kind == "json":
                response = await client.post(f"{self.url}/json", json=payload, headers=headers)
                response.raise_for_status()
                return response.json()["message"]
            text = ""
            async with client.stream("POST", f"{self.url}/{self.kind}", json=payload, headers=headers) as response:
                response.raise_for_status()
                if self.kind == "sse":
                    async for line in response.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            text += json.loads(line[len("data: "):])["delta"]
                else:
                    async for chunk in response.aiter_text():
                        text += chunk
            return text.strip()


@pytest.fixture(scope="module")
def remote_agent_server():
    with RemoteAgentServer() as server:
        yield server


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
@pytest.mark.parametrize("kind", ["json", "sse", "stream"])
async def test_remote_http_agent(kind, executor, configured, remote_agent_server):
    url = f"http://127.0.0.1:{remote_agent_server.port}"
    result = await EXECUTORS[executor](
        name=f"remote {kind}", description="A customer asks where the parcel is.",
        agents=[RemoteAgent(url, kind), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent answers"])],
    )
    assert result.success, result.reasoning
    replies = [m["content"] for m in result.messages if m["role"] == "assistant"]
    assert replies and all(r.startswith("Remote agent heard: ") for r in replies)
    assert replies[0] == f"Remote agent heard: {result.messages[0]['content']}"
    assert remote_agent_server.headers[-1]["X-Thread-Id"] == result.thread_id


# -- a gateway client ------------------------------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_gateway_clients_with_custom_headers_sync_and_async(executor, mock_server):
    seen: list[tuple] = []

    async def async_hook(request: httpx.Request) -> None:
        seen.append(("judge", request.headers.get("ocp-apim-subscription-key")))

    def sync_hook(request: httpx.Request) -> None:
        seen.append(("user", request.headers.get("ocp-apim-subscription-key"), threading.current_thread().name))

    async_client = openai.AsyncOpenAI(
        base_url=mock_server.base_url, api_key="mock", default_headers={"Ocp-Apim-Subscription-Key": "judge-key"},
        http_client=httpx.AsyncClient(event_hooks={"request": [async_hook]}),
    )
    sync_client = openai.OpenAI(
        base_url=mock_server.base_url, api_key="mock", default_headers={"Ocp-Apim-Subscription-Key": "user-key"},
        http_client=httpx.Client(event_hooks={"request": [sync_hook]}),
    )
    loop_thread = threading.current_thread().name
    result = await EXECUTORS[executor](
        name="gateway", description="A customer asks a question through the company gateway.",
        agents=[
            YouSaidAgent(),
            scenario.UserSimulatorAgent(model="azure/support-sim", client=sync_client),
            scenario.JudgeAgent(model="openai/gpt-4o-mini", criteria=["The agent answers"], client=async_client),
        ],
    )
    assert result.success, result.reasoning
    assert {entry[:2] for entry in seen} == {("user", "user-key"), ("judge", "judge-key")}
    # the blocking client ran off the caller's loop thread
    assert all(entry[2] != loop_thread for entry in seen if entry[0] == "user")
    assert set(result.usage.by_model) == {"azure/support-sim", "openai/gpt-4o-mini"}


def test_a_client_without_chat_completions_is_refused_at_construction():
    with pytest.raises(scenario.ScenarioConfigError, match=r"UserSimulatorAgent\(client=...\): object has no chat"):
        scenario.UserSimulatorAgent(model="openai/gpt-4o-mini", client=object())


def test_a_plain_install_runs_users_tool_calling_litellm_code(mock_server):
    """litellm >= 1.110 no longer needs the optional `mcp` package for calls with tools=."""
    import importlib.util

    assert importlib.util.find_spec("mcp") is None, "this test means a plain install: mcp must not be installed"
    response = litellm.completion(model="openai/gpt-4o-mini", api_base=mock_server.base_url, api_key="mock",
                                  messages=[{"role": "user", "content": "weather in Paris?"}], tools=WEATHER_TOOLS,
                                  timeout=10)
    assert response.choices[0].message.tool_calls[0].function.name == "get_current_weather"


def test_the_gateway_client_example_runs_offline():
    import pathlib
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gateway_client.py"
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "success=True; 4 model calls through the gateway, headers: ['my-subscription-key']"


@pytest.mark.asyncio
async def test_a_wrapper_client_set_once_with_configure_serves_every_agent(mock_server):
    models_sent: list[str] = []

    class Wrapper:
        """A hand-written OpenAI-compatible client around the SDK (what some gateways need)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.chat = self.completions = self

        async def create(self, **params: Any) -> Any:
            models_sent.append(params["model"])
            return await self.inner.chat.completions.create(**params)

    client = Wrapper(openai.AsyncOpenAI(base_url=mock_server.base_url, api_key="mock"))
    scenario.configure(default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", client=client))
    result = await scenario.run(name="configured client", description="d",
                                agents=[YouSaidAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["ok"])])
    assert result.success, result.reasoning
    assert models_sent == ["gpt-4o-mini"] * 4 and result.usage.calls == 4


@pytest.mark.asyncio
async def test_cached_agent_functions_replay_litellm_messages_as_messages(tmp_path, mock_server):
    scenario.configure(cache_dir=str(tmp_path))
    calls: list[int] = []

    @scenario.cache()
    def shopping_agent(messages: list[dict[str, Any]]) -> list[Any]:
        calls.append(1)
        response = litellm.completion(model="openai/gpt-4o-mini", api_base=mock_server.base_url, api_key="mock",
                                      messages=messages, timeout=10)
        return [response.choices[0].message]  # a litellm Message object, as the peer's examples return

    class Shop(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
            return shopping_agent(input.messages)

    runs = [await scenario.run(name="cached", description="d", agents=[Shop()], cache_key="v1",
                               script=[scenario.user("headphones?"), scenario.agent(), scenario.succeed()])
            for _ in range(2)]
    assert len(calls) == 1, "the second run replays the agent's answer"
    assert runs[0].messages == runs[1].messages
    assert runs[1].messages[1] == {"role": "assistant", "content": "Mock agent reply to: headphones?"}


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_cache_on_an_adapters_call_replays_across_runs(executor, tmp_path):
    scenario.configure(cache_dir=str(tmp_path))
    bodies: list[str] = []

    class Cached(scenario.AgentAdapter):
        @scenario.cache()
        async def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
            bodies.append(input.last_new_user_message_str())
            return {"role": "assistant", "content": f"fresh answer {len(bodies)}"}

    async def once() -> scenario.ScenarioResult:
        return await EXECUTORS[executor](
            name="cached call", description="d", agents=[Cached()], cache_key="suite-v1",
            script=[scenario.user("hi"), scenario.agent(), scenario.user("more"), scenario.agent(), scenario.succeed()])

    first, second = await once(), await once()
    assert bodies == ["hi", "more"], "the second run (new thread id, new trace) replays both answers"
    assert first.messages == second.messages and first.thread_id != second.thread_id
