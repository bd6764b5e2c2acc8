"""A model answered by a Python function, in process: unit tests of a prompt with no server.

The HTTP mock server (:mod:`scenario.testing.mock_llm`) tests the whole path through litellm. For a
unit test of one prompt (does the judge fail a rude agent? does the simulator open with the persona's
question?) that is more machinery than the question needs. :class:`FunctionModel` replaces only the
innermost call of the model-call stack (:mod:`scenario.llm.layers`): accounting, span, retries and
rate limits still run, so ``result.usage`` and the trace look as they would with a real model, but
the answer comes from your function::

    from scenario.testing import FunctionModel, judge_verdict

    def judge(messages, tools):
        transcript = messages[-1]["content"]
        return judge_verdict(tools, "passed" if "order number" in transcript else "failed")

    JudgeAgent(criteria=["The agent asks for the order number"], model=FunctionModel(judge))

Policy:

- ``fn(messages, tools)`` gets the chat messages exactly as the agent built them (system prompt
  first) and the tool schemas offered (``[]`` when none). It may be sync or async. It returns a
  string (the reply text), a :class:`ToolCallReply` or a list of them (tool calls), a
  ``{"content": ..., "tool_calls": [...]}`` message dict, or a :class:`scenario.llm.call.ModelResponse`.
  Anything else is a ``TypeError`` that says what was returned and what is accepted.
- Pass it as ``model=FunctionModel(fn)`` (or ``client=``) to ``JudgeAgent``, ``UserSimulatorAgent``
  or ``RedTeamAgent``. It is recorded under the model name ``function:<fn name>`` with no tokens
  and a cost of $0: nothing was spent.
- It is not replayed from the replay cache: a cached answer would hide an edit to ``fn``, and the
  function is already deterministic and free.
- An exception raised by ``fn`` fails the attempt like a provider error (classified, retried only
  when transient, then raised as ``ModelCallError`` with the exception as ``original``).
- Every request is kept in :attr:`FunctionModel.requests` for assertions.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scenario.llm.call import InProcessModel, ModelRequest, ModelResponse

__all__ = ["FunctionModel", "ModelRequestSeen", "ToolCallReply", "judge_verdict"]


@dataclass(frozen=True)
class ToolCallReply:
    """A tool call as the model's answer: ``ToolCallReply("finish_test", {"criteria": ..., ...})``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRequestSeen:
    """One request a :class:`FunctionModel` answered: who asked, with which messages and tools."""

    role: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    tool_choice: Any = None


class FunctionModel(InProcessModel):
    """A model whose answer is ``fn(messages, tools)``; see the module docstring."""

    def __init__(self, fn: Callable[[list[dict[str, Any]], list[dict[str, Any]]], Any], *, name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionModel(fn={fn!r}): give a function fn(messages, tools) -> reply.")
        self.fn = fn
        self.name = f"function:{name or getattr(fn, '__name__', type(fn).__name__)}"
        self._lock = threading.Lock()
        self._requests: list[ModelRequestSeen] = []

    @property
    def requests(self) -> list[ModelRequestSeen]:
        """The requests answered so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    async def respond(self, request: ModelRequest) -> ModelResponse:
        seen = ModelRequestSeen(role=request.role, messages=list(request.messages), tools=list(request.tools),
                                tool_choice=request.kwargs.get("tool_choice"))
        with self._lock:
            self._requests.append(seen)
        value = self.fn(seen.messages, seen.tools)
        if inspect.isawaitable(value):
            value = await value
        return self._response(value)

    def _response(self, value: Any) -> ModelResponse:
        if isinstance(value, ModelResponse):
            return value
        if isinstance(value, str):
            return ModelResponse(content=value, model=self.name, cost_usd=0.0)
        if isinstance(value, ToolCallReply):
            value = [value]
        if isinstance(value, list) and value and all(isinstance(v, ToolCallReply) for v in value):
            return ModelResponse(content=None, tool_calls=_tool_calls(value), model=self.name, cost_usd=0.0)
        if isinstance(value, dict) and ("content" in value or "tool_calls" in value):
            return ModelResponse(content=value.get("content"), tool_calls=list(value.get("tool_calls") or []),
                                 model=self.name, cost_usd=0.0)
        raise TypeError(
            f"{self.name} returned {value!r:.200}; return a string, a ToolCallReply (or a list of them), "
            "a {'content': ..., 'tool_calls': [...]} message or a ModelResponse."
        )

    def __repr__(self) -> str:
        return f"FunctionModel({self.name!r})"


def _tool_calls(replies: list[ToolCallReply]) -> list[dict[str, Any]]:
    return [
        {"id": f"call_{index}", "type": "function",
         "function": {"name": reply.name, "arguments": json.dumps(reply.arguments, ensure_ascii=False)}}
        for index, reply in enumerate(replies, start=1)
    ]


def judge_verdict(tools: list[dict[str, Any]], status: str | dict[str, str] = "passed", reasoning: str = "") -> ToolCallReply:
    """The judge's ``finish_test`` call ruling on every criterion offered in ``tools``.

    ``status`` is one status for all criteria (``"passed"``, ``"failed"``, ``"inconclusive"``) or a
    dict from criterion text to status (criteria left out are ``"passed"``).
    """
    finish = next((t for t in tools if t.get("function", {}).get("name") == "finish_test"), None)
    if finish is None:
        offered = [t.get("function", {}).get("name") for t in tools]
        raise ValueError(f"judge_verdict: no finish_test among the tools offered ({offered}); is this the judge's request?")
    properties = finish["function"]["parameters"]["properties"]["criteria"]["properties"]
    criteria = {}
    for key, schema in properties.items():
        criterion = schema.get("description", key)
        given = status if isinstance(status, str) else status.get(criterion, "passed")
        criteria[key] = {"status": given, "reasoning": reasoning or f"{given} by the test's function model"}
    return ToolCallReply("finish_test", {"criteria": criteria, "reasoning": reasoning or "decided by a function model"})
