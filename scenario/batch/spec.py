"""Scenario specs and the per-run recipe that gives every run its own agents.

A :class:`Scenario` is the arguments of ``scenario.run`` kept as a reusable object. A batch runs
each one many times, possibly with several agents under test ("variants"), and no run may see
another run's agent state. So agents are never handed to the engine as given: for every run the
:class:`AgentRecipe` calls the factories again and deep-copies adapter instances.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scenario import executors
from scenario.agents import JudgeAgent, UserSimulatorAgent
from scenario.batch.fingerprint import combine, fingerprint_parts
from scenario.checks import (
    check_description,
    check_max_turns,
    check_name,
    check_rate,
    check_runs,
    check_timeout,
    is_adapter,
)
from scenario.errors import ScenarioConfigError
from scenario.records import DEFAULT_VARIANT, run_id
from scenario.result import ScenarioResult
from scenario.spec import ScenarioSpec, build_spec, check_script

AgentFactory = Callable[[], Any]
"""A zero-argument callable (function, lambda, class) returning an adapter or a list of adapters."""

AgentsSource = Sequence[Any] | AgentFactory | Any

# A copy slower than this per run deserves a nudge towards a factory.
_SLOW_COPY_SECONDS = 0.02


@dataclass
class Scenario:
    """One scenario as a reusable spec: the arguments of :func:`scenario.run`, plus batch overrides.

    Args:
        name: unique within a batch; shown in reports.
        description: the situation, given to the user simulator and the judge.
        agents: the adapters (agent under test, ``UserSimulatorAgent``, ``JudgeAgent``), as a list
            of instances (deep-copied for every run), of zero-argument factories/classes (called
            for every run), or one factory returning the whole list. May leave out the agent
            under test when the batch supplies it through ``variants``.
        script, max_turns, cache_key, set_id, metadata, timeout: as for :func:`scenario.run`.
        runs: repetitions of this scenario (overrides ``run_batch(runs=...)``).
        min_pass_rate: pass rate this scenario must reach in every variant (0..1).
        variants: run only with these variant names (default: every variant of the batch).

    ``await spec.run()`` / ``await spec.arun()`` run it once, with fresh agents, like
    :func:`scenario.run` / :func:`scenario.arun`.
    """

    name: str
    description: str
    agents: AgentsSource | None = None
    script: Sequence[Any] | None = None
    max_turns: int | None = None
    cache_key: str | None = None
    set_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    runs: int | None = None
    min_pass_rate: float | None = None
    variants: Sequence[str] | None = None

    def __post_init__(self) -> None:
        where = f"Scenario({self.name!r})" if isinstance(self.name, str) else "Scenario(...)"
        check_name(self.name, where)
        check_description(self.description, where)
        if self.max_turns is not None:
            check_max_turns(self.max_turns, where)
        if self.script is not None:
            check_script(self.script, where)
        if self.runs is not None:
            check_runs(self.runs, f"{where}: runs")
        if self.min_pass_rate is not None:
            check_rate(self.min_pass_rate, f"{where}: min_pass_rate")
        if self.timeout is not None:
            check_timeout(self.timeout, f"{where}: timeout")
        if self.variants is not None:
            if isinstance(self.variants, str) or not all(isinstance(v, str) for v in self.variants):
                raise ScenarioConfigError(f"{where}: variants must be a list of variant names, got {self.variants!r}.")
            self.variants = list(self.variants)
        if self.metadata is None:
            self.metadata = {}

    def run_kwargs(self, agents: list[Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Keyword arguments for ``scenario.run``/``arun`` (and ``build_spec``) with these agents."""
        return {
            "name": self.name,
            "description": self.description,
            "agents": agents,
            "script": list(self.script) if self.script is not None else None,
            "max_turns": self.max_turns,
            "cache_key": self.cache_key,
            "set_id": self.set_id,
            "metadata": self.metadata,
            "timeout": self.timeout if self.timeout is not None else timeout,
        }

    def spec(self, agents: list[Any], *, timeout: float | None = None) -> ScenarioSpec:
        """The validated spec of one run of this scenario with these agents (``timeout``: the
        batch's, when the scenario sets none)."""
        return build_spec(**self.run_kwargs(agents, timeout=timeout))

    async def run(self) -> ScenarioResult:
        """Run once on a worker thread (``scenario.run``) with freshly made agents."""
        return await executors.run(**self.run_kwargs(AgentRecipe(self, None, DEFAULT_VARIANT).build()))

    async def arun(self) -> ScenarioResult:
        """Run once on the caller's loop (``scenario.arun``) with freshly made agents."""
        return await executors.arun(**self.run_kwargs(AgentRecipe(self, None, DEFAULT_VARIANT).build()))


