"""The mock server's answers as bytes on the wire, in OpenAI's chat-completions format.

Policy: the mock must look like a real provider to litellm and the openai SDK, byte for byte
where they care: the same JSON shape for completions and stream chunks (SSE, ``[DONE]``, a usage
chunk when asked), the same error body ``type``/``code`` per HTTP status (so a client maps a 429
to the same exception a real 429 causes), and both ``Retry-After`` headers. Everything here is a
pure function of the parsed request and the reply :mod:`scenario.testing.mock_behavior` chose, so
it is testable without a socket and the server stays plumbing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from scenario.testing.mock_behavior import ChatRequest, MockReply, estimate_tokens

# (type, code) of the OpenAI error body for each status, so that client
# libraries map the answer to the same exception a real provider would cause.
ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

MALFORMED_BODY = b'{"id": "chatcmpl-mock", "choices": [ <<mock:malformed response, not JSON>>'

MOCK_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "mock-model")


def models_body() -> dict[str, Any]:
    """The ``GET /v1/models`` answer."""
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "scenario-mock"} for m in MOCK_MODELS]
    return {"object": "list", "data": data}


def error_body(status: int, retry_after: float | None, message: str, code: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The JSON body and headers of an OpenAI-style error answer with ``status``."""
    err_type, default_code = ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    body = {"error": {"message": message, "type": err_type, "param": None, "code": code or default_code}}
    headers = {}
    if retry_after is not None:
        # OpenAI sends both; the openai SDK prefers the millisecond one.
        headers["Retry-After"] = format_seconds(retry_after)
        headers["retry-after-ms"] = str(int(round(retry_after * 1000)))
    return json.dumps(body).encode(), headers


def format_seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def usage(parsed: ChatRequest, reply: MockReply) -> dict[str, int]:
    """The ``usage`` block: tokens estimated from characters, the same way for every answer (the
    server reads it through its ``_usage`` hook, so a test's subclass can count or change it)."""
    prompt = estimate_tokens(parsed.prompt_chars)
    completion = estimate_tokens(reply.completion_chars)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(n: int, parsed: ChatRequest, reply: MockReply, usage_block: dict[str, int]) -> bytes:
    """A non-streamed ``chat.completion``; ``n`` numbers its id and tool-call id."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_name:
        message["tool_calls"] = [
            {
                "id": f"call_mock_{n}",
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.tool_arguments or "{}"},
            }
        ]
    else:
        message["tool_calls"] = None
    body = {
        "id": f"chatcmpl-mock-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": parsed.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": usage_block,
    }
    return json.dumps(body).encode()


def stream_events(n: int, parsed: ChatRequest, reply: MockReply, usage_block: dict[str, int] | None) -> list[bytes]:
    """The server-sent events of a streamed answer, ``[DONE]`` included, in order; the usage chunk
    (``usage_block``) is sent when the request asked for it (``stream_options.include_usage``)."""
    base = {
        "id": f"chatcmpl-mock-{n}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": parsed.model,
        "system_fingerprint": "fp_mock",
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if parsed.include_usage:
            data["usage"] = None
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    chunks: list[bytes] = []
    if reply.tool_name:
        chunks.append(
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": f"call_mock_{n}",
                            "type": "function",
                            "function": {"name": reply.tool_name, "arguments": ""},
                        }
                    ],
                }
            )
        )
        for piece in pieces(reply.tool_arguments or "{}"):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        chunks.append(chunk({"role": "assistant", "content": ""}))
        for piece in pieces(reply.content or ""):
            chunks.append(chunk({"content": piece}))
    chunks.append(chunk({}, reply.finish_reason))
    if parsed.include_usage and usage_block is not None:
        usage_chunk = dict(base, choices=[], usage=usage_block)
        chunks.append(b"data: " + json.dumps(usage_chunk).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def pieces(text: str, count: int = 3) -> list[str]:
    """Split ``text`` into up to ``count`` consecutive pieces (stream deltas)."""
    if not text:
        return []
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]
