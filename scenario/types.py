"""``from scenario.types import ...``: the module path langwatch-scenario uses for its data types.

They live in :mod:`scenario.messages`, :mod:`scenario.usage` and :mod:`scenario.result`; this
module only re-exports them, plus the two names the peer also puts here.
"""

from __future__ import annotations

from scenario.engine.adapter import AgentReturnTypes
from scenario.messages import (
    ROLE_KEYS,
    AgentInput,
    AgentRole,
    ChatCompletionAssistantMessageParamWithTrace,
    ChatCompletionDeveloperMessageParamWithTrace,
    ChatCompletionFunctionMessageParamWithTrace,
    ChatCompletionMessageParamWithTrace,
    ChatCompletionSystemMessageParamWithTrace,
    ChatCompletionToolMessageParamWithTrace,
    ChatCompletionUserMessageParamWithTrace,
    JudgmentRequest,
    Message,
)
from scenario.result import CriterionResult, CriterionStatus, ErrorInfo, ScenarioResult
from scenario.script import ScriptStep
from scenario.usage import ModelCall, Usage, UsageTotals

__all__ = [
    "ROLE_KEYS", "AgentInput", "AgentReturnTypes", "AgentRole", "ChatCompletionAssistantMessageParamWithTrace",
    "ChatCompletionDeveloperMessageParamWithTrace", "ChatCompletionFunctionMessageParamWithTrace",
    "ChatCompletionMessageParamWithTrace", "ChatCompletionSystemMessageParamWithTrace",
    "ChatCompletionToolMessageParamWithTrace", "ChatCompletionUserMessageParamWithTrace", "CriterionResult",
    "CriterionStatus", "ErrorInfo", "JudgmentRequest", "Message", "ModelCall", "ScenarioResult", "ScriptStep",
    "Usage", "UsageTotals",
]
