"""Tests of the offline mock model server (scenario.testing).

Every answer is checked through real HTTP with ``litellm.acompletion`` against
``server.base_url``: the same path the library and its users take, so a
response shape litellm cannot parse fails here rather than in a user's CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
import pytest  # noqa: E402

from scenario.testing import MockBehavior, MockLLMServer  # noqa: E402
from scenario.testing.mock_behavior import extract_description, parse_markers, parse_request

litellm.suppress_debug_info = True  # no "Give Feedback" banners on expected errors

REPO = Path(__file__).resolve().parents[2]
MODEL = "openai/gpt-4o-mini"


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def server() -> Iterator[MockLLMServer]:
    with MockLLMServer() as srv:
        yield srv


async def complete(srv: MockLLMServer, messages: list[dict[str, Any]], timeout: float = 5.0, **kwargs: Any) -> Any:
    if "tools" in kwargs:
        kwargs["_skip_mcp_handler"] = True  # litellm would otherwise import the optional `mcp` package
    return await litellm.acompletion(
        model=MODEL,
        api_base=srv.base_url,
        api_key="mock",
        messages=messages,
        timeout=timeout,
        max_retries=0,
        **kwargs,
    )


def judge_tools(criteria: list[str], with_continue: bool = True) -> list[dict[str, Any]]:
    """The judge's tools, shaped like the library's judge builds them."""
    props = {
        f"criterion_{i}": {
            "type": "object",
            "description": text,
            "properties": {"status": {"type": "string"}, "reasoning": {"type": "string"}},
        }
        for i, text in enumerate(criteria)
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "finish_test",
                "description": "Finish the test with a verdict.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "criteria": {"type": "object", "properties": props},
                        "reasoning": {"type": "string"},
                    },
                    "required": ["criteria", "reasoning"],
                },
            },
        }
    ]
    if with_continue:
        tools.insert(
            0,
            {
                "type": "function",
                "function": {
                    "name": "continue_test",
                    "description": "Let the conversation go on.",
                    "parameters": {"type": "object", "properties": {}},
                },
            },
        )
    return tools


def judge_messages(description: str, criteria: list[str], agent_replies: int) -> list[dict[str, Any]]:
    criteria_text = "\n".join(f"- {c}" for c in criteria)
    transcript = []
    for i in range(agent_replies):
        transcript.append(f'<message role="user">question {i}</message>')
        transcript.append(f'<message role="assistant">answer {i}</message>')
    if not transcript:
        transcript.append('<message role="user">first question</message>')
    return [
        {
            "role": "system",
            "content": f"You are judging a conversation.\n<scenario>{description}</scenario>\nCriteria:\n{criteria_text}",
        },
        {"role": "user", "content": "<transcript>\n" + "\n".join(transcript) + "\n</transcript>"},
    ]


def tool_call(response: Any) -> tuple[str, dict[str, Any]]:
    call = response.choices[0].message.tool_calls[0]
    return call.function.name, json.loads(call.function.arguments)


def raw_post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def raw_get(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


async def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


AGENT_MSG = [{"role": "user", "content": "Where is my order?"}]


# --------------------------------------------------------------------------- judge


@pytest.mark.asyncio
async def test_judge_continues_before_enough_agent_replies(server: MockLLMServer) -> None:
    criteria = ["Agent is polite"]
    resp = await complete(server, judge_messages("refund", criteria, 1), tools=judge_tools(criteria))
    assert tool_call(resp) == ("continue_test", {})
    assert resp.choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_judge_finishes_at_judge_turns_and_passes(server: MockLLMServer) -> None:
    criteria = ["Agent is polite", "Agent offers a refund"]
    resp = await complete(server, judge_messages("refund", criteria, 2), tools=judge_tools(criteria))
    name, args = tool_call(resp)
    assert name == "finish_test"
    assert set(args["criteria"]) == {"criterion_0", "criterion_1"}
    for key, text in zip(["criterion_0", "criterion_1"], criteria):
        assert args["criteria"][key]["status"] == "passed"
        assert text in args["criteria"][key]["reasoning"]
    assert "2 passed" in args["reasoning"]


@pytest.mark.asyncio
async def test_judge_forced_tool_choice_finishes_immediately(server: MockLLMServer) -> None:
    criteria = ["Agent is polite"]
    resp = await complete(
        server,
        judge_messages("refund", criteria, 0),
        tools=judge_tools(criteria),
        tool_choice={"type": "function", "function": {"name": "finish_test"}},
    )
    name, args = tool_call(resp)
    assert name == "finish_test" and args["criteria"]["criterion_0"]["status"] == "passed"


@pytest.mark.asyncio
async def test_judge_without_continue_tool_finishes(server: MockLLMServer) -> None:
    criteria = ["Agent is polite"]
    resp = await complete(server, judge_messages("refund", criteria, 0), tools=judge_tools(criteria, with_continue=False))
    assert tool_call(resp)[0] == "finish_test"


@pytest.mark.asyncio
async def test_judge_failing_and_inconclusive_criteria() -> None:
    criteria = [
        "Agent is polite",
        "Agent never apologises [mock:fail]",
        "Agent mentions the WARRANTY policy",
        "Agent is funny [mock:inconclusive]",
        "Agent is rude [mock:fail] [mock:inconclusive]",
    ]
    with MockLLMServer(behavior=MockBehavior(failing_criteria=["warranty"])) as srv:
        resp = await complete(srv, judge_messages("refund", criteria, 2), tools=judge_tools(criteria))
    name, args = tool_call(resp)
    statuses = [args["criteria"][f"criterion_{i}"]["status"] for i in range(len(criteria))]
    assert statuses == ["passed", "failed", "failed", "inconclusive", "failed"]
    assert "1 passed, 3 failed, 1 inconclusive" in args["reasoning"]


@pytest.mark.asyncio
async def test_judge_turns_marker_overrides_judge_turns(server: MockLLMServer) -> None:
    criteria = ["Agent is polite"]
    early = await complete(server, judge_messages("quick [mock:turns=1]", criteria, 1), tools=judge_tools(criteria))
    assert tool_call(early)[0] == "finish_test"
    late = judge_messages("long talk [mock:turns=3]", criteria, 2)
    assert tool_call(await complete(server, late, tools=judge_tools(criteria)))[0] == "continue_test"
    done = judge_messages("long talk [mock:turns=3]", criteria, 3)
    assert tool_call(await complete(server, done, tools=judge_tools(criteria)))[0] == "finish_test"


# --------------------------------------------------------------------------- user simulator and agent


@pytest.mark.asyncio
async def test_user_simulator_reply_depends_on_turn_and_description(server: MockLLMServer) -> None:
    system = {
        "role": "system",
        "content": "You are a User Simulator talking to an assistant.\n"
        "<scenario>The customer wants to cancel a gym membership before moving abroad next month "
        "[mock:turns=3] and needs written confirmation</scenario>",
    }
    replies = []
    for k in (1, 2, 3):
        messages = [system]
        for i in range(k - 1):  # role-reversed: the simulator's own turns are "assistant"
            messages += [{"role": "assistant", "content": f"my turn {i}"}, {"role": "user", "content": f"agent {i}"}]
        resp = await complete(server, messages)
        replies.append(resp.choices[0].message.content)
    assert replies[0] == (
        "Hi, I need help: The customer wants to cancel a gym membership before moving abroad next (message 1)"
    )
    assert replies[1].endswith("(message 2)") and replies[2].endswith("(message 3)")
    assert len(set(replies)) == 3
    assert all("[mock:" not in r for r in replies)  # markers are not echoed into later requests


def test_description_extraction_fallbacks() -> None:
    assert extract_description("You are a user simulator.\nScenario: Lost luggage at the airport") == (
        "Lost luggage at the airport"
    )
    text = extract_description("You are a user simulator. A traveller lost their luggage.")
    assert "traveller lost their luggage" in text and "simulator" not in text


@pytest.mark.asyncio
async def test_agent_echoes_last_user_message(server: MockLLMServer) -> None:
    long_text = "x" * 500
    messages = [
        {"role": "system", "content": "You are a helpful shop assistant."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": long_text},
    ]
    resp = await complete(server, messages)
    assert resp.choices[0].message.content == "Mock agent reply to: " + "x" * 200
    assert resp.choices[0].finish_reason == "stop"
    resp = await complete(server, [{"role": "user", "content": [{"type": "text", "text": "parts work"}]}])
    assert resp.choices[0].message.content == "Mock agent reply to: parts work"


# --------------------------------------------------------------------------- shape, usage, streaming


@pytest.mark.asyncio
async def test_usage_model_echo_and_cost(server: MockLLMServer) -> None:
    content = "a" * 400
    resp = await complete(server, [{"role": "user", "content": content}])
    assert resp.model.endswith("gpt-4o-mini")
    assert resp.usage.prompt_tokens == 100
    assert resp.usage.completion_tokens == max(1, len(resp.choices[0].message.content) // 4)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert resp._hidden_params["response_cost"] > 0

    status, _, body = raw_post(f"{server.base_url}/chat/completions", json.dumps({"model": "my-model", "messages": AGENT_MSG}).encode())
    data = json.loads(body)
    assert status == 200 and data["object"] == "chat.completion" and data["model"] == "my-model"
    assert data["id"].startswith("chatcmpl-") and isinstance(data["created"], int)
    assert data["choices"][0]["message"]["role"] == "assistant" and data["choices"][0]["message"]["tool_calls"] is None


@pytest.mark.asyncio
async def test_streaming_text_with_usage(server: MockLLMServer) -> None:
    stream = await complete(server, AGENT_MSG, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock agent reply to: Where is my order?"
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    usage = [getattr(c, "usage", None) for c in chunks if getattr(c, "usage", None)]
    assert usage and usage[-1].completion_tokens > 0


@pytest.mark.asyncio
async def test_streaming_tool_call(server: MockLLMServer) -> None:
    criteria = ["Agent is polite [mock:fail]"]
    stream = await complete(server, judge_messages("refund", criteria, 2), tools=judge_tools(criteria), stream=True)
    chunks = [chunk async for chunk in stream]
    rebuilt = litellm.stream_chunk_builder(chunks)
    name, args = tool_call(rebuilt)
    assert name == "finish_test" and args["criteria"]["criterion_0"]["status"] == "failed"
    assert rebuilt.choices[0].finish_reason == "tool_calls"


def test_raw_sse_format(server: MockLLMServer) -> None:
    body = json.dumps({"model": "m", "messages": AGENT_MSG, "stream": True, "stream_options": {"include_usage": True}})
    status, headers, raw = raw_post(f"{server.base_url}/chat/completions", body.encode())
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    assert json.loads(events[0])["object"] == "chat.completion.chunk"


def test_other_endpoints(server: MockLLMServer) -> None:
    assert raw_get(f"{server.url}/health") == (200, {"status": "ok"})
    status, models = raw_get(f"{server.base_url}/models")
    assert status == 200 and models["object"] == "list" and models["data"]
    status, _, _ = raw_post(f"{server.url}/chat/completions", json.dumps({"messages": AGENT_MSG}).encode())
    assert status == 200


# --------------------------------------------------------------------------- faults


@pytest.mark.asyncio
async def test_bad_requests_get_400(server: MockLLMServer) -> None:
    status, _, body = raw_post(f"{server.base_url}/chat/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw_post(f"{server.base_url}/chat/completions", b'{"model": "m"}')
    assert status == 400 and "messages" in json.loads(body)["error"]["message"]
    with pytest.raises(litellm.BadRequestError):
        await complete(server, [{"role": "user", "content": "bad [mock:error=400]"}])
    assert server.stats.errors_served[400] == 3


@pytest.mark.asyncio
async def test_fail_next_429_carries_retry_after(server: MockLLMServer) -> None:
    server.fail_next(2, status=429, retry_after=0.2)
    for _ in range(2):
        with pytest.raises(litellm.RateLimitError) as info:
            await complete(server, AGENT_MSG)
        assert info.value.litellm_response_headers["retry-after"] == "0.2"
    resp = await complete(server, AGENT_MSG)  # the queue is used up
    assert resp.choices[0].message.content.startswith("Mock agent reply")
    stats = server.stats
    assert stats.errors_served == {429: 2} and stats["faults"] == {"error": 2}


@pytest.mark.asyncio
async def test_error_markers(server: MockLLMServer) -> None:
    with pytest.raises(litellm.RateLimitError) as info:
        await complete(server, [{"role": "user", "content": "slow down [mock:error=429]"}])
    assert info.value.litellm_response_headers["retry-after"] == "0.5"  # behavior.retry_after default
    with pytest.raises(litellm.InternalServerError):
        await complete(server, [{"role": "user", "content": "boom [mock:error=500]"}])
    with pytest.raises(litellm.ServiceUnavailableError):
        await complete(server, [{"role": "user", "content": "down [mock:error=503]"}])
    server.fail_next(1, status=500)
    with pytest.raises(litellm.InternalServerError):
        await complete(server, AGENT_MSG)
    assert server.stats.errors_served == {429: 1, 500: 2, 503: 1}


@pytest.mark.asyncio
async def test_malformed_body(server: MockLLMServer) -> None:
    status, _, body = raw_post(f"{server.base_url}/chat/completions", json.dumps({"messages": [{"role": "user", "content": "[mock:malformed]"}]}).encode())
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)
    server.fail_next(1, kind="malformed")
    with pytest.raises(litellm.InternalServerError, match="Expecting value"):  # litellm's mapping of a JSON error
        await complete(server, AGENT_MSG)


@pytest.mark.asyncio
async def test_hang_times_out_and_releases_slot(server: MockLLMServer) -> None:
    start = time.monotonic()
    with pytest.raises(litellm.Timeout):
        await complete(server, [{"role": "user", "content": "wait [mock:hang]"}], timeout=0.3)
    server.fail_next(1, kind="hang")
    with pytest.raises(litellm.Timeout):
        await complete(server, AGENT_MSG, timeout=0.3)
    assert time.monotonic() - start < 3
    # The client gave up, so the server cancelled the hung handlers.
    await wait_for(lambda: server.stats.in_flight == 0)
    assert server.stats.faults == {"hang": 2}


@pytest.mark.asyncio
async def test_latency_delay_marker_and_slow_fault() -> None:
    async with MockLLMServer(latency=0.1) as srv:
        start = time.monotonic()
        await complete(srv, [{"role": "user", "content": "hello [mock:delay=0.2]"}])
        assert time.monotonic() - start >= 0.3
        srv.fail_next(1, kind="slow", delay=0.2)
        start = time.monotonic()
        resp = await complete(srv, AGENT_MSG)
        assert time.monotonic() - start >= 0.3 and resp.choices[0].message.content
        # Latency is asyncio.sleep: concurrent requests overlap instead of queueing.
        start = time.monotonic()
        await asyncio.gather(*(complete(srv, AGENT_MSG) for _ in range(10)))
        assert time.monotonic() - start < 0.9
        assert srv.stats.max_in_flight >= 5


@pytest.mark.asyncio
async def test_rate_limit_above_with_concurrent_requests(server: MockLLMServer) -> None:
    await complete(server, AGENT_MSG)  # warm litellm's client up before timing-sensitive work
    server.behavior = MockBehavior(latency=0.5, rate_limit_above=2, retry_after=0.25)
    server.reset_stats()
    results = await asyncio.gather(*(complete(server, AGENT_MSG) for _ in range(6)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    limited = [r for r in results if isinstance(r, litellm.RateLimitError)]
    assert len(ok) == 2 and len(limited) == 4, results
    assert all(e.litellm_response_headers["retry-after"] == "0.25" for e in limited)
    stats = server.stats
    assert stats.requests == 6 and stats.errors_served == {429: 4} and stats.faults == {"rate_limit": 4}
    assert stats.max_in_flight >= 3


def test_error_rate_is_deterministic_per_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with MockLLMServer(behavior=MockBehavior(error_rate=0.5, seed=seed)) as srv:
            body = json.dumps({"messages": AGENT_MSG}).encode()
            return [raw_post(f"{srv.base_url}/chat/completions", body)[0] for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}


# --------------------------------------------------------------------------- stats and lifecycle


@pytest.mark.asyncio
async def test_stats_count_roles(server: MockLLMServer) -> None:
    criteria = ["Agent is polite"]
    await complete(server, judge_messages("refund", criteria, 2), tools=judge_tools(criteria))
    await complete(server, [{"role": "system", "content": "you are a user simulator. Scenario: x"}])
    await complete(server, AGENT_MSG)
    await complete(server, AGENT_MSG)
    stats = server.stats
    assert stats.requests == 4
    assert stats.by_role == {"user": 1, "judge": 1, "agent": 2}
    assert stats.errors_served == {} and stats.in_flight == 0 and stats.max_in_flight >= 1
    assert stats.as_dict()["by_role"]["agent"] == 2
    server.reset_stats()
    assert server.stats.requests == 0


@pytest.mark.asyncio
async def test_stop_with_hung_request_in_flight() -> None:
    srv = MockLLMServer().start()
    base_url = srv.base_url
    task = asyncio.create_task(complete(srv, [{"role": "user", "content": "[mock:hang]"}], timeout=30))
    await wait_for(lambda: srv.stats.in_flight == 1)
    start = time.monotonic()
    await asyncio.to_thread(srv.stop)
    assert time.monotonic() - start < 2.0
    assert not srv.running
    # The hung request was closed unanswered: the client sees a connection error
    # (litellm maps it to InternalServerError "Connection error"), not a 30 s wait.
    with pytest.raises((litellm.APIConnectionError, litellm.InternalServerError), match="Connection error"):
        await asyncio.wait_for(task, 5)
    srv.stop()  # idempotent
    with pytest.raises(OSError):
        raw_get(base_url.removesuffix("/v1") + "/health")


def test_sync_context_manager_and_restart() -> None:
    srv = MockLLMServer(port=0)
    with pytest.raises(RuntimeError):
        srv.base_url  # not started yet
    with srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        assert raw_get(f"{srv.url}/health")[0] == 200
    with srv:  # can start again after stop
        assert raw_get(f"{srv.url}/health")[0] == 200


def test_behavior_validation_and_parsing() -> None:
    with pytest.raises(ValueError):
        MockBehavior(error_rate=1.5)
    with pytest.raises(ValueError):
        MockLLMServer(latency=-1)
    with pytest.raises(ValueError):
        MockLLMServer().fail_next(1, kind="explode")
    assert MockBehavior().with_changes(judge_turns=5).judge_turns == 5
    markers = parse_markers("a [mock:error=503] b [mock:delay=0.25] [mock:turns=4] [mock:delay=oops] [mock:fail]")
    assert (markers.error_status, markers.delay, markers.turns, markers.hang) == (503, 0.25, 4, False)
    req = parse_request(json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode())
    assert req.role == "agent" and req.prompt_chars == 2


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("mock server CLI printed nothing in time")
    return proc.stdout.readline()


def test_cli_prints_listening_line_and_answers() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenario.testing.mock_llm", "--port", "0", "--judge-turns", "1", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    try:
        line = _read_line(proc, timeout=20)
        assert line.startswith("listening on http://127.0.0.1:") and line.endswith("/v1\n")
        base_url = line.strip().removeprefix("listening on ")
        status, _, body = raw_post(f"{base_url}/chat/completions", json.dumps({"messages": AGENT_MSG}).encode())
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"].startswith("Mock agent")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == ""  # exactly one line was printed
        assert "Warning" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_behavior() -> None:
    from scenario.testing.mock_llm import main

    assert main(["--error-rate", "2"]) == 2


def test_import_is_cheap() -> None:
    # Load scenario.testing without running scenario/__init__.py (whatever the
    # rest of the package imports is not this module's doing): neither the
    # package nor the server module may pull in aiohttp, litellm or pydantic.
    code = (
        "import sys, types; pkg = types.ModuleType('scenario'); pkg.__path__ = ['scenario']; "
        "sys.modules['scenario'] = pkg; "
        "import scenario.testing.mock_llm; from scenario.testing import MockLLMServer, MockBehavior; "
        "print(sorted(m for m in ('aiohttp', 'litellm', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=30)
    assert out.stdout.strip() == "[]", out.stderr
