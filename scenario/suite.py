"""Suite files: the scenarios a ``scenario run`` executes, in YAML or TOML.

A suite names its agent(s) under test by import path, sets defaults (model, turns, runs,
concurrency) and lists scenarios with optional scripts and per-scenario overrides::

    name: support-bot
    agent: support_agent:make_agent
    defaults:
      model: openai/gpt-4o-mini
      runs: 3
    scenarios:
      - name: late parcel
        description: A customer's parcel is a week late.
        criteria: [The agent apologises, The agent offers to track the parcel]

Loading checks everything that can be checked before a run starts and reports *every* problem
at once, each with its file, line (YAML) and key, as a :class:`SuiteError`. The format itself is
documented in docs/cli.md.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scenario.errors import ScenarioConfigError

Loc = tuple[str | int, ...]

DEFAULT_MIN_PASS_RATE = 1.0
DEFAULT_RUNS = 1

_IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_STEP_KINDS = ("user", "agent", "judge", "proceed", "succeed", "fail", "message")


# --------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class SuiteProblem:
    """One thing wrong with a suite file."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class SuiteError(ScenarioConfigError):
    """A suite file could not be used; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[SuiteProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in suite file"
        super().__init__(header + ":\n" + "\n".join(f"  {p}" for p in self.problems))


# --------------------------------------------------------------------------------------------
# The format


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
        return _check_import_path(value)


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
        if kind not in _STEP_KINDS:
            suggestion = _did_you_mean(str(kind), _STEP_KINDS)
            raise ValueError(f"unknown step {kind!r}{suggestion}; use one of {', '.join(_STEP_KINDS)}")
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
        from scenario import script

        if self.kind == "user":
            return script.user(self.content)
        if self.kind == "agent":
            return script.agent(self.content)
        if self.kind == "judge":
            return script.judge(self.criteria)
        if self.kind == "proceed":
            return script.proceed(self.turns)
        if self.kind == "succeed":
            return script.succeed(self.reasoning)
        if self.kind == "fail":
            return script.fail(self.reasoning)
        return script.message(self.message or {})


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


# --------------------------------------------------------------------------------------------
# The loaded suite


@dataclass
class ResolvedModel:
    """A model section after command-line overrides, with the key read from the environment."""

    name: str
    api_base: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None

    def to_config(self) -> Any:
        from scenario.settings import ModelConfig

        data: dict[str, Any] = {"model": self.name, "api_base": self.api_base, "api_key": self.api_key,
                                "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.timeout is not None:
            data["timeout"] = self.timeout
        return ModelConfig(**{k: v for k, v in data.items() if v is not None})


@dataclass
class SuiteScenario:
    """One scenario with every setting resolved (defaults, overrides, command line)."""

    name: str
    description: str
    criteria: list[str]
    steps: list[Step] | None
    runs: int
    max_turns: int
    min_pass_rate: float
    timeout: float | None
    model: ResolvedModel | None
    variants: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def build_script(self) -> list[Any] | None:
        return None if self.steps is None else [step.build() for step in self.steps]


@dataclass
class AgentFactory:
    """A resolved agent import path: calling it makes a fresh agent under test."""

    path: str
    target: Callable[..., Any]
    args: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.target(**self.args)


@dataclass
class Overrides:
    """Command-line values; ``None`` means "not given, keep the file's value"."""

    runs: int | None = None
    max_concurrency: int | None = None
    adaptive: bool | None = None
    executor: str | None = None
    model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    min_pass_rate: float | None = None
    retries: int | None = None
    timeout: float | None = None
    scenarios: list[str] | None = None
    variants: list[str] | None = None


@dataclass
class Suite:
    """A loaded, validated suite with command-line overrides applied."""

    name: str
    path: Path
    description: str | None
    variants: dict[str, AgentFactory]
    scenarios: list[SuiteScenario]
    model: ResolvedModel | None
    max_concurrency: int | None
    adaptive: bool
    executor: str
    retries: int
    timeout: float | None
    file: SuiteFile

    @property
    def total_runs(self) -> int:
        return sum(s.runs * len(s.variants) for s in self.scenarios)

    def thresholds(self) -> dict[str, float]:
        """Pass-rate threshold per scenario name (stored with results so reports can show it)."""
        return {s.name: s.min_pass_rate for s in self.scenarios}


# --------------------------------------------------------------------------------------------
# Loading


def load_suite(path: str | os.PathLike, overrides: Overrides | None = None, *, resolve_agents: bool = True) -> Suite:
    """Read, validate and resolve a suite file; raise :class:`SuiteError` listing every problem.

    Args:
        path: a ``.yaml``/``.yml`` or ``.toml`` file.
        overrides: command-line values, which win over the file (scenario overrides included).
        resolve_agents: import the agent factories (turn off to only check the format).
    """
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise SuiteError([SuiteProblem(shown, "", "file not found; check the path of the suite file")])
    if path.is_dir():
        raise SuiteError([SuiteProblem(shown, "", "is a directory; give the suite file (.yaml or .toml) inside it")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError([SuiteProblem(shown, "", f"cannot be read: {exc}")]) from None

    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data, lines = _parse_yaml(text, shown)
    elif suffix == ".toml":
        data, lines = _parse_toml(text, shown), {}
    else:
        raise SuiteError([SuiteProblem(shown, "", f"unknown suite file type {suffix!r}; use .yaml, .yml or .toml")])
    return build_suite(data, path, overrides, lines=lines, resolve_agents=resolve_agents)


def build_suite(
    data: Any,
    path: Path,
    overrides: Overrides | None = None,
    *,
    lines: dict[Loc, int] | None = None,
    resolve_agents: bool = True,
) -> Suite:
    """Validate already-parsed suite data (see :func:`load_suite`)."""
    shown = str(path)
    lines = lines or {}
    overrides = overrides or Overrides()
    if not isinstance(data, dict):
        raise SuiteError([SuiteProblem(shown, "", "the file must be a mapping with 'agent' (or 'variants') and 'scenarios'", 1)])

    problems: list[SuiteProblem] = []
    parsed: SuiteFile | None = None
    try:
        parsed = SuiteFile.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, shown, lines))

    problems.extend(_semantic_problems(data, shown, lines))

    factories: dict[str, AgentFactory] = {}
    if resolve_agents:
        for loc, import_path, args in _agent_paths(data):
            if not isinstance(import_path, str) or not _IMPORT_PATH_RE.match(import_path):
                continue  # already reported by validation
            try:
                target = resolve_import_path(import_path, search=[path.parent])
            except ScenarioConfigError as exc:
                problems.append(SuiteProblem(shown, _format_loc(loc), str(exc), _line_for(loc, lines)))
                continue
            name = "default" if loc[0] == "agent" else str(loc[1])
            factories[name] = AgentFactory(import_path, target, dict(args) if isinstance(args, dict) else {})

    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise SuiteError(problems)
    assert parsed is not None
    try:
        return _resolve(parsed, path, factories, overrides, resolve_agents)
    except SuiteError:
        raise
    except ScenarioConfigError as exc:
        raise SuiteError([SuiteProblem(shown, "", str(exc))]) from None


def _resolve(parsed: SuiteFile, path: Path, factories: dict[str, AgentFactory], o: Overrides, resolve_agents: bool) -> Suite:
    shown = str(path)
    d = parsed.defaults
    problems: list[SuiteProblem] = []

    all_variants = ["default"] if parsed.agent is not None else list(parsed.variants or {})
    selected_variants = all_variants
    if o.variants:
        unknown = [v for v in o.variants if v not in all_variants]
        if unknown:
            problems.append(SuiteProblem(shown, "variants", f"--variant {', '.join(unknown)} not in the suite; it has {', '.join(all_variants)}"))
        selected_variants = [v for v in all_variants if v in o.variants]
    if not resolve_agents:
        factories = {}

    model = _resolve_model(d.model, o)
    scenarios: list[SuiteScenario] = []
    names = [s.name for s in parsed.scenarios]
    if o.scenarios:
        unknown = [n for n in o.scenarios if n not in names]
        if unknown:
            problems.append(SuiteProblem(shown, "scenarios", f"--scenario {', '.join(map(repr, unknown))} not in the suite"))
    for entry in parsed.scenarios:
        if o.scenarios and entry.name not in o.scenarios:
            continue
        variants = [v for v in selected_variants if entry.variants is None or v in entry.variants]
        if not variants:
            continue
        scenarios.append(
            SuiteScenario(
                name=entry.name,
                description=entry.description,
                criteria=list(entry.criteria),
                steps=entry.script,
                runs=_first(o.runs, entry.runs, d.runs),
                max_turns=_first(entry.max_turns, d.max_turns),
                min_pass_rate=_first(o.min_pass_rate, entry.min_pass_rate, d.min_pass_rate),
                timeout=_first(o.timeout, entry.timeout, d.timeout),
                model=_resolve_model(entry.model, o) if entry.model is not None else model,
                variants=variants,
                metadata=dict(entry.metadata),
            )
        )
    if problems:
        raise SuiteError(problems)
    if not scenarios:
        raise SuiteError([SuiteProblem(shown, "scenarios", "no scenario left to run after --scenario/--variant filters")])

    adaptive = d.adaptive if o.adaptive is None else o.adaptive
    max_concurrency = d.max_concurrency
    if o.max_concurrency is not None:
        max_concurrency, adaptive = o.max_concurrency, False if o.adaptive is None else adaptive
    return Suite(
        name=parsed.name or path.stem,
        path=path,
        description=parsed.description,
        variants={v: factories[v] for v in selected_variants if v in factories},
        scenarios=scenarios,
        model=model,
        max_concurrency=max_concurrency,
        adaptive=adaptive,
        executor=o.executor or d.executor,
        retries=_first(o.retries, d.retries),
        timeout=_first(o.timeout, d.timeout),
        file=parsed,
    )


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _resolve_model(section: ModelSection | None, o: Overrides) -> ResolvedModel | None:
    if section is None and o.model is None:
        return None
    if section is None:
        section = ModelSection(name=o.model or "")
    api_key = None
    if section.api_key_env and o.api_key is None:
        api_key = os.environ.get(section.api_key_env)
        if api_key is None:
            raise ScenarioConfigError(
                f"model.api_key_env: environment variable {section.api_key_env} is not set; export it, "
                "or remove api_key_env to use the provider's usual variable (e.g. OPENAI_API_KEY)"
            )
    return ResolvedModel(
        name=o.model or section.name,
        api_base=o.api_base or section.api_base,
        api_key=o.api_key or api_key,
        api_key_env=section.api_key_env,
        temperature=section.temperature,
        max_tokens=section.max_tokens,
        timeout=section.timeout,
    )


def _semantic_problems(data: dict[str, Any], shown: str, lines: dict[Loc, int]) -> list[SuiteProblem]:
    """Problems a per-field schema cannot see (duplicates, references between keys).

    Works on the raw data, so they are reported together with schema problems elsewhere.
    """
    problems: list[SuiteProblem] = []
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, list):
        return problems
    if isinstance(data.get("variants"), dict):
        variant_names = [str(v) for v in data["variants"]]
    else:
        variant_names = ["default"]
    seen: dict[str, int] = {}
    for index, entry in enumerate(scenarios):
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if isinstance(name, str):
            if name in seen:
                loc: Loc = ("scenarios", index, "name")
                problems.append(SuiteProblem(
                    shown, _format_loc(loc),
                    f"duplicate scenario name {name!r} (also scenarios[{seen[name]}]); names identify stored runs, "
                    "make them unique",
                    _line_for(loc, lines),
                ))
            else:
                seen[name] = index
        wanted = entry.get("variants")
        if isinstance(wanted, list):
            for v_index, variant in enumerate(wanted):
                if isinstance(variant, str) and variant not in variant_names:
                    loc = ("scenarios", index, "variants", v_index)
                    problems.append(SuiteProblem(
                        shown, _format_loc(loc),
                        f"unknown variant {variant!r}{_did_you_mean(variant, variant_names)}; the suite defines "
                        f"{', '.join(variant_names)}",
                        _line_for(loc, lines),
                    ))
    return problems


def _agent_paths(data: dict[str, Any]) -> list[tuple[Loc, Any, Any]]:
    """(location, import path, args) for every agent named in raw suite data."""
    found: list[tuple[Loc, Any, Any]] = []

    def one(loc: Loc, value: Any) -> None:
        if isinstance(value, str):
            found.append((loc, value, {}))
        elif isinstance(value, dict) and isinstance(value.get("agent"), str):
            found.append((loc + ("agent",), value["agent"], value.get("args") or {}))

    if "agent" in data:
        one(("agent",), data["agent"])
    variants = data.get("variants")
    if isinstance(variants, dict):
        for name, value in variants.items():
            one(("variants", str(name)), value)
    return found


# --------------------------------------------------------------------------------------------
# Import paths


def _check_import_path(value: str) -> str:
    if not _IMPORT_PATH_RE.match(value):
        raise ValueError(
            f"{value!r} is not an import path; write package.module:factory (a callable returning your AgentAdapter)"
        )
    return value


def resolve_import_path(import_path: str, search: Sequence[Path] = ()) -> Callable[..., Any]:
    """Import ``package.module:factory`` and return the callable; ScenarioConfigError if it cannot be used.

    ``search`` directories (the suite file's folder) and the working directory are importable, so
    a suite next to its agent module works without installing anything.
    """
    module_name, _, attribute = import_path.partition(":")
    for directory in [Path.cwd(), *search]:
        entry = str(directory.resolve())
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ScenarioConfigError(
                f"cannot import {module_name!r} for agent {import_path!r}: no module named {exc.name!r}. Check the "
                "spelling, install the package, or put the module next to the suite file"
            ) from None
        raise ScenarioConfigError(f"importing {module_name!r} for agent {import_path!r} failed: {exc}") from None
    except Exception as exc:
        raise ScenarioConfigError(
            f"importing {module_name!r} for agent {import_path!r} raised {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ScenarioConfigError(
                f"{module_name!r} has no attribute {part!r} for agent {import_path!r}{_did_you_mean(part, names)}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ScenarioConfigError(
            f"agent {import_path!r} is a {type(target).__name__}, not a callable; point at a function or class "
            "that returns your AgentAdapter"
        )
    return target


def check_agent(factory: AgentFactory) -> str | None:
    """Make one agent with ``factory``; a problem description if it is not a usable agent adapter."""
    from scenario.messages import AgentRole

    try:
        agent = factory()
        if inspect.isawaitable(agent):
            close = getattr(agent, "close", None)
            if close:
                close()
            return f"agent factory {factory.path!r} returned an awaitable; it must return an agent adapter directly"
    except Exception as exc:
        return f"calling agent factory {factory.path!r} raised {type(exc).__name__}: {exc}"
    # A list is allowed: the variant may bring its own simulator or judge along with the agent.
    for item in agent if isinstance(agent, (list, tuple)) and agent else [agent]:
        if isinstance(item, type):
            return f"agent factory {factory.path!r} returned the class {item.__name__}; return an instance"
        if not callable(getattr(item, "call", None)) or not isinstance(getattr(item, "role", None), AgentRole):
            return (
                f"agent factory {factory.path!r} returned a {type(item).__name__}, not an agent adapter "
                "(subclass scenario.AgentAdapter and implement call(input))"
            )
    return None


# --------------------------------------------------------------------------------------------
# Parsing with positions


def _parse_yaml(text: str, shown: str) -> tuple[Any, dict[Loc, int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError([SuiteProblem(shown, "", f"invalid YAML: {problem}", line)]) from None
    if node is None:
        raise SuiteError([SuiteProblem(shown, "", "the file is empty; see docs/cli.md for the suite format", 1)])
    lines: dict[Loc, int] = {}
    duplicates: list[SuiteProblem] = []
    _index_yaml(node, (), lines, duplicates, shown)
    if duplicates:
        raise SuiteError(duplicates)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SuiteError([SuiteProblem(shown, "", f"invalid YAML: {exc}", mark.line + 1 if mark else None)]) from None
    finally:
        loader.dispose()
    return data, lines


def _index_yaml(node: Any, loc: Loc, lines: dict[Loc, int], duplicates: list[SuiteProblem], shown: str) -> None:
    import yaml

    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            child = loc + (key,)
            if key in seen:
                duplicates.append(SuiteProblem(shown, _format_loc(child), f"duplicate key (first at line {seen[key]})", line))
                continue
            seen[key] = line
            lines[child] = line
            _index_yaml(value_node, child, lines, duplicates, shown)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_yaml(item, loc + (index,), lines, duplicates, shown)


def _parse_toml(text: str, shown: str) -> Any:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef]
        except ModuleNotFoundError:
            raise SuiteError([SuiteProblem(shown, "", "TOML suites need Python 3.11+ or the 'tomli' package (pip install tomli); or use YAML")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        raise SuiteError([SuiteProblem(shown, "", f"invalid TOML: {exc}", int(match.group(1)) if match else None)]) from None


# --------------------------------------------------------------------------------------------
# Error messages


def _validation_problems(exc: ValidationError, shown: str, lines: dict[Loc, int]) -> list[SuiteProblem]:
    problems: list[SuiteProblem] = []
    seen = set()
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        message = _message_for(error, loc)
        key = (loc, message)
        if key in seen:
            continue
        seen.add(key)
        problems.append(SuiteProblem(shown, _format_loc(loc), message, _line_for(loc, lines)))
    return problems


def _clean_loc(loc: Sequence[Any]) -> Loc:
    # Pydantic puts validator names ("function-before[...]") into locations of custom types.
    return tuple(part for part in loc if not (isinstance(part, str) and ("[" in part and "]" in part)))


_ALLOWED_KEYS: dict[str, list[str]] = {}


def _allowed_keys(loc: Loc) -> list[str]:
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
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _message_for(error: dict[str, Any], loc: Loc) -> str:
    kind = error.get("type", "")
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = [k for k in _allowed_keys(loc) if k != "kind"]
        hint = _did_you_mean(name, allowed)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {name!r}{hint}{listing}"
    if kind == "missing":
        return f"required key {str(loc[-1])!r} is missing" if loc else "required value is missing"
    message = error.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind not in ("value_error", "assertion_error") and not isinstance(value, (dict, list)):
        message = f"{message}, got {value!r}"
    return message


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
