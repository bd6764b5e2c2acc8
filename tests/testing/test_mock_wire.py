"""The mock server's wire format, checked without a socket: what litellm and the openai SDK parse."""

from __future__ import annotations

import json

from scenario.testing.mock_behavior import MockReply, parse_request
from scenario.testing.mock_wire import completion_body, error_body, stream_events
from scenario.testing.mock_wire import usage as usage_of


def _request(stream: bool = False, include_usage: bool = False):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is my parcel?"}], "stream": stream}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return parse_request(json.dumps(body).encode())


def test_a_429_is_a_rate_limit_error_with_both_retry_after_headers():
    body, headers = error_body(429, 1.25, "slow down")
    error = json.loads(body)["error"]
    assert (error["type"], error["code"], error["message"]) == ("rate_limit_error", "rate_limit_exceeded", "slow down")
    assert headers == {"Retry-After": "1.25", "retry-after-ms": "1250"}


def test_an_unlisted_status_falls_back_by_class_and_an_explicit_code_wins():
    assert json.loads(error_body(418, None, "x")[0])["error"]["type"] == "invalid_request_error"
    assert json.loads(error_body(599, None, "x")[0])["error"]["type"] == "server_error"
    assert json.loads(error_body(400, None, "x", code="context_length_exceeded")[0])["error"]["code"] == "context_length_exceeded"
    assert error_body(500, None, "x")[1] == {}


def test_a_completion_carries_the_reply_a_numbered_id_and_usage():
    request, reply = _request(), MockReply(content="On its way.")
    answer = json.loads(completion_body(7, request, reply, usage_of(request, reply)))
    assert answer["id"] == "chatcmpl-mock-7"
    assert answer["choices"][0]["message"]["content"] == "On its way."
    assert answer["choices"][0]["finish_reason"] == "stop"
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_a_tool_call_reply_names_the_function_and_finishes_with_tool_calls():
    reply = MockReply(tool_name="track", tool_arguments='{"id": "42"}')
    request = _request()
    message = json.loads(completion_body(3, request, reply, usage_of(request, reply)))["choices"][0]["message"]
    assert message["tool_calls"][0]["id"] == "call_mock_3"
    assert message["tool_calls"][0]["function"] == {"name": "track", "arguments": '{"id": "42"}'}


def test_a_stream_reassembles_to_the_reply_then_usage_then_done():
    request, reply = _request(stream=True, include_usage=True), MockReply(content="On its way, tomorrow.")
    events = stream_events(1, request, reply, usage_of(request, reply))
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "On its way, tomorrow."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_stream_that_did_not_ask_for_usage_gets_no_usage_chunk():
    request, reply = _request(stream=True), MockReply(content="On its way.")
    events = stream_events(2, request, reply, None)
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)
