"""What to run: the one validated, frozen description of a single run.

Policy: keywords are accepted once, at the door (``run``/``arun``, a ``Scenario``'s run, every run
of ``run_batch`` and of a suite), by :func:`build_spec`; everything that can be known wrong before
a run starts is checked there and raises :class:`scenario.ScenarioConfigError` (the rules live in
:mod:`scenario.checks`). What travels inward is a :class:`ScenarioSpec` that cannot change: the
engine, the state a script step sees and the reports all read the same values, and no code path
can skip a check by building the object some other way than through the door.

Defaults that come from :func:`scenario.configure` (``max_turns``, ``min_turns``, ``verbose``)
are resolved here too, when the run is described, so a ``configure`` call during a run cannot
change it. This module does no I/O and imports nothing from the flow below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scenario.checks import (
    check_agents,
    check_description,
    check_fields,
    check_max_turns,
    check_min_turns,
    check_name,
    check_timeout,
)
from scenario.errors import ScenarioConfigError
from scenario.messages import AgentRole
from scenario.script import JudgeStep, ProceedStep, ScriptStep, UserStep, proceed
from scenario.settings import settings

__all__ = ["ScenarioSpec", "build_spec", "check_script", "judges_criteria", "without_criteria"]


@dataclass(frozen=True)
class ScenarioSpec:
    """One run, validated (build it with :func:`build_spec`, never by hand).

    Frozen: no field can be reassigned once the run is described. ``metadata`` and ``fields`` are
    the spec's own copies (plain dicts, so a state holding the spec can still be copied).
    """

    name: str
    description: str
    agents: tuple[Any, ...]
    script: tuple[Any, ...] | None = None
    max_turns: int = 10
    cache_key: str | None = None
    set_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False
    timeout: float | None = None
    min_turns: int = 0
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[Any, ...]:
        """The script's steps; autopilot (no script) is one open-ended ``proceed()``."""
        return self.script if self.script is not None else (proceed(),)

    def criteria(self) -> list[str]:
        """The criteria of the run's judges, in the order the agents list them."""
        return judges_criteria(self.agents)


def build_spec(
    *,
    name: Any,
    description: Any,
    agents: Any,
    script: Any = None,
    max_turns: Any = None,
    cache_key: str | None = None,
    set_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    verbose: bool | None = None,
    timeout: float | None = None,
    min_turns: int | None = None,
    fields: dict[str, Any] | None = None,
) -> ScenarioSpec:
    """Check everything that can be checked before running; raise ScenarioConfigError if wrong."""
    where = f"scenario {name!r}" if isinstance(name, str) else "scenario"
    check_name(name, where)
    check_description(description, where)
    current = settings()
    max_turns = check_max_turns(current.max_turns if max_turns is None else max_turns, where)
    min_turns = check_min_turns(current.min_turns if min_turns is None else min_turns, where, max_turns)
    fields = check_fields(fields, where)
    if timeout is not None:
        check_timeout(timeout, f"{where}: timeout")
    agents = check_agents(agents, where)
    steps = check_script(script, where)
    _check_roles(agents, script, steps, max_turns, where)
    return ScenarioSpec(
        name=name,
        description=description,
        agents=tuple(agents),
        script=tuple(script) if script is not None else None,
        max_turns=max_turns,
        cache_key=cache_key,
        set_id=set_id,
        metadata=dict(metadata or {}),
        verbose=(current.verbose or current.debug) if verbose is None else verbose,
        timeout=timeout,
        min_turns=min_turns,
        fields=fields,
    )


def check_script(script: Any, where: str) -> list[Any]:
    """The script's steps (autopilot's one ``proceed()`` for no script); each must be a step or a function."""
    if script is None:
        return [proceed()]
    if not isinstance(script, (list, tuple)):
        raise ScenarioConfigError(f"{where}: script must be a list of steps, got {type(script).__name__}.")
    for index, step in enumerate(script):
        if not isinstance(step, ScriptStep) and not callable(step):
            raise ScenarioConfigError(
                f"{where}: script[{index}] is a {type(step).__name__}, not a step. Use scenario.user(), agent(), "
                "judge(), proceed(), succeed(), fail(), message(), or a function taking the ScenarioState."
            )
    return list(script)


def _check_roles(agents: list[Any], script: Any, steps: list[Any], max_turns: int, where: str) -> None:
    """The agents can play every part the script gives them, and the run can end."""
    roles = {agent.role for agent in agents}
    if AgentRole.AGENT not in roles:
        raise ScenarioConfigError(
            f"{where}: agents has no agent under test. Add an instance of your scenario.AgentAdapter subclass "
            "(role AgentRole.AGENT) to agents=[...]."
        )
    needs_user = any(isinstance(s, ProceedStep) or (isinstance(s, UserStep) and s.content is None) for s in steps)
    if needs_user and AgentRole.USER not in roles:
        raise ScenarioConfigError(
            f"{where}: the script generates user messages (autopilot/proceed() or user() without content) but agents "
            "has no user simulator. Add scenario.UserSimulatorAgent() to agents, or script user('...') lines."
        )
    if any(isinstance(s, JudgeStep) for s in steps) and AgentRole.JUDGE not in roles:
        raise ScenarioConfigError(
            f"{where}: the script has a judge() step but agents has no judge. Add "
            "scenario.JudgeAgent(criteria=[...]) to agents."
        )
    open_ended = [s for s in steps if isinstance(s, ProceedStep) and s.turns is None and s.on_turn is None
                  and s.on_step is None]
    if open_ended and AgentRole.JUDGE not in roles:
        # Only a judge's verdict ends open-ended autopilot: without one it would burn every turn.
        what = "autopilot (no script)" if script is None else "the script's proceed() without turns="
        raise ScenarioConfigError(
            f"{where}: {what} can only end with a judge's verdict, and agents has no judge, so it would run all "
            f"{max_turns} turns and then fail. Add scenario.JudgeAgent(criteria=[...]) to agents, or give the "
            "script an end: e.g. script=[scenario.proceed(turns=3), scenario.succeed()] (or scenario.fail(...))."
        )
    judges = [agent for agent in agents if agent.role is AgentRole.JUDGE]
    inline = any(isinstance(s, JudgeStep) and s.criteria for s in steps)
    if judges and not inline and all(without_criteria(j) for j in judges):
        raise ScenarioConfigError(
            f"{where}: the judge has no criteria to rule on. Give them to the judge "
            "(scenario.JudgeAgent(criteria=['...'])) or inline in the script "
            "(scenario.judge(criteria=['...']) steps)."
        )


def without_criteria(judge: Any) -> bool:
    """A judge that declares an empty ``criteria`` list (a JudgeAgent() relying on inline
    checkpoints). Custom judges without the attribute decide by themselves."""
    criteria = getattr(judge, "criteria", None)
    return isinstance(criteria, (list, tuple)) and not criteria


def judges_criteria(agents: Any) -> list[str]:
    """The criteria of the judges among ``agents``, in the order they are listed."""
    return [c for agent in agents if agent.role is AgentRole.JUDGE for c in (getattr(agent, "criteria", None) or [])]
