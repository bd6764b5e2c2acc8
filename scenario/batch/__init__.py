"""Batches: run scenarios many times, with several agents, under a concurrency limit.

::

    specs = [scenario.Scenario(name="refund", description="...", agents=[MyAgent, scenario.UserSimulatorAgent(),
                                                                     scenario.JudgeAgent(criteria=[...])])]
    result = await scenario.run_batch(specs, runs=10, max_concurrency=20)
    print(result.summary())
    assert result.passed

See docs/batch.md.
"""

from __future__ import annotations

from scenario.batch.dispatch import Dispatcher
from scenario.batch.options import DEFAULT_MAX_CONCURRENCY
from scenario.batch.runner import prepare_batch, run_batch
from scenario.batch.spec import AgentFactory, Scenario
from scenario.records import BatchResult, GroupStats, RunRecord, RunStatus, run_id

__all__ = [
    "AgentFactory",
    "BatchResult",
    "DEFAULT_MAX_CONCURRENCY",
    "Dispatcher",
    "GroupStats",
    "RunRecord",
    "RunStatus",
    "Scenario",
    "prepare_batch",
    "run_batch",
    "run_id",
]
