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

The rooms: ``schema`` (the format, as pydantic models), ``parse`` (text to data with the line of
every key), ``problems`` (what is wrong, where), ``imports`` (agent factories by import path),
``resolved`` (the loaded suite, every setting merged) and ``load`` (the steps in order). This
module only re-exports; the CLI and tests import from here.
"""

from __future__ import annotations

from scenario.suite.imports import AgentFactory, check_agent, resolve_import_path
from scenario.suite.load import build_suite, load_suite
from scenario.suite.problems import Loc, SuiteError, SuiteProblem
from scenario.suite.resolved import Overrides, ResolvedModel, Suite, SuiteScenario
from scenario.suite.schema import (
    DEFAULT_MIN_PASS_RATE,
    DEFAULT_RUNS,
    Defaults,
    ModelSection,
    ScenarioEntry,
    Step,
    SuiteFile,
    Variant,
)

__all__ = [
    "DEFAULT_MIN_PASS_RATE", "DEFAULT_RUNS", "AgentFactory", "Defaults", "Loc", "ModelSection", "Overrides",
    "ResolvedModel", "ScenarioEntry", "Step", "Suite", "SuiteError", "SuiteFile", "SuiteProblem", "SuiteScenario",
    "Variant", "build_suite", "check_agent", "load_suite", "resolve_import_path",
]
