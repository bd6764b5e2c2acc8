"""A suite after loading: every setting resolved (file defaults, per-scenario overrides, command line).

Policy: the schema (:mod:`scenario.suite.schema`) says what the file may contain; these plain
dataclasses say what will run, so the CLI never has to merge defaults again. ``None`` in
:class:`Overrides` means "not given on the command line", never "unset the file's value".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenario.settings import ModelConfig
from scenario.suite.imports import AgentFactory
from scenario.suite.schema import Step, SuiteFile


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

    def to_config(self) -> ModelConfig:
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
