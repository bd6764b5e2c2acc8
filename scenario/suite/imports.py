"""Agents under test named by import path: ``package.module:factory`` to a callable, and a check that
the callable makes an agent.

Policy: a suite names its agent by import path so the file stays data. Importing it is the first
place user code runs, so every failure (no such module, the module raising, no such attribute, not
callable) becomes a :class:`ScenarioConfigError` naming the path and what to check, never a bare
traceback from inside importlib. The suite file's folder and the working directory are importable,
so a suite next to its agent module works without installing anything. :func:`check_agent` makes
one agent before any run starts, so ``scenario run --check`` finds a broken factory in seconds.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenario.errors import ScenarioConfigError
from scenario.messages import AgentRole
from scenario.suite.problems import did_you_mean


@dataclass
class AgentFactory:
    """A resolved agent import path: calling it makes a fresh agent under test."""

    path: str
    target: Callable[..., Any]
    args: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Any:
        return self.target(**self.args)



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
                f"{module_name!r} has no attribute {part!r} for agent {import_path!r}{did_you_mean(part, names)}"
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
