"""The nouns of one model call: the request that goes down the layers and the response that comes up.

Every layer of :mod:`scenario.llm.layers` is a ``Complete``: an async function from a
:class:`ModelRequest` to a :class:`ModelResponse`. The innermost one asks litellm (or the user's own
client, or an :class:`InProcessModel`); the ones around it add the replay cache, accounting, error
messages, the span, retries and rate limits, each without knowing what is inside it. So each can be
tested against a fake inner call, and a test double of the model slots in at the bottom.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from scenario.llm.model_loop import litellm_module
from scenario.settings import ModelConfig


@dataclass(eq=False)
class ModelRequest:
    """One logical model call on behalf of ``role`` ("user", "judge" or "agent").

    ``kwargs`` are litellm's arguments (``model`` and ``messages`` always present); ``timeout`` is
    seconds per attempt. ``retry_observers`` are called with each :class:`scenario.llm.retry.RetryEvent`
    before a retry sleeps: outer layers add theirs (the span's event, the run's counters) on the way down.
    """

    role: str
    kwargs: dict[str, Any]
    timeout: float
    retry_observers: list[Callable[[Any], None]] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.kwargs["model"]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.kwargs.get("messages", [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.kwargs.get("tools") or []


@dataclass
class ModelResponse:
    """What a model call produced, already normalised to plain data.

    ``raw`` is the provider's own response object (litellm's, or the client's), for callers that
    want it back (``scenario.acompletion``); it is never cached.
    """

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cached: bool = False
    attempts: int = 1
    raw: Any = field(default=None, repr=False, compare=False)

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        return msg

    def cacheable(self) -> dict[str, Any]:
        """The fields a replay needs (not ``cached``/``attempts``, which describe this call, nor ``raw``)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("cached", "attempts", "raw")}


Complete = Callable[[ModelRequest], Awaitable[ModelResponse]]


class InProcessModel(abc.ABC):
    """A model answered by code in this process instead of a provider.

    Handed to an agent as ``client=`` (or ``model=``), it replaces only the innermost litellm call:
    the request still goes through the layers (accounting, span, retries, rate limits), so a unit
    test sees what a real call would record. :class:`scenario.testing.FunctionModel` is the one the
    library ships.
    """

    #: The model name recorded in usage, spans and ``result.usage`` (``"function:<name>"``).
    name: str = "in-process"

    @abc.abstractmethod
    async def respond(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` (raise to fail the attempt, as a provider error would)."""


def request_kwargs(config: ModelConfig, messages: list[dict[str, Any]], tools: Any, tool_choice: Any) -> dict[str, Any]:
    """litellm's arguments for the library's own agents' call."""
    kwargs: dict[str, Any] = {k: v for k, v in config.model_dump().items() if v is not None}
    kwargs["messages"] = messages
    # We retry ourselves (policy, Retry-After, accounting); the OpenAI SDK's hidden retries would
    # multiply attempts and hide them.
    kwargs.setdefault("max_retries", 0)
    if tools:
        kwargs["tools"] = tools
        # litellm routes any call with tools through its MCP gateway check, which imports the
        # optional `mcp` package; judge tools are plain functions, so skip it.
        kwargs["_skip_mcp_handler"] = True
    if tool_choice is not None:
        kwargs["tool_choice"] = tool_choice
    return kwargs


def cache_payload(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What of a request decides its answer: credentials and transport details do not."""
    return {k: v for k, v in kwargs.items() if k not in ("api_key", "api_base", "timeout", "max_retries", "_skip_mcp_handler", "client")}


def estimate_tokens(kwargs: dict[str, Any]) -> int:
    """A rate limiter's guess of a request's tokens before the provider says (characters / 4)."""
    text = json.dumps(kwargs.get("messages", []), default=str)
    return len(text) // 4 + int(kwargs.get("max_tokens") or 256)


def parse_response(response: Any, requested_model: str) -> ModelResponse:
    """litellm's (or an OpenAI-compatible client's) response as plain data, priced when possible."""
    try:
        choice = response.choices[0]
        message = choice.message
    except (AttributeError, IndexError, TypeError) as exc:
        raise ValueError(f"model {requested_model!r} returned no choices: {response!r:.300}") from exc
    tool_calls = []
    for call in getattr(message, "tool_calls", None) or []:
        data = call.model_dump() if hasattr(call, "model_dump") else dict(call)
        function = data.get("function") or {}
        tool_calls.append(
            {
                "id": data.get("id"),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": function.get("arguments") or "{}"},
            }
        )
    usage = getattr(response, "usage", None)
    input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
    if input_tokens == 0 and output_tokens == 0:
        # The provider reported no usage (litellm fills in zeros): the cost is unknown, not $0.
        cost = None
    elif cost is None and usage is not None:
        try:
            cost = litellm_module().completion_cost(completion_response=response)
        except Exception:
            cost = None  # unknown model price: recorded as unpriced, never a crash
    return ModelResponse(
        content=getattr(message, "content", None),
        tool_calls=tool_calls,
        model=getattr(response, "model", None) or requested_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=float(cost) if cost is not None else None,
        raw=response,
    )
