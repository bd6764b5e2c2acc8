"""What a batch produces: one record per run, and the batch's rollup.

Kept apart from the batch runner because the result store, the reports, the CLI and the pytest
plugin all read these without needing to run anything.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, Field, PrivateAttr

from .types import ScenarioResult, Usage

RunStatus = Literal["passed", "failed", "error", "timeout", "cancelled"]


def run_id(suite: str, scenario: str, variant: str, index: int) -> str:
    """Stable id of one run: the same (suite, scenario, variant, run index) always maps here,
    which is what lets a store skip finished runs on resume."""
    raw = f"{suite}\x1f{scenario}\x1f{variant}\x1f{index}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class RunRecord(BaseModel):
    """One run of one scenario with one agent variant."""

    id: str
    suite: str = ""
    scenario: str
    variant: str = "default"
    index: int = 0
    status: RunStatus
    result: Optional[ScenarioResult] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    attempts: int = 1
    started_at: float = 0.0  # unix time
    duration: float = 0.0  # seconds, wall
    usage: Usage = Field(default_factory=Usage)

    _exception: Optional[BaseException] = PrivateAttr(default=None)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exception(self) -> Optional[BaseException]:
        """The original exception for error/timeout runs in this process (not serialised)."""
        return self._exception

    @property
    def reasoning(self) -> Optional[str]:
        if self.result is not None and self.result.reasoning:
            return self.result.reasoning
        if self.error_type:
            return f"{self.error_type}: {self.error_message}"
        return None


class GroupStats(BaseModel):
    """Pass counts for one scenario, one variant, or one (scenario, variant) pair."""

    total: int = 0
    passed: int = 0
    errors: int = 0
    pass_rate: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    p50_duration: float = 0.0
    p95_duration: float = 0.0


class BatchResult(BaseModel):
    """Everything a batch produced. ``passed`` is the verdict a CI job should act on."""

    total: int = 0
    passed: bool = False
    passed_runs: int = 0
    pass_rate: float = 0.0
    min_pass_rate: Optional[float] = None
    runs: List[RunRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    duration: float = 0.0
    latency_p50: float = 0.0
    latency_p95: float = 0.0
    latency_p99: float = 0.0
    by_scenario: Dict[str, GroupStats] = Field(default_factory=dict)
    by_variant: Dict[str, GroupStats] = Field(default_factory=dict)
    cancelled: bool = False
    metadata: Dict[str, Any] = Field(default_factory=dict)
