"""What a scenario returns: its verdict, per-criterion results, the error that ended it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from scenario.messages import Message
from scenario.usage import ModelCall, Usage

CriterionStatus = Literal["passed", "failed", "inconclusive"]


class CriterionResult(BaseModel):
    """The judge's finding on one criterion.

    ``requirement`` is the criterion's text; ``criterion`` is the same text under the name
    langwatch-scenario uses. Give either when building one by hand.
    """

    requirement: str = ""
    status: CriterionStatus
    reasoning: str | None = None
    criterion: str = ""

    @model_validator(mode="after")
    def _fill_names(self) -> CriterionResult:
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
    traceback: str | None = None


class ScenarioResult(BaseModel):
    """The outcome of one scenario run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    success: bool
    messages: list[Message] = Field(default_factory=list)
    reasoning: str | None = None
    passed_criteria: list[str] = Field(default_factory=list)
    failed_criteria: list[str] = Field(
        default_factory=list,
        description="Criteria that kept the run from passing: the failed ones and the inconclusive ones.",
    )
    inconclusive_criteria: list[str] = Field(
        default_factory=list,
        description="Criteria the judge could not decide from the conversation; they keep the run from passing.",
    )
    criteria: list[CriterionResult] = Field(default_factory=list)
    total_time: float | None = None
    agent_time: float | None = None
    usage: Usage = Field(default_factory=Usage)
    error: ErrorInfo | None = None
    thread_id: str | None = None
    evaluations: list[Any] = Field(
        default_factory=list,
        description="Always empty here: langwatch-scenario fills it from its hosted evaluators.",
    )
    #: The simulator's, judge's and ``scenario.acompletion`` model calls, in order.
    model_calls: list[ModelCall] = Field(default_factory=list)

    _exception: BaseException | None = PrivateAttr(default=None)

    @property
    def exception(self) -> BaseException | None:
        """The original exception when the run ended on an error (not serialised)."""
        return self._exception

    def __repr__(self) -> str:
        verdict = "success" if self.success else "failure"
        return f"<ScenarioResult {verdict}: {self.reasoning!r}>"

    __str__ = __repr__
