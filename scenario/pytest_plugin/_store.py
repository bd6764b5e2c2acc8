"""``pytest --scenario-store PATH``: a pytest session recorded as one batch of a result store.

Policy: every ``scenario.run``/``arun`` result made inside a test (the marker's repetitions
included) becomes one run record of the session's batch, written as soon as its test finishes, so
``scenario view``, ``scenario report`` and ``scenario compare`` work for pytest suites as they do
for ``scenario run``. A run's "scenario" is the test's node id (stable from session to session,
which is what compare matches on) and its index is its place among that test's results. The
suite is ``pytest:<rootdir name>`` unless ``--scenario-store-suite`` names it. Thresholds are
the marker's ``min_pass_rate`` (every run must pass without a marker).

Under pytest-xdist the controller opens the batch and hands its id to the workers, which write
their own records (the store takes writers from several processes); the controller closes the
batch as ``finished``, or ``interrupted`` when the session was.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from scenario.records import RunRecord
from scenario.store import ResultStore, StoreError

STORE_OPTION = ("--scenario-store", "scenario_store")
SUITE_OPTION = ("--scenario-store-suite", "scenario_store_suite")
WORKER_KEY = "scenario_store_batch"


def add_options(group: Any, parser: pytest.Parser) -> None:
    flag, ini = STORE_OPTION
    group.addoption(flag, dest=flag, default=None, metavar="PATH",
                    help="record every scenario run of this session as one batch in the result store at PATH "
                         "(browse it with 'scenario view PATH').")
    parser.addini(ini, "scenario: record the session's scenario runs in this result store.", default="")
    flag, ini = SUITE_OPTION
    group.addoption(flag, dest=flag, default=None, metavar="NAME",
                    help="suite name of the recorded batch (default: pytest:<rootdir name>).")
    parser.addini(ini, "scenario: suite name for --scenario-store batches.", default="")


def store_path(config: pytest.Config) -> str | None:
    flag, ini = STORE_OPTION
    path = config.getoption(flag) or config.getini(ini)
    if not path:
        return None
    path = str(path)
    if not os.path.isabs(path):  # relative to where pytest was started (CLI) or the ini file's folder (ini)
        base = config.invocation_params.dir if config.getoption(flag) else (config.inipath.parent if config.inipath
                                                                            else config.rootpath)
        path = os.path.join(str(base), path)
    return path


class SessionStore:
    """The session's batch: opened at session start, one record per result, closed at the end."""

    def __init__(self, config: pytest.Config, path: str):
        self.config = config
        self.path = path
        flag, ini = SUITE_OPTION
        self.suite = str(config.getoption(flag) or config.getini(ini) or f"pytest:{config.rootpath.name}")
        self.is_worker = hasattr(config, "workerinput")
        self.store: Any = None
        self.batch_id: str | None = None
        self.written = 0
        self.thresholds: dict[str, float] = {}

    def open(self) -> None:
        """Open the store (and, on the controller, start the batch). A bad path stops the session
        with a usage error naming the option."""
        try:
            self.store = ResultStore(self.path)
        except StoreError as exc:
            raise pytest.UsageError(f"--scenario-store: {exc}") from None
        if self.is_worker:
            self.batch_id = self.config.workerinput.get(WORKER_KEY)  # type: ignore[attr-defined]
            return
        args = " ".join(self.config.invocation_params.args)
        batch = self.store.start_batch(self.suite, info={"source": "pytest", "thresholds": {}},
                                       command=f"pytest {args}".strip(), git_dir=str(self.config.rootpath))
        self.batch_id = batch.id

    def configure_node(self, node: Any) -> None:
        """xdist: tell a worker which batch to write into."""
        if self.batch_id is not None:
            node.workerinput[WORKER_KEY] = self.batch_id

    def collected(self, thresholds: dict[str, float]) -> None:
        """Thresholds of the collected tests, recorded as the suite's (what pages judge by)."""
        self.thresholds.update(thresholds)
        if self.store is not None and thresholds:
            info = self.store.suite_info(self.suite)
            merged = dict(info.get("thresholds") or {})
            merged.update(thresholds)
            self.store.save_suite_info(self.suite, {**info, "source": "pytest", "thresholds": merged})

    def record(self, nodeid: str, results: list[Any]) -> None:
        """Store one test's results (called when its call phase ends)."""
        if self.store is None or self.batch_id is None or not results:
            return
        records = [RunRecord.from_result(result, suite=self.suite, scenario=nodeid, index=index, batch_id=self.batch_id)
                   for index, result in enumerate(results)]
        self.store.put_many(records)
        self.written += len(records)

    def close(self, exitstatus: int) -> None:
        if self.store is None:
            return
        try:
            if not self.is_worker and self.batch_id is not None:
                interrupted = int(exitstatus) == int(pytest.ExitCode.INTERRUPTED)
                self.store.finish_batch(self.batch_id, "interrupted" if interrupted else "finished",
                                        "the pytest session was interrupted" if interrupted else None)
        finally:
            self.store.close()
            self.store = None
