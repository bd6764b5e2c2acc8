"""What the store hands out besides run records: batches, run outcomes, and its one error.

A batch's status and counts are read from the store; a ``running`` batch whose writer process on
this host is gone reads as ``interrupted`` (decided by :class:`scenario.store.ResultStore`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from scenario.errors import ScenarioError
from scenario.rollup import pass_rate

_GIT_TIMEOUT_SECONDS = 5.0


class StoreError(ScenarioError):
    """The store file cannot be used (not ours, corrupted, unreadable). It was left untouched."""


class RunOutcome(NamedTuple):
    """The columns of one stored run that verdicts and progress need (no transcript)."""

    id: str
    suite: str
    scenario: str
    variant: str
    index: int  # type: ignore[assignment]  # the stored column's name; it shadows tuple.index, unused here
    status: str
    duration: float
    cost_usd: float
    attempts: int
    tokens: int
    batch_id: str = ""
    fingerprint: str | None = None


@dataclass(frozen=True)
class BatchInfo:
    """One batch of a store: when and where it ran, how far it got, and its counts.

    ``status`` is ``"running"``, ``"finished"`` (ran to its end) or ``"interrupted"`` (stopped
    early, or its process died: see the module docstring). Counts are of stored runs: ``finished``
    runs reached an end of their own (``passed + failed + errors``); ``planned`` is what the batch
    set out to run, so ``planned - finished`` runs are missing from an interrupted batch.
    """

    id: str
    suite: str
    status: str
    started_at: float
    finished_at: float | None
    planned: int
    finished: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0  # errors and timeouts
    cost_usd: float = 0.0
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    reason: str | None = None  # why it stopped early (or was marked interrupted)
    command: str | None = None  # the command line that started (or last resumed) it
    resumes: int = 0
    writer: str = ""  # host:pid of the process that last ran it
    info: dict[str, Any] = field(default_factory=dict, repr=False)  # suite snapshot: thresholds, criteria

    @property
    def pass_rate(self) -> float:
        """Passed runs over finished runs (0 when none finished)."""
        return pass_rate(self.passed, self.finished)

    @property
    def missing(self) -> int:
        """Planned runs with no finished record yet."""
        return max(0, self.planned - self.finished)

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else max(0.0, self.finished_at - self.started_at)


def new_batch_id(at: float | None = None) -> str:
    """``20261202-134501-3fa9c1``: sorts by start time (UTC), readable in a terminal, unique."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if at is None else at))
    return f"{stamp}-{secrets.token_hex(3)}"


def git_state(directory: str | os.PathLike[str] | None = None) -> tuple[str | None, str | None, bool | None]:
    """(commit, branch, dirty) of the git checkout holding ``directory``; Nones outside one.

    Each git call has a timeout: a batch never waits on a slow or hung repository for long.
    """
    cwd = str(directory) if directory is not None else None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None, None
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch == "HEAD":  # detached (as CI checkouts often are)
        branch = None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, branch, (bool(status) if status is not None else None)