# ---------------------------------------------------------------------------------------------
# Making fresh agents for every run


def _shareable(adapter: Any) -> bool:
    """The library's own simulator and judge keep only configuration and never change it while
    running, so one instance can serve every run (subclasses may add state: those are copied)."""
    return type(adapter) in (UserSimulatorAgent, JudgeAgent)


def _describe(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    return getattr(value, "__qualname__", None) or type(value).__name__


class _Maker:
    """Produces one slot's adapters for a run: a copy, the same shared instance, or a factory call."""

    __slots__ = ("source", "kind", "label")

    def __init__(self, source: Any, kind: str, label: str):
        self.source = source
        self.kind = kind  # "shared" | "copy" | "factory"
        self.label = label

    def make(self) -> list[Any]:
        if self.kind == "shared":
            return [self.source]
        if self.kind == "copy":
            return [copy.deepcopy(self.source)]
        value = self.source()
        if is_adapter(value):
            return [value]
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ScenarioConfigError(
            f"{self.label}: the factory {_describe(self.source)} returned {type(value).__name__}; it must return an "
            "agent adapter instance or a list of them."
        )


def _makers(source: Any, label: str) -> list[_Maker]:
    if source is None:
        return []
    if is_adapter(source):
        items: Sequence[Any] = [source]
    elif callable(source):
        return [_Maker(source, "factory", label)]
    elif isinstance(source, (list, tuple)):
        items = source
    else:
        raise ScenarioConfigError(
            f"{label}: expected a list of agent adapters or factories, or a factory returning that list; got "
            f"{type(source).__name__}."
        )
    makers = []
    for position, item in enumerate(items):
        where = f"{label}[{position}]"
        if is_adapter(item):
            makers.append(_Maker(item, "shared" if _shareable(item) else "copy", where))
        elif callable(item):
            makers.append(_Maker(item, "factory", where))
        else:
            raise ScenarioConfigError(
                f"{where} is a {type(item).__name__}: give an agent adapter instance (copied for every run) or a "
                "zero-argument factory/class (called for every run)."
            )
    return makers


class AgentRecipe:
    """The adapters of one (scenario, variant) pair, made anew for every run.

    The variant's adapters replace the scenario's adapters of the same roles: a variant is
    usually just the agent under test, but it may also bring its own user simulator or judge.
    """

    def __init__(self, scenario: Scenario, variant_source: Any, variant: str):
        self.scenario = scenario
        self.variant = variant
        self.variant_source = variant_source
        #: Part digests of what decides this pair's runs (scenario.batch.fingerprint), set by probe().
        self.fingerprint_parts: dict[str, str] = {}
        self._fingerprint: str | None = None
        where = f"scenario {scenario.name!r}"
        self._base = _makers(scenario.agents, f"{where}: agents")
        self._variant = _makers(variant_source, f"variant {variant!r}") if variant_source is not None else []
        # What probe() made is handed to the first run rather than thrown away: factories may be
        # expensive, and those instances are as fresh as any.
        self._prebuilt: list[Any] | None = None

    def build(self) -> list[Any]:
        """Fresh adapters for one run (factory errors propagate unchanged)."""
        if self._prebuilt is not None:
            agents, self._prebuilt = self._prebuilt, None
            return agents
        variant_agents: list[Any] = []
        for maker in self._variant:
            variant_agents.extend(maker.make())
        base: list[Any] = []
        for maker in self._base:
            base.extend(maker.make())
        if not variant_agents:
            return base
        replaced = {getattr(a, "role", None) for a in variant_agents}
        return [a for a in base if getattr(a, "role", None) not in replaced] + variant_agents

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of this pair's runs (None before :meth:`probe`)."""
        if self._fingerprint is None and self.fingerprint_parts:
            self._fingerprint = combine(self.fingerprint_parts)
        return self._fingerprint

    def probe(self, *, min_pass_rate: float | None = None, timeout: float | None = None) -> list[Any]:
        """Build once up front, turning any failure into a clear configuration error, and warn
        when copying instances is slow enough to matter over many runs. Also fingerprints the
        pair from what was built (``min_pass_rate``/``timeout``: the batch's, part of it)."""
        for maker in self._base + self._variant:
            if maker.kind != "copy":
                continue
            started = time.perf_counter()
            try:
                copy.deepcopy(maker.source)
            except Exception as exc:
                raise ScenarioConfigError(
                    f"{maker.label}: the adapter {type(maker.source).__name__} cannot be copied for each run "
                    f"(copy.deepcopy raised {type(exc).__name__}: {exc}). Pass a factory instead, e.g. "
                    f"agents=[lambda: {type(maker.source).__name__}(...), ...], so every run gets a fresh instance."
                ) from exc
            elapsed = time.perf_counter() - started
            if elapsed > _SLOW_COPY_SECONDS:
                warnings.warn(
                    f"{maker.label}: copying {type(maker.source).__name__} for each run takes {elapsed * 1000:.0f} ms; "
                    "pass a factory that shares what is safe to share.",
                    RuntimeWarning,
                    stacklevel=4,
                )
        try:
            self._prebuilt = self.build()
        except ScenarioConfigError:
            raise
        except Exception as exc:
            raise ScenarioConfigError(
                f"scenario {self.scenario.name!r}, variant {self.variant!r}: making the agents raised "
                f"{type(exc).__name__}: {exc}. Fix the agent factory; nothing was run."
            ) from exc
        self._fingerprint = None
        self.fingerprint_parts = fingerprint_parts(
            self.scenario, self._prebuilt, self.variant_source, batch_min_pass_rate=min_pass_rate, batch_timeout=timeout,
        )
        return self._prebuilt


def normalize_variants(variants: Any, what: str) -> dict[str, Any]:
    """``{name: source}`` from a mapping, or from a list named after each factory/adapter."""
    if variants is None:
        return {DEFAULT_VARIANT: None}
    if isinstance(variants, Mapping):
        if not variants:
            raise ScenarioConfigError(f"run_batch({what}={{}}): give at least one variant, or leave {what} out.")
        named: dict[str, Any] = {}
        for name, source in variants.items():
            if not isinstance(name, str) or not name.strip():
                raise ScenarioConfigError(f"run_batch({what}=...): variant names must be non-empty strings, got {name!r}.")
            if source is None:
                raise ScenarioConfigError(f"run_batch({what}=...): variant {name!r} has no agent (None).")
            named[name] = source
        return named
    if isinstance(variants, (list, tuple)):
        if not variants:
            raise ScenarioConfigError(f"run_batch({what}=[]): give at least one agent, or leave {what} out.")
        named = {}
        for position, source in enumerate(variants):
            base = _variant_name(source, position)
            name, n = base, 2
            while name in named:
                name, n = f"{base}#{n}", n + 1
            named[name] = source
        return named
    if is_adapter(variants) or callable(variants):
        return {_variant_name(variants, 0): variants}
    raise ScenarioConfigError(
        f"run_batch({what}=...): expected a dict of name -> agent factory, or a list of factories; got "
        f"{type(variants).__name__}."
    )


def _variant_name(source: Any, position: int) -> str:
    if is_adapter(source):
        return getattr(source, "display_name", None) or type(source).__name__
    name = getattr(source, "__name__", None)
    if isinstance(name, str) and name and name != "<lambda>":
        return name
    return f"variant{position + 1}"


@dataclass(frozen=True)
class RunUnit:
    """One planned run: which scenario, which variant, which repetition."""

    scenario: Scenario
    recipe: AgentRecipe
    variant: str
    index: int
    id: str
    position: int


def plan_units(
    scenarios: Sequence[Scenario],
    recipes: Mapping[tuple[str, str], AgentRecipe],
    variant_names: Sequence[str],
    runs: int,
    suite: str,
) -> list[RunUnit]:
    """Every run of the batch, repetition-major: the first runs cover every scenario and variant,
    so a batch stopped early (fail-fast, Ctrl-C) still says something about all of them."""
    units: list[RunUnit] = []
    most = max((s.runs or runs) for s in scenarios)
    for index in range(most):
        for scenario in scenarios:
            if index >= (scenario.runs or runs):
                continue
            for variant in variant_names:
                recipe = recipes.get((scenario.name, variant))
                if recipe is None:
                    continue
                units.append(RunUnit(scenario, recipe, variant, index, run_id(suite, scenario.name, variant, index), len(units)))
    return units
