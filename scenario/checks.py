"""The validators every door shares: ``run``/``arun``, ``Scenario``, ``run_batch``, ``configure``.

Policy: a value is checked once, where it enters the library, and a bad one raises
:class:`scenario.ScenarioConfigError` (also a ``ValueError``) naming what was wrong, where it was
given (the ``where`` argument: ``"run_batch(timeout=...)"``, ``"scenario 'refund'"``) and what to
give instead. Keeping the rules here means ``runs=0`` reads the same whether it came from Python,
a suite or a pytest marker, and a rule changed once changes everywhere.

Each check returns the value it accepted (normalised where that is the point, e.g. a rate as a
float), so a caller can write ``timeout = check_timeout(timeout, where)``. This module sits with
the other services below the flow: it knows the data types and errors, nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from scenario.errors import ScenarioConfigError
from scenario.messages import AgentRole

__all__ = [
    "check_agents", "check_choice", "check_description", "check_fields", "check_infra_retries", "check_int",
    "check_max_turns",
    "check_min_turns", "check_name", "check_positive_int", "check_rate", "check_runs", "check_timeout",
    "is_adapter", "is_whole_number",
]


def is_whole_number(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an int to Python, never a count to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_adapter(value: Any) -> bool:
    """An agent adapter *instance*: a ``call`` method and an :class:`AgentRole` (a class is a
    factory, not an adapter)."""
    return (
        not isinstance(value, type)
        and callable(getattr(value, "call", None))
        and isinstance(getattr(value, "role", None), AgentRole)
    )


# -- a scenario's description --------------------------------------------------------------------
def check_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioConfigError(f"{where}: name must be a non-empty string, got {value!r}.")
    return value


def check_description(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ScenarioConfigError(f"{where}: description must be a string, got {type(value).__name__}.")
    return value


def check_max_turns(value: Any, where: str) -> int:
    if not is_whole_number(value) or value < 1:
        raise ScenarioConfigError(f"{where}: max_turns must be an integer >= 1, got {value!r}.")
    return int(value)


def check_min_turns(value: Any, where: str, max_turns: int) -> int:
    if not is_whole_number(value) or not 0 <= value <= max_turns:
        raise ScenarioConfigError(
            f"{where}: min_turns must be an integer from 0 to max_turns ({max_turns}), got {value!r}."
        )
    return int(value)


def check_fields(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ScenarioConfigError(f"{where}: fields must be a dict of name -> value, got {type(value).__name__}.")
    return dict(value)


def check_agents(agents: Any, where: str) -> list[Any]:
    """A list of adapter instances (possibly empty: the caller decides which roles it needs)."""
    if agents is None:
        return []
    if not isinstance(agents, (list, tuple)):
        raise ScenarioConfigError(f"{where}: agents must be a list of AgentAdapter instances, got {type(agents).__name__}.")
    for index, agent in enumerate(agents):
        if isinstance(agent, type):
            raise ScenarioConfigError(
                f"{where}: agents[{index}] is the class {agent.__name__}, not an instance; write {agent.__name__}()."
            )
        if not is_adapter(agent):
            raise ScenarioConfigError(
                f"{where}: agents[{index}] ({type(agent).__name__}) is not an agent adapter: it needs a call(input) "
                "method and a role (subclass scenario.AgentAdapter)."
            )
    return list(agents)


# -- numbers -------------------------------------------------------------------------------------
def check_timeout(value: Any, where: str) -> float:
    """Seconds: a positive, finite number (``where`` names the option, e.g. ``"run_batch(timeout=...)"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ScenarioConfigError(f"{where} must be a positive number of seconds, got {value!r}.")
    return float(value)


def check_runs(value: Any, where: str) -> int:
    if not is_whole_number(value) or value < 1:
        raise ScenarioConfigError(f"{where} must be an integer >= 1, got {value!r}.")
    return int(value)


def check_rate(value: Any, where: str) -> float:
    """A pass rate: a fraction from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= 1.0):
        raise ScenarioConfigError(
            f"{where} must be a fraction between 0 and 1 (0.9 means 90% of runs pass), got {value!r}."
        )
    return float(value)


def check_int(value: Any, owner: str, name: str, *, minimum: int | None = None) -> int:
    """An integer argument ``name`` of ``owner`` (``"SlidingWindow"``), at least ``minimum``;
    the message reads ``{owner}: {name}={value!r} is not allowed; {name} must be ...``."""
    if not is_whole_number(value):
        allowed = f"an integer >= {minimum}" if minimum is not None else "an integer"
        raise ScenarioConfigError(f"{owner}: {name}={value!r} is not allowed; {name} must be {allowed}")
    if minimum is not None and value < minimum:
        raise ScenarioConfigError(f"{owner}: {name}={value!r} is not allowed; {name} must be >= {minimum}")
    return int(value)


def check_positive_int(value: Any, where: str, what: str = "an integer >= 1") -> int:
    """A count of at least one; the message reads ``{where}: must be {what}.``."""
    if not is_whole_number(value) or value < 1:
        raise ScenarioConfigError(f"{where}: must be {what}.")
    return int(value)


def check_infra_retries(value: Any, where: str) -> int:
    if not is_whole_number(value) or value < 0:
        raise ScenarioConfigError(
            f"{where}: {value!r} is not allowed; give an integer >= 0 (times a run lost with its worker is sent again)."
        )
    return int(value)


def check_choice(value: Any, choices: Collection[str], message: str) -> str:
    """One of ``choices``; otherwise ``message`` (which names the option and the choices)."""
    if value not in choices:
        raise ScenarioConfigError(message)
    return str(value)
