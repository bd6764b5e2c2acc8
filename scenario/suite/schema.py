"""The suite file format: what a ``.yaml``/``.toml`` suite may say, as pydantic models.

Policy: the schema is strict (``extra="forbid"``), because a misspelt key that is silently
ignored is a test that silently checks less; every unknown key is reported with the keys allowed
there. Shorthands keep files short (``model: openai/gpt-4o-mini``, ``agent: pkg.mod:factory``,
``- user: text`` for a step) and are expanded here, so everything after loading sees one shape.
The format is documented in docs/cli.md; problems are phrased by :mod:`scenario.suite.problems`.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenario import script as script_steps
from scenario.suite.problems import Loc, did_you_mean

DEFAULT_MIN_PASS_RATE = 1.0
DEFAULT_RUNS = 1

IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
STEP_KINDS = ("user", "agent", "judge", "proceed", "succeed", "fail", "message")


def check_import_path(value: str) -> str:
    """``value`` if it reads ``package.module:factory``; a ValueError that shows the form if not."""
    if not IMPORT_PATH_RE.match(value):
        raise ValueError(
            f"{value!r} is not an import path; write package.module:factory (a callable returning your AgentAdapter)"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelSection(_Strict):
    """The model the user simulator and judge call (the agent under test brings its own)."""

    name: str = Field(description="litellm model string, e.g. openai/gpt-4o-mini")
    api_base: str | None = None
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (the key itself never goes in the file)."
    )
    temperature: float | None = None
    max_tokens: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0, description="Seconds per model call attempt.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model name must not be empty, e.g. openai/gpt-4o-mini")
        return value


class Defaults(_Strict):
    """Values every scenario inherits unless it overrides them."""

    model: ModelSection | None = None
    max_turns: int = Field(10, ge=1)
    runs: int = Field(DEFAULT_RUNS, ge=1)
    max_concurrency: int | None = Field(None, ge=1)
    adaptive: bool = False
    executor: Literal["thread", "loop"] = "thread"
    retries: int = Field(0, ge=0)
    timeout: float | None = Field(None, gt=0, description="Seconds per run.")
    min_pass_rate: float = Field(DEFAULT_MIN_PASS_RATE, ge=0.0, le=1.0)


class Variant(_Strict):
    """One agent under test: a factory import path and keyword arguments for it."""

    agent: str
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"agent": value} if isinstance(value, str) else value

    @field_validator("agent")
    @classmethod
    def _import_path(cls, value: str) -> str:
        return check_import_path(value)


class Step(_Strict):
    """One script step; written in the file as ``user: text``, ``agent``, ``judge: [..]``, ...

    ``content`` is the scripted text (user/agent), ``criteria`` a judge checkpoint's criteria,
    ``turns`` for proceed, ``reasoning`` for succeed/fail, ``message`` a raw message.
    """

    kind: Literal["user", "agent", "judge", "proceed", "succeed", "fail", "message"]
    content: str | None = None
    criteria: list[str] | None = None
    turns: int | None = Field(None, ge=1)
    reasoning: str | None = None
    message: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, Step):
            return value
        if isinstance(value, str):
            kind, argument = value, None
        elif isinstance(value, dict) and len(value) == 1 and "kind" not in value:
            kind, argument = next(iter(value.items()))
        elif isinstance(value, dict) and "kind" in value:
            return value
        else:
            raise ValueError(
                "a step is one of: user, agent, judge, proceed, succeed, fail (alone), or a one-key mapping "
                "such as 'user: text', 'judge: [criteria]', 'proceed: 2', 'fail: reason', 'message: {role, content}'"
            )
        if kind not in STEP_KINDS:
            suggestion = did_you_mean(str(kind), STEP_KINDS)
            raise ValueError(f"unknown step {kind!r}{suggestion}; use one of {', '.join(STEP_KINDS)}")
        if argument is None:
            return {"kind": kind}
        if kind in ("user", "agent"):
            return {"kind": kind, "content": argument}
        if kind == "judge":
            return {"kind": kind, "criteria": [argument] if isinstance(argument, str) else argument}
        if kind == "proceed":
            return {"kind": kind, "turns": argument}
        if kind in ("succeed", "fail"):
            return {"kind": kind, "reasoning": argument}
        return {"kind": kind, "message": argument}

    @model_validator(mode="after")
    def _check(self) -> Step:
        if self.kind == "message" and (not self.message or "role" not in self.message):
            raise ValueError("message steps need a mapping with a 'role', e.g. message: {role: tool, content: ...}")
        if self.criteria is not None and (not self.criteria or not all(c.strip() for c in self.criteria)):
            raise ValueError("judge criteria must be a non-empty list of non-empty strings")
        return self

    def build(self) -> Any:
        """The library's script step for this entry."""
        if self.kind == "user":
            return script_steps.user(self.content)
        if self.kind == "agent":
            return script_steps.agent(self.content)
        if self.kind == "judge":
            return script_steps.judge(self.criteria)
        if self.kind == "proceed":
            return script_steps.proceed(self.turns)
        if self.kind == "succeed":
            return script_steps.succeed(self.reasoning)
        if self.kind == "fail":
            return script_steps.fail(self.reasoning)
        return script_steps.message(self.message or {})


class ScenarioEntry(_Strict):
    """One scenario of the suite; the optional fields override the suite defaults."""

    name: str
    description: str
    criteria: list[str] = Field(default_factory=list)
    script: list[Step] | None = None
    runs: int | None = Field(None, ge=1)
    max_turns: int | None = Field(None, ge=1)
    min_pass_rate: float | None = Field(None, ge=0.0, le=1.0)
    timeout: float | None = Field(None, gt=0)
    model: ModelSection | None = None
    variants: list[str] | None = Field(None, description="Only these variants run this scenario.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("scenario name must not be empty")
        return value

    @field_validator("criteria")
    @classmethod
    def _criteria(cls, value: list[str]) -> list[str]:
        if not all(c.strip() for c in value):
            raise ValueError("criteria must be non-empty strings")
        return value

    @model_validator(mode="after")
    def _needs_judge(self) -> ScenarioEntry:
        if self.criteria:
            return self
        if self.script is None:
            raise ValueError(
                "criteria is missing: without a script the judge decides, and it needs at least one criterion"
            )
        for index, step in enumerate(self.script):
            if step.kind == "proceed" or (step.kind == "judge" and not step.criteria):
                raise ValueError(
                    f"script step {index + 1} ({step.kind}) asks the judge for a final verdict, "
                    "but the scenario has no criteria; add criteria: [...]"
                )
        return self


class SuiteFile(_Strict):
    """The whole suite file."""

    name: str | None = Field(None, description="Suite name; default: the file name without extension.")
    description: str | None = None
    agent: Variant | None = None
    variants: dict[str, Variant] | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    scenarios: list[ScenarioEntry]

    @model_validator(mode="after")
    def _consistency(self) -> SuiteFile:
        if self.agent is None and not self.variants:
            raise ValueError(
                "no agent under test: add 'agent: package.module:factory' (or 'variants:' naming several)"
            )
        if self.agent is not None and self.variants:
            raise ValueError("give either 'agent' or 'variants', not both")
        if not self.scenarios:
            raise ValueError("'scenarios' is empty: list at least one scenario")
        return self


def allowed_keys(loc: Loc) -> list[str]:
    """The keys the schema accepts beside the last key of ``loc`` (for "unknown key" hints)."""
    model: Any = SuiteFile
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            if model is SuiteFile and loc and loc[0] == "variants":
                model = Variant
                continue
            return []
        model = _inner_model(info.annotation)
    return list(getattr(model, "model_fields", {})) if model is not None else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
