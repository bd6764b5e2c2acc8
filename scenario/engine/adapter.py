"""The adapter interface, and turning whatever an adapter returns into messages.

``call`` may be ``async def`` or a plain ``def``: under ``arun`` a plain one is run on the shared
worker pool so it never blocks the caller's loop; under ``run`` the scenario owns its loop and
thread, so a plain one is simply called there (blocking agents parallelise for free).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any, ClassVar

from scenario.errors import AgentReturnError
from scenario.messages import AgentInput, AgentRole, Message
from scenario.result import ScenarioResult
from scenario.runtime.worker_pool import get_pool

AgentReturnTypes = str | Message | list[Message] | ScenarioResult | Any

# Message keys worth keeping when converting SDK objects: the rest are provider internals
# (litellm's provider_specific_fields, function_call=None, ...).
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "refusal", "audio")


class AgentAdapter(ABC):
    """Wrap your agent so the scenario can talk to it.

    Subclass, set ``role`` if it is not the agent under test, and implement ``call``::

        class MyAgent(scenario.AgentAdapter):
            async def call(self, input: scenario.AgentInput) -> scenario.AgentReturnTypes:
                return await my_agent.reply(input.messages)

    Return a string, an OpenAI-format message dict, a list of them (assistant ``tool_calls`` and
    ``role: "tool"`` results), a pydantic/litellm message object, ``[]`` for no message, or a
    :class:`ScenarioResult` to end the scenario with that verdict.
    """

    role: ClassVar[AgentRole] = AgentRole.AGENT

    @abstractmethod
    def call(self, input: AgentInput) -> AgentReturnTypes | Awaitable[AgentReturnTypes]:
        """Produce the next message(s) given the conversation so far."""

    @property
    def display_name(self) -> str:
        return type(self).__name__


def adapter_name(adapter: Any) -> str:
    return getattr(adapter, "display_name", None) or type(adapter).__name__


def runs_on_any_loop(adapter: Any) -> bool:
    """True when the adapter's ``call`` is one of the library's own (user simulator, judge, red
    team): those only build prompts and await the model loop, never block and keep no state bound
    to a loop, so ``run`` lets them run on the engine's loop instead of waking the run's thread.
    A subclass that overrides ``call`` is the user's code and runs where user code runs."""
    for klass in type(adapter).__mro__:
        if "call" in klass.__dict__:
            return bool(klass.__dict__.get("_library_call", False))
    return False


def is_async_call(adapter: Any) -> bool:
    call = adapter.call
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(call, "__call__", None))


async def invoke(adapter: Any, agent_input: AgentInput, *, offload_sync: bool) -> Any:
    """Call an adapter, sync or async, without blocking a loop we do not own."""
    if is_async_call(adapter):
        value = await adapter.call(agent_input)
    elif offload_sync:
        context = contextvars.copy_context()  # keep the run context and current span
        loop = asyncio.get_running_loop()
        value = await loop.run_in_executor(get_pool(), context.run, adapter.call, agent_input)
    else:
        value = adapter.call(agent_input)
    if inspect.isawaitable(value):  # a plain def returning a coroutine / future
        value = await value
    return value


def normalize_return(value: Any, *, role: AgentRole, adapter: str, step: str) -> list[Message] | ScenarioResult:
    """Messages (possibly none) or a verdict; a clear error for anything else."""
    if isinstance(value, ScenarioResult):
        return value
    default_role = "user" if role is AgentRole.USER else "assistant"
    if isinstance(value, list):
        messages: list[Message] = []
        for index, item in enumerate(value):
            if isinstance(item, (list, ScenarioResult)):
                raise _bad_return(item, adapter, step, f"item {index} of the returned list")
            messages.extend(_one_message(item, default_role, adapter, step, f"item {index} of the returned list"))
        return messages
    if value is None and role is AgentRole.JUDGE:
        return []
    return _one_message(value, default_role, adapter, step, "the return value")


def _one_message(value: Any, default_role: str, adapter: str, step: str, what: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict):
        if "role" not in value:
            raise AgentReturnError(
                f"Agent adapter {adapter} returned a dict without a 'role' ({what}) at step {step}: {value!r:.200}. "
                "Return an OpenAI-format message such as {'role': 'assistant', 'content': '...'}."
            )
        return [dict(value)]
    dumped = _dump_message_object(value)
    if dumped is not None:
        return [dumped]
    raise _bad_return(value, adapter, step, what)


def _dump_message_object(value: Any) -> dict[str, Any] | None:
    """pydantic models (litellm.Message, openai ChatCompletionMessage) with a role."""
    dump = getattr(value, "model_dump", None)
    if dump is None:
        return None
    try:
        data = dump(exclude_none=True)
    except TypeError:
        data = dump()
    if not isinstance(data, dict) or "role" not in data:
        return None
    message = {k: data[k] for k in _MESSAGE_KEYS if data.get(k) is not None}
    if "tool_calls" in message and not message["tool_calls"]:
        del message["tool_calls"]
    if message.get("role") == "assistant":
        message.setdefault("content", None)
    return message


def _bad_return(value: Any, adapter: str, step: str, what: str) -> AgentReturnError:
    return AgentReturnError(
        f"Agent adapter {adapter} returned {type(value).__name__} ({what}) at step {step}. "
        "Return a str, an OpenAI-format message dict, a list of message dicts, a pydantic/litellm "
        "message, [] for no message, or a scenario.ScenarioResult."
    )
