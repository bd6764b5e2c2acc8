"""The conversation as it stands, and helpers to read it.

Messages are plain OpenAI-format dicts: they are what models take and what users already know.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .types import Message

if TYPE_CHECKING:  # pragma: no cover
    from .engine import ScenarioEngine


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
        engine: "ScenarioEngine | None" = None,
        fields: Optional[Dict[str, Any]] = None,
    ):
        self.name = name
        self.description = description
        self.thread_id = thread_id
        self.messages: List[Message] = []
        self.current_turn: int = 0
        self._engine = engine
        self._fields: Dict[str, Any] = dict(fields or {})

    # -- the scenario's definition ------------------------------------------------------------
    @property
    def fields(self) -> Dict[str, Any]:
        """The values given as ``run(..., fields={...})`` (a copy)."""
        return dict(self._fields)

    def field(self, name: str) -> Any:
        """One field of the scenario; None when it is not set or blank (``0`` and ``False`` are values)."""
        value = self._fields.get(name)
        return None if value is None or value == "" else value

    @property
    def criteria(self) -> List[str]:
        """The criteria of the scenario's judges, in the order the agents list them."""
        if self._engine is None:
            return []
        return [c for agent in self._engine.spec.agents for c in (getattr(agent, "criteria", None) or [])
                if agent.role.name == "JUDGE"]

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

    def last_agent_message(self) -> Message:
        """The newest assistant message; raises if there is none."""
        return self._last_with_role("assistant")

    def _last_with_role(self, role: str) -> Message:
        for message in reversed(self.messages):
            if message.get("role") == role:
                return message
        raise ValueError(f"ScenarioState: no message with role {role!r} in the conversation yet.")

    def tool_calls(self, tool_name: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every tool call the agent made, oldest first, optionally only those of one tool."""
        calls: List[Dict[str, Any]] = []
        for message in self.messages:
            if message.get("role") != "assistant":
                continue
            for call in message.get("tool_calls") or []:
                name = (call.get("function") or {}).get("name")
                if tool_name is None or name == tool_name:
                    calls.append(call)
        return calls

    def has_tool_call(self, tool_name: str) -> bool:
        """Whether the agent called ``tool_name`` at any point."""
        return bool(self.tool_calls(tool_name))

    def last_tool_call(self, tool_name: str) -> Optional[Dict[str, Any]]:
        """The agent's newest call to ``tool_name``, or None."""
        calls = self.tool_calls(tool_name)
        return calls[-1] if calls else None

    def transcript(self) -> str:
        """The conversation as tagged text, one element per message (what the judge reads)."""
        return render_transcript(self.messages)

    # -- writing ------------------------------------------------------------------------------
    def add_message(self, message: Message) -> None:
        """Append a message to the conversation (through the engine when one is attached, so
        turn bookkeeping and new-message tracking stay right)."""
        if self._engine is not None:
            self._engine.add_message(message)
        else:
            self.messages.append(message)

    def rollback_messages_to(self, index: int) -> List[Message]:
        """Remove the messages from position ``index`` on and return them.

        Adapters that must make the agent "forget" an exchange (the red-team agent backtracking
        after a refusal) use this; every adapter then sees the shortened conversation.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"ScenarioState.rollback_messages_to({index!r}): index must be an integer >= 0.")
        if self._engine is not None:
            return self._engine.rollback_messages_to(index)
        removed = self.messages[index:]
        del self.messages[index:]
        return removed

    def __repr__(self) -> str:
        return f"<ScenarioState {self.name!r} turn={self.current_turn} messages={len(self.messages)}>"


def message_text(message: Message) -> str:
    """Best-effort text of a message (content parts joined; tool calls rendered as name(args))."""
    content = message.get("content")
    parts: List[str] = []
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


def render_transcript(messages: List[Message]) -> str:
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


def dump_message(message: Message) -> str:
    """Compact JSON of a message for logs and spans."""
    return json.dumps(message, ensure_ascii=False, default=str)
