"""``from scenario.scenario_executor import run, arun``: the module path langwatch-scenario uses.

The two doors into the engine live in :mod:`scenario.executors`; this module only re-exports
them. langwatch-scenario's ``ScenarioExecutor`` class is internal there and has no counterpart:
call ``run``/``arun``.
"""

from scenario.executors import arun, run

__all__ = ["arun", "run"]
