"""The conversation as it stands, and helpers to read it.

The state is plain data: the run's spec, its messages and turn. It never calls the engine; the
engine hands it two callbacks instead (``on_append``: a message was added, ``on_rollback``: the
conversation was cut), so a message added by a script step and one added by the engine take the
same path, and a state built by hand (a unit test of a step) works alone.

Messages are plain OpenAI-format dicts: they are what models take and what users already know.
The reading helpers return what langwatch-scenario's return (a suite written for it asserts on
them): ``last_message()``/``last_user_message()`` the message dict, ``first_user_message()`` and
``last_agent_message()`` the text ("" when there is none), ``tool_calls(name)`` a
:class:`ToolCalls` sequence, ``transcript()`` one ``role: text`` line per message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, overload

from scenario.compat.peer_only import MIGRATING, NotSupportedError
from scenario.messages import Message
from scenario.settings import Settings, settings
from scenario.spec import ScenarioSpec


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool the agent made, read from its assistant messages.

    ``input`` is the parsed arguments (the raw string when they are not JSON); ``output`` is the
    content of the ``tool`` message answering the call (None when there is none yet); ``turn``
    the turn the call was made in; ``id`` the call id. The empty call that
    :attr:`ToolCalls.first`/:attr:`ToolCalls.last` give when the tool was never called is
    falsy, with ``input`` and ``output`` None.
    """

    name: str
    input: Any = None
    output: Any = None
    turn: int | None = None
    id: str | None = None
    #: "message" for a real call; None for the empty stand-in (langwatch-scenario also has
    #: "span" for calls read from in-process spans, which this library does not collect).
    source: str | None = None

    def __bool__(self) -> bool:
        return self.source is not None


class ToolCalls(Sequence[ToolCall]):
    """The tool calls of a run, oldest first: a sequence with ``first``, ``last``, ``inputs``
    and ``outputs``, so ``state.tool_calls("run_sql").last.input["sql"]`` reads the arguments
    of the newest call."""

    def __init__(self, calls: Sequence[ToolCall], name: str | None = None) -> None:
        self._calls = list(calls)
        self._name = name

    @overload
    def __getitem__(self, index: int) -> ToolCall: ...

    @overload
    def __getitem__(self, index: slice) -> list[ToolCall]: ...

    def __getitem__(self, index: int | slice) -> ToolCall | list[ToolCall]:
        return self._calls[index]

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[ToolCall]:
        return iter(self._calls)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ToolCalls):
            return self._calls == other._calls
        if isinstance(other, list):
            return self._calls == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"ToolCalls({self._calls!r})"

    @property
    def first(self) -> ToolCall:
        """The oldest call; an empty, falsy call when there is none."""
        return self._calls[0] if self._calls else ToolCall(name=self._name or "")

    @property
    def last(self) -> ToolCall:
        """The newest call; an empty, falsy call when there is none."""
        return self._calls[-1] if self._calls else ToolCall(name=self._name or "")

    @property
    def inputs(self) -> list[Any]:
        """Every call's parsed arguments, in order."""
        return [call.input for call in self._calls]

    @property
    def outputs(self) -> list[Any]:
        """Every call's tool-message content (None where unanswered), in order."""
        return [call.output for call in self._calls]


