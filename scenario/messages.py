"""Messages: what travels between the simulator, the agent under test and the judge.

Pydantic models (and OpenAI-format dicts) so conversations serialise cleanly into stores, reports
and JSON, and so users get validation and editor completion for free.
"""

from __future__ import annotations

import warnings
from enum import Enum
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, model_validator

Message = dict[str, Any]
"""A chat message in OpenAI format: ``{"role": "user", "content": "hi"}``."""


class _MessageWithTrace(TypedDict, total=False):
    role: str
    content: Any
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    trace_id: str | None


# langwatch-scenario's names for OpenAI-format messages that may carry the trace id of the
# agent call that produced them. Messages here are plain dicts; these are type hints only.
ChatCompletionMessageParamWithTrace = _MessageWithTrace
ChatCompletionDeveloperMessageParamWithTrace = _MessageWithTrace
ChatCompletionSystemMessageParamWithTrace = _MessageWithTrace
ChatCompletionUserMessageParamWithTrace = _MessageWithTrace
ChatCompletionAssistantMessageParamWithTrace = _MessageWithTrace
ChatCompletionToolMessageParamWithTrace = _MessageWithTrace
ChatCompletionFunctionMessageParamWithTrace = _MessageWithTrace

ROLE_KEYS = ("user", "agent", "judge")


class AgentRole(Enum):
    """Which part an adapter plays in the conversation."""

    USER = "User"
    AGENT = "Agent"
    JUDGE = "Judge"

    @property
    def key(self) -> str:
        """Short lowercase name used in usage breakdowns and span attributes."""
        return self.name.lower()


class JudgmentRequest(BaseModel):
    """Asks the judge for a verdict now.

    ``criteria`` is set for a checkpoint (``scenario.judge(criteria=[...])``): the judge evaluates
    those instead of its own. Truthy, so ``if input.judgment_request:`` works as before.
    """

    criteria: list[str] | None = None
    additional_context: str | None = Field(
        None, description="Extra evidence for the judge (command output, file state), shown beside the transcript."
    )
    context: str | None = Field(None, description="Deprecated spelling of additional_context.")

    @model_validator(mode="after")
    def _context_alias(self) -> JudgmentRequest:
        if self.context is not None and self.additional_context is None:
            warnings.warn(
                "JudgmentRequest(context=...) is deprecated; write additional_context=... instead.",
                DeprecationWarning,
                stacklevel=3,
            )
            self.additional_context = self.context
        return self

    def __bool__(self) -> bool:
        return True


class AgentInput(BaseModel):
    """Everything an adapter's ``call`` receives.

    ``messages`` is the conversation itself, not a copy: a step or adapter that keeps a reference
    sees later messages arrive (as with langwatch-scenario). Copy it (``list(input.messages)``)
    to keep a snapshot. ``new_messages`` are the messages this adapter has not seen yet.
    ``propagation_headers`` are W3C trace-context headers (``traceparent``) for the current
    span: forward them on an HTTP call to a remote agent so its spans join the scenario's trace.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    thread_id: str
    # SkipValidation: pydantic would otherwise copy the list (and lose liveness) and reject
    # provider-specific message shapes that litellm and SDKs return.
    messages: Annotated[list[Message], SkipValidation]
    new_messages: Annotated[list[Message], SkipValidation]
    judgment_request: JudgmentRequest | None = None
    scenario_state: Any = Field(default=None, repr=False)
    propagation_headers: dict[str, str] = Field(default_factory=dict)

    def last_new_user_message(self) -> Message:
        """The most recent user message among the new messages; raises if there is none."""
        for message in reversed(self.new_messages):
            if message.get("role") == "user":
                return message
        raise ValueError(
            "AgentInput.last_new_user_message(): no new user message in this call. "
            "Check input.new_messages, or script a scenario.user(...) step before this agent step."
        )

    def last_new_user_message_str(self) -> str:
        """Text of the most recent new user message; raises if its content is not plain text."""
        content = self.last_new_user_message().get("content")
        if not isinstance(content, str):
            raise ValueError(
                f"AgentInput.last_new_user_message_str(): the last user message has "
                f"{type(content).__name__} content, not text; read input.last_new_user_message() instead."
            )
        return content
