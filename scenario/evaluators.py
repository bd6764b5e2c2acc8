"""langwatch-scenario's evaluator helpers (``scenario.evaluator(...)``, ``scenario.field(...)``, ...).

Policy: in langwatch-scenario, evaluators attached with ``run(evaluators=[...])`` are run by the
LangWatch hosted platform once the scenario has a verdict. This library has no hosted platform,
so the helpers here build the same descriptions (so a suite that builds them imports and runs),
``run`` warns once that ``evaluators=`` has no effect, and ``ScenarioResult.evaluations`` stays
empty. The mappings are real functions of the :class:`~scenario.ScenarioState`: a script step
can call them to read the same values itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scenario.engine.state import ScenarioState
from scenario.errors import ScenarioConfigError

EvaluationStatus = Literal["passed", "failed", "scored", "skipped", "error"]
EvaluatorMappingLiteral = str | int | float | bool
EvaluatorMapping = Callable[[ScenarioState], Any] | Callable[[ScenarioState], Awaitable[Any]] | EvaluatorMappingLiteral


class StateMapping:
    """A function of the scenario state that also names what it reads (``expression``)."""

    def __init__(self, expression: str, read: Callable[[ScenarioState], Any]) -> None:
        self.expression = expression
        self._read = read

    def __call__(self, state: ScenarioState) -> Any:
        return self._read(state)

    def __repr__(self) -> str:
        return f"<mapping {self.expression}>"


class ScenarioEvaluator(BaseModel):
    """One evaluator as ``scenario.evaluator(...)`` describes it (run by LangWatch, not here)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    evaluator: str
    required: bool | None = None
    mappings: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] | None = None


class EvaluationCost(BaseModel):
    currency: str
    amount: float


class EvaluationResult(BaseModel):
    """The shape of one hosted evaluator's result (never produced by this library)."""

    evaluator_id: str
    name: str
    status: EvaluationStatus
    required: bool
    passed: bool | None = None
    score: float | None = None
    label: str | None = None
    details: str | None = None
    cost: EvaluationCost | None = None
    inputs: dict[str, str] | None = None


class _Conversation:
    """Mappings that read the conversation."""

    first_user_message = StateMapping("state.first_user_message() or None", lambda s: s.first_user_message() or None)
    last_agent_message = StateMapping("state.last_agent_message() or None", lambda s: s.last_agent_message() or None)
    transcript = StateMapping("state.transcript()", lambda s: s.transcript())
    messages = StateMapping("state.messages", lambda s: list(s.messages))


class _ScenarioSource:
    """Mappings that read the scenario's definition."""

    situation = StateMapping("state.description", lambda s: s.description)
    criteria = StateMapping('"\\n".join(state.criteria)', lambda s: "\n".join(s.criteria))


class ToolCallPick:
    """Input (parsed arguments) and output (the tool message's content) of the first or last call."""

    def __init__(self, name: str, pick: str) -> None:
        def call(state: ScenarioState) -> Any:
            calls = state.tool_calls(name)
            return calls.first if pick == "first" else calls.last

        self.input = StateMapping(f"tool_calls({name!r}).{pick}.input", lambda s: call(s).input)
        self.output = StateMapping(f"tool_calls({name!r}).{pick}.output", lambda s: call(s).output)


class ToolCallsMapping:
    """The calls of one tool: ``first``, ``last``, every call's ``inputs`` and ``outputs``."""

    def __init__(self, name: str) -> None:
        self.first = ToolCallPick(name, "first")
        self.last = ToolCallPick(name, "last")
        self.inputs = StateMapping(f"tool_calls({name!r}).inputs", lambda s: s.tool_calls(name).inputs)
        self.outputs = StateMapping(f"tool_calls({name!r}).outputs", lambda s: s.tool_calls(name).outputs)


class _Trace:
    """Mappings that read trace evidence (here: the conversation's tool calls)."""

    contexts = StateMapping("retrieved contexts (none without the LangWatch platform)", lambda s: [])

    @staticmethod
    def tool_calls(name: str) -> ToolCallsMapping:
        return ToolCallsMapping(name)


conversation = _Conversation()
scenario_source = _ScenarioSource()
trace = _Trace()


def field(name: str) -> StateMapping:
    """``state.field(name)``: one of the values given as ``run(..., fields={...})``."""
    return StateMapping(f"state.field({name!r})", lambda s: s.field(name))


def value(literal: EvaluatorMappingLiteral) -> StateMapping:
    """A mapping that always gives ``literal``."""
    return StateMapping(repr(literal), lambda s: literal)


def evaluator(
    evaluator: str,
    *,
    required: bool | None = None,
    mappings: dict[str, EvaluatorMapping] | None = None,
    settings: dict[str, Any] | None = None,
) -> ScenarioEvaluator:
    """Describe a LangWatch evaluator for ``run(evaluators=[...])`` (no effect here; see module doc)."""
    if not isinstance(evaluator, str) or not evaluator.strip():
        raise ScenarioConfigError(
            f"scenario.evaluator({evaluator!r}): name the evaluator, e.g. 'ragas/sql_query_equivalence'."
        )
    return ScenarioEvaluator(evaluator=evaluator, required=required, mappings=dict(mappings or {}), settings=settings)


__all__: list[str] = [
    "EvaluationCost", "EvaluationResult", "EvaluationStatus", "EvaluatorMapping", "EvaluatorMappingLiteral",
    "ScenarioEvaluator", "StateMapping", "ToolCallPick", "ToolCallsMapping", "conversation", "evaluator",
    "field", "scenario_source", "trace", "value",
]