class ScenarioState:
    """What a script step or adapter sees of the running scenario.

    One object per run: nothing on it is shared with other runs.
    """

    def __init__(
        self,
        *,
        description: str,
        thread_id: str,
        name: str = "",
        fields: dict[str, Any] | None = None,
        spec: ScenarioSpec | None = None,
        on_append: Callable[[Message], None] | None = None,
        on_rollback: Callable[[int], None] | None = None,
    ):
        self.name = name
        self.description = description
        self.thread_id = thread_id
        self.messages: list[Message] = []
        self.current_turn: int = 0
        self._spec = spec
        self._on_append = on_append
        self._on_rollback = on_rollback
        self._fields: dict[str, Any] = dict(fields or {})
        # id(message) -> the turn it was added in (kept by add_message), for ToolCall.turn. A
        # message added by appending to `messages` directly has no entry.
        self._message_turns: dict[int, int] = {}

    def scenario_replay_key(self) -> dict[str, Any]:
        """What of the state decides a cached call's answer (``@scenario.cache`` on ``call(self, state)``):
        the conversation and the description, never the per-run thread id."""
        return {"messages": self.messages, "description": self.description}

    # -- the scenario's definition ------------------------------------------------------------
    @property
    def fields(self) -> dict[str, Any]:
        """The values given as ``run(..., fields={...})`` (a copy)."""
        return dict(self._fields)

    def field(self, name: str) -> Any:
        """One field of the scenario; None when it is not set or blank (``0`` and ``False`` are values)."""
        value = self._fields.get(name)
        return None if value is None or value == "" else value

    @property
    def criteria(self) -> list[str]:
        """The criteria of the scenario's judges, in the order the agents list them."""
        return self._spec.criteria() if self._spec is not None else []

    @property
    def config(self) -> Settings:
        """The settings this run uses (``max_turns``, ``min_turns``, ``verbose``, ``cache_key``
        are the run's own values, keywords of ``run`` included): langwatch-scenario's
        ``state.config``. A copy: changing it changes nothing."""
        current = settings()
        spec = self._spec
        if spec is None:
            return current.model_copy()
        return current.model_copy(update={
            "max_turns": spec.max_turns, "min_turns": spec.min_turns, "verbose": spec.verbose,
            "cache_key": spec.cache_key if spec.cache_key is not None else current.cache_key,
        })

    # -- reading ------------------------------------------------------------------------------
    def last_message(self) -> Message:
        """The newest message; raises if the conversation is empty."""
        if not self.messages:
            raise ValueError("ScenarioState.last_message(): the conversation has no messages yet.")
        return self.messages[-1]

    def last_user_message(self) -> Message:
        """The newest user message; raises if there is none."""
        return self._last_with_role("user")

    def first_user_message(self) -> str:
        """Text of the first user message, or "" when there is none yet."""
        for message in self.messages:
            if message.get("role") == "user":
                return message_text(message)
        return ""

    def last_agent_message(self) -> str:
        """Text of the newest assistant message, or "" when the agent has not answered yet.

        Text, as with langwatch-scenario (``"refund" in state.last_agent_message()``); for the
        message dict itself, read ``state.messages`` or ``result.messages``.
        """
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                return message_text(message)
        return ""

    def _last_with_role(self, role: str) -> Message:
        for message in reversed(self.messages):
            if message.get("role") == role:
                return message
        raise ValueError(f"ScenarioState: no message with role {role!r} in the conversation yet.")

    def tool_calls(self, tool_name: str | None = None) -> ToolCalls:
        """Every tool call the agent made, oldest first, optionally only those of one tool.

        Read from the assistant messages' ``tool_calls``, each joined to the ``tool`` message that
        answers it: ``state.tool_calls("lookup").last.input`` is the newest call's arguments.
        """
        outputs = {
            message.get("tool_call_id"): message.get("content")
            for message in self.messages
            if message.get("role") == "tool" and message.get("tool_call_id") is not None
        }
        calls: list[ToolCall] = []
        for message in self.messages:
            if message.get("role") != "assistant":
                continue
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                name = str(function.get("name", ""))
                if tool_name is not None and name != tool_name:
                    continue
                call_id = call.get("id")
                calls.append(ToolCall(
                    name=name, input=_parse_arguments(function.get("arguments")),
                    output=outputs.get(call_id) if call_id is not None else None,
                    turn=self._message_turns.get(id(message)), id=call_id, source="message",
                ))
        return ToolCalls(calls, tool_name)

    def has_tool_call(self, tool_name: str) -> bool:
        """Whether the agent called ``tool_name`` at any point."""
        return self.last_tool_call(tool_name) is not None

    def last_tool_call(self, tool_name: str) -> dict[str, Any] | None:
        """The agent's newest call to ``tool_name`` as the message's tool-call dict
        (``["function"]["arguments"]`` is the JSON string), or None."""
        for message in reversed(self.messages):
            if message.get("role") != "assistant":
                continue
            for call in reversed(message.get("tool_calls") or []):
                if isinstance(call, dict) and (call.get("function") or {}).get("name") == tool_name:
                    return call
        return None

    def transcript(self) -> str:
        """The conversation as one ``role: text`` line per message (langwatch-scenario's format).

        The judge reads a tagged rendering instead (:func:`render_transcript`), where multi-line
        content cannot pass for a new speaker.
        """
        return "\n".join(f"{message.get('role', 'unknown')}: {message_text(message)}" for message in self.messages)

    # -- langwatch-scenario's span views: not collected here -----------------------------------
    @property
    def spans(self) -> Any:
        """Not available: langwatch-scenario reads the agent's in-process OpenTelemetry spans here;
        this library does not collect them (raises :class:`scenario.NotSupportedError`)."""
        _no_span_views("spans")

    @property
    def traces(self) -> Any:
        """Not available (see :attr:`spans`)."""
        _no_span_views("traces")

    @property
    def contexts(self) -> Any:
        """Not available (see :attr:`spans`): retrieved contexts come from RAG spans there."""
        _no_span_views("contexts")

    @property
    def turns(self) -> Any:
        """Not available (see :attr:`spans`): each turn's view carries its trace there."""
        _no_span_views("turns")

    @property
    def timeline(self) -> list[Any]:
        """langwatch-scenario's voice events of the run: always empty here (no voice agents)."""
        return []

    def set_effects(self, effects: list[Any]) -> None:
        """langwatch-scenario's audio effects for the user simulator: voice, not provided here."""
        raise NotSupportedError(
            f"ScenarioState.set_effects() sets audio effects for voice agents, which this library does not "
            f"provide; remove it from this test, see {MIGRATING}."
        )

    # -- writing ------------------------------------------------------------------------------
    def add_message(self, message: Message) -> None:
        """Append a message to the conversation (the run then prints and broadcasts it, and
        every adapter sees it as new)."""
        self.messages.append(message)
        self._message_turns[id(message)] = self.current_turn  # for ToolCall.turn
        if self._on_append is not None:
            self._on_append(message)

    def rollback_messages_to(self, index: int) -> list[Message]:
        """Remove the messages from position ``index`` on and return them.

        Adapters that must make the agent "forget" an exchange (the red-team agent backtracking
        after a refusal) use this; every adapter then sees the shortened conversation.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"ScenarioState.rollback_messages_to({index!r}): index must be an integer >= 0.")
        index = min(index, len(self.messages))
        removed = self.messages[index:]
        del self.messages[index:]  # in place: every holder of the list sees the cut
        for message in removed:  # their ids may be reused by new messages
            self._message_turns.pop(id(message), None)
        if self._on_rollback is not None:
            self._on_rollback(index)
        return removed

    def __repr__(self) -> str:
        return f"<ScenarioState {self.name!r} turn={self.current_turn} messages={len(self.messages)}>"


def _no_span_views(name: str) -> NoReturn:
    raise NotSupportedError(
        f"ScenarioState.{name} reads the OpenTelemetry spans langwatch-scenario collects from your agent "
        "in-process; this library does not collect them. Read the conversation instead: "
        "state.tool_calls(name) (each ToolCall has its turn), state.messages, or return the assistant "
        f"tool_calls and tool results from your adapter so they are in the messages; see {MIGRATING}."
    )


def _parse_arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def message_text(message: Message) -> str:
    """Best-effort text of a message (content parts joined; tool calls rendered as name(args))."""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        parts.append(f"{function.get('name')}({function.get('arguments', '')})")
    return "\n".join(p for p in parts if p)


def render_transcript(messages: list[Message]) -> str:
    """Tagged transcript: ``<message role="user">...</message>`` per message.

    Tags rather than bare "role: text" lines so multi-line content cannot be mistaken for a
    new speaker.
    """
    lines = []
    for message in messages:
        role = message.get("role", "unknown")
        attrs = f' role="{role}"'
        if role == "tool" and message.get("tool_call_id"):
            attrs += f' tool_call_id="{message["tool_call_id"]}"'
        lines.append(f"<message{attrs}>{message_text(message)}</message>")
    return "\n".join(lines)
