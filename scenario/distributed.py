"""Options for running a batch past one machine: ``run_batch(..., backend=scenario.distributed.Ray(...))``.

Policy: this module is plain data and never imports Ray, so ``import scenario`` and the default
backend stay free of it; the Ray backend (``scenario/batch/backends/ray.py``) imports Ray when a
batch starts on it and, if Ray is missing, says which extra to install. See docs/batch.md,
"Past one machine".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scenario.checks import check_infra_retries, is_whole_number
from scenario.errors import ScenarioConfigError

__all__ = ["Ray", "DEFAULT_INFRA_RETRIES"]

#: Times a run lost with its worker is sent out again before it is recorded as ``WorkerLost``.
DEFAULT_INFRA_RETRIES = 2


@dataclasses.dataclass(frozen=True)
class Ray:
    """Run a batch's runs on Ray actors, one async actor per worker core.

    Args:
        address: the cluster to join (``"ray://head:10001"``, ``"auto"``, ``"127.0.0.1:6379"``).
            ``None`` uses ``RAY_ADDRESS`` or a cluster already running on this machine, else starts a
            local one for the batch; the batch shuts down only what it started.
        workers: actors to start (default: the cluster's CPUs, at most the number of runs).
        runtime_env: Ray's runtime environment for the actors, e.g.
            ``{"working_dir": ".", "pip": [...]}``; the CLI ships the suite's directory as the working
            directory so ``module:factory`` references import on every node.
        infra_retries: times a run lost with its worker (node died, actor killed) is sent out again
            before it is recorded as a ``WorkerLost`` error.
        num_cpus: CPUs reserved per actor (default 1).
        init_kwargs: extra keyword arguments for ``ray.init`` when the batch starts or joins a
            cluster (e.g. ``{"_temp_dir": "/tmp/ray-ci"}``).
    """

    address: str | None = None
    workers: int | None = None
    runtime_env: dict[str, Any] | None = None
    infra_retries: int = DEFAULT_INFRA_RETRIES
    num_cpus: float = 1.0
    init_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ScenarioConfigError(
                f"scenario.distributed.Ray(address={self.address!r}): give a cluster address such as 'auto' or "
                "'ray://head:10001', or leave it out to use RAY_ADDRESS or a local cluster."
            )
        if self.workers is not None and (not is_whole_number(self.workers) or self.workers < 1):
            raise ScenarioConfigError(f"scenario.distributed.Ray(workers={self.workers!r}): must be an integer >= 1.")
        check_infra_retries(self.infra_retries, "scenario.distributed.Ray(infra_retries=...)")
        if self.runtime_env is not None and not isinstance(self.runtime_env, dict):
            raise ScenarioConfigError(
                f"scenario.distributed.Ray(runtime_env=...): expected a dict such as {{'working_dir': '.'}}, got "
                f"{type(self.runtime_env).__name__}."
            )
        if isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, (int, float)) or self.num_cpus <= 0:
            raise ScenarioConfigError(f"scenario.distributed.Ray(num_cpus={self.num_cpus!r}): must be a number > 0.")
        if self.init_kwargs is not None and not isinstance(self.init_kwargs, dict):
            raise ScenarioConfigError("scenario.distributed.Ray(init_kwargs=...): expected a dict of ray.init arguments.")

