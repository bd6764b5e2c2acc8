"""Loading a suite: read the file, validate it, import its agents, apply the command line.

Policy: everything that can be checked before a run starts is checked here, and *every* problem
is reported at once (schema errors, duplicate names, unknown variants, agents that do not import)
as one :class:`~scenario.suite.problems.SuiteError`, sorted by line. Command-line overrides win
over the file, scenario overrides win over the suite defaults; the result is a
:class:`~scenario.suite.resolved.Suite` in which nothing is left to merge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenario.errors import ScenarioConfigError
from scenario.suite.imports import AgentFactory, resolve_import_path
from scenario.suite.parse import parse_toml, parse_yaml
from scenario.suite.problems import (
    Loc,
    SuiteError,
    SuiteProblem,
    did_you_mean,
    format_loc,
    line_for,
    validation_problems,
)
from scenario.suite.resolved import Overrides, ResolvedModel, Suite, SuiteScenario
from scenario.suite.schema import IMPORT_PATH_RE, ModelSection, SuiteFile, allowed_keys


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
        data, lines = parse_yaml(text, shown)
    elif suffix == ".toml":
        data, lines = parse_toml(text, shown), {}
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
        problems.extend(validation_problems(exc, shown, lines, allowed_keys))

    problems.extend(_semantic_problems(data, shown, lines))

    factories: dict[str, AgentFactory] = {}
    if resolve_agents:
        for loc, import_path, args in _agent_paths(data):
            if not isinstance(import_path, str) or not IMPORT_PATH_RE.match(import_path):
                continue  # already reported by validation
            try:
                target = resolve_import_path(import_path, search=[path.parent])
            except ScenarioConfigError as exc:
                problems.append(SuiteProblem(shown, format_loc(loc), str(exc), line_for(loc, lines)))
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
                    shown, format_loc(loc),
                    f"duplicate scenario name {name!r} (also scenarios[{seen[name]}]); names identify stored runs, "
                    "make them unique",
                    line_for(loc, lines),
                ))
            else:
                seen[name] = index
        wanted = entry.get("variants")
        if isinstance(wanted, list):
            for v_index, variant in enumerate(wanted):
                if isinstance(variant, str) and variant not in variant_names:
                    loc = ("scenarios", index, "variants", v_index)
                    problems.append(SuiteProblem(
                        shown, format_loc(loc),
                        f"unknown variant {variant!r}{did_you_mean(variant, variant_names)}; the suite defines "
                        f"{', '.join(variant_names)}",
                        line_for(loc, lines),
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
