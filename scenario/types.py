"""Public data types: what an agent receives and what a scenario returns.

Pydantic models so results serialise cleanly into stores, reports and JSON, and so users get
validation and editor completion for free.
"""

from __future__ import annotations

import warnings
from enum import Enum
from typing import Annotated, Any, Dict, List, Literal, Optional, TypedDict

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SkipValidation, model_validator

Message = Dict[str, Any]
"""A chat message in OpenAI format: ``{"role": "user", "content": "hi"}``."""


class _MessageWithTrace(TypedDict, total=False):
    role: str
    content: Any
    name: str
    tool_calls: List[Dict[str, Any]]
    tool_call_id: str
    trace_id: Optional[str]


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

    criteria: Optional[List[str]] = None
    additional_context: Optional[str] = Field(
        None, description="Extra evidence for the judge (command output, file state), shown beside the transcript."
    )
    context: Optional[str] = Field(None, description="Deprecated spelling of additional_context.")

    @model_validator(mode="after")
    def _context_alias(self) -> "JudgmentRequest":
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
    messages: Annotated[List[Message], SkipValidation]
    new_messages: Annotated[List[Message], SkipValidation]
    judgment_request: Optional[JudgmentRequest] = None
    scenario_state: Any = Field(default=None, repr=False)
    propagation_headers: Dict[str, str] = Field(default_factory=dict)

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


class UsageTotals(BaseModel):
    """Tokens, calls and money for a group of model calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = Field(
        0, description="Calls whose cost the provider/litellm could not price; they add 0 to cost_usd."
    )
    cached_calls: int = Field(0, description="Calls answered from the replay cache; they cost nothing.")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: "UsageTotals") -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls
        self.cached_calls += other.cached_calls


class Usage(UsageTotals):
    """A scenario's (or batch's) usage with breakdowns by role and by model."""

    by_role: Dict[str, UsageTotals] = Field(default_factory=lambda: {k: UsageTotals() for k in ROLE_KEYS})
    by_model: Dict[str, UsageTotals] = Field(default_factory=dict)

    def record(
        self,
        *,
        role: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: Optional[float],
        cached: bool = False,
    ) -> None:
        """Add one model call to the totals and to both breakdowns."""
        call = UsageTotals(
            calls=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd or 0.0,
            unpriced_calls=1 if cost_usd is None and not cached else 0,
            cached_calls=1 if cached else 0,
        )
        self.add(call)
        self.by_role.setdefault(role, UsageTotals()).add(call)
        self.by_model.setdefault(model, UsageTotals()).add(call)

    def merge(self, other: "Usage") -> None:
        """Fold another rollup into this one (batches sum their runs this way)."""
        self.add(other)
        for key, totals in other.by_role.items():
            self.by_role.setdefault(key, UsageTotals()).add(totals)
        for key, totals in other.by_model.items():
            self.by_model.setdefault(key, UsageTotals()).add(totals)


CriterionStatus = Literal["passed", "failed", "inconclusive"]


class CriterionResult(BaseModel):
    """The judge's finding on one criterion.

    ``requirement`` is the criterion's text; ``criterion`` is the same text under the name
    langwatch-scenario uses. Give either when building one by hand.
    """

    requirement: str = ""
    status: CriterionStatus
    reasoning: Optional[str] = None
    criterion: str = ""

    @model_validator(mode="after")
    def _fill_names(self) -> "CriterionResult":
        if not self.requirement and not self.criterion:
            raise ValueError("CriterionResult needs the criterion text: requirement='...' (or criterion='...').")
        self.requirement = self.requirement or self.criterion
        self.criterion = self.criterion or self.requirement
        return self


class ErrorInfo(BaseModel):
    """What raised, and where, when a scenario ended because of an exception.

    ``traceback`` is the formatted traceback, exception chain included, with the library's own
    frames folded so the user's frames stand out (:mod:`scenario.tracebacks`).
    """

    type: str
    message: str
    where: str
    traceback: Optional[str] = None


class ModelCall(BaseModel):
    """One model call made during a run, in the order made: who asked, which model, what it cost.

    ``latency`` is the wall time of the whole call, retries and rate-limit waits included;
    ``attempts`` counts tries (1 when the first succeeded); ``rate_limited`` how many of them
    the provider answered with a rate limit. ``cost_usd`` is None when the call could not be
    priced. ``error`` is set on a call that failed after its last attempt.
    """

    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Optional[float] = None
    latency: float = 0.0
    attempts: int = 1
    rate_limited: int = 0
    waited: float = 0.0
    cached: bool = False
    error: Optional[str] = None


class ScenarioResult(BaseModel):
    """The outcome of one scenario run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    success: bool
    messages: List[Message] = Field(default_factory=list)
    reasoning: Optional[str] = None
    passed_criteria: List[str] = Field(default_factory=list)
    failed_criteria: List[str] = Field(
        default_factory=list,
        description="Criteria that kept the run from passing: the failed ones and the inconclusive ones.",
    )
    inconclusive_criteria: List[str] = Field(
        default_factory=list,
        description="Criteria the judge could not decide from the conversation; they keep the run from passing.",
    )
    criteria: List[CriterionResult] = Field(default_factory=list)
    total_time: Optional[float] = None
    agent_time: Optional[float] = None
    usage: Usage = Field(default_factory=Usage)
    error: Optional[ErrorInfo] = None
    thread_id: Optional[str] = None
    evaluations: List[Any] = Field(
        default_factory=list,
        description="Always empty here: langwatch-scenario fills it from its hosted evaluators.",
    )
    #: The simulator's, judge's and ``scenario.acompletion`` model calls, in order.
    model_calls: List[ModelCall] = Field(default_factory=list)

    _exception: Optional[BaseException] = PrivateAttr(default=None)

    @property
    def exception(self) -> Optional[BaseException]:
        """The original exception when the run ended on an error (not serialised)."""
        return self._exception

    def __repr__(self) -> str:
        verdict = "success" if self.success else "failure"
        return f"<ScenarioResult {verdict}: {self.reasoning!r}>"

    __str__ = __repr__


def __getattr__(name: str) -> Any:
    # langwatch-scenario's scenario.types also names these; they live where they are defined
    # (importing them at the top would be circular: both modules import this one).
    if name == "AgentReturnTypes":
        from .agents.adapter import AgentReturnTypes

        return AgentReturnTypes
    if name == "ScriptStep":
        from .script import ScriptStep

        return ScriptStep
    raise AttributeError(f"module 'scenario.types' has no attribute {name!r}")
