"""The one dispatch loop, driven through a fake backend whose workers misbehave on purpose.

The fake executes nothing: it answers each submitted run with a record, on another thread and in
a shuffled order, the way remote workers do, and can duplicate records, lose runs with a
"worker", ignore cancellation or report concurrency feedback. Whatever it does, the driver must
deliver each run exactly once, re-send what was lost, stop on fail-fast and on cancellation, and
never have more runs out than the strategy allows.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Collection
from typing import Any

import pytest

import scenario
from scenario.batch import RunRecord, Scenario, run_batch
from scenario.batch import dispatch as dispatch_module
from scenario.batch.backends import Backend, Feedback, Finished, Lost
from scenario.errors import ScenarioConfigError


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return "ok"


def specs(*names: str) -> list[Scenario]:
    return [Scenario(name=n, description="d", agents=[Echo], script=[scenario.user("hi"), scenario.succeed()])
            for n in names]


class FakeBackend(Backend):
    """Answers runs from a thread after a random short delay; see the module docstring."""

    name = "fake"

    def __init__(self, *, errors: Collection[str] = (), duplicate: bool = False, lose_first: Collection[str] = (),
                 lose_always: Collection[str] = (), late_record_after_loss: bool = False,
                 hang: Collection[str] = (), ignore_cancel: bool = False, cancel_on_worker: Collection[str] = (),
                 rate_limited: int = 0, infra_retries: int = 2, seed: int = 7) -> None:
        super().__init__()
        self.infra_retries = infra_retries
        self.errors, self.duplicate = set(errors), duplicate
        self.lose_first, self.lose_always = set(lose_first), set(lose_always)
        self.late_record_after_loss = late_record_after_loss
        self.hang, self.ignore_cancel = set(hang), ignore_cancel
        self.cancel_on_worker = set(cancel_on_worker)
        self.rate_limited = rate_limited
        self.random = random.Random(seed)
        self.submitted: list[str] = []
        self.cancel_requests: list[list[str]] = []
        self.out: set[str] = set()
        self.max_out = 0
        self.units: dict[str, Any] = {}
        self.started = self.closed = False
        self.lock = threading.Lock()
        self.timers: list[threading.Timer] = []

    async def start(self, config: Any, parent_span: Any) -> None:
        self.started = True
        self.units = {u.id: u for u in config.units}
        self.suite = config.suite

    def _record(self, run_id: str, status: str = "passed", **extra: Any) -> RunRecord:
        unit = self.units[run_id]
        return RunRecord(id=run_id, scenario=unit.scenario.name, variant=unit.variant, index=unit.index,  # type: ignore[arg-type]
                         status=status, **extra)

    def _later(self, *events: Any) -> None:
        # From another thread after a random delay: the order records arrive in is not the plan's.
        def fire() -> None:
            for event in events:
                self.post(event)

        timer = threading.Timer(self.random.uniform(0.0, 0.01), fire)
        self.timers.append(timer)
        timer.start()

    def submit(self, unit: Any) -> None:
        run_id = unit.id
        with self.lock:
            self.submitted.append(run_id)
            self.out.add(run_id)
            self.max_out = max(self.max_out, len(self.out))
        first = self.submitted.count(run_id) == 1
        if run_id in self.lose_always or (first and run_id in self.lose_first):
            events: list[Any] = [Lost([run_id], f"w{len(self.submitted)}", "killed by the test")]
            if self.late_record_after_loss:
                events.append(Finished(self._record(run_id), "ghost"))
            with self.lock:
                self.out.discard(run_id)
            self._later(*events)
            return
        if run_id in self.cancel_on_worker and first:
            with self.lock:
                self.out.discard(run_id)
            self._later(Finished(self._record(run_id, "cancelled", error_type="CancelledError",
                                              error_message="SIGTERM on the worker")))
            return
        if unit.scenario.name in self.hang:
            return  # finishes only when cancelled (or never, with ignore_cancel)
        status = "error" if unit.scenario.name in self.errors else "passed"
        extra: dict[str, Any] = {"error_type": "RuntimeError", "error_message": "boom"} if status == "error" else {}
        events = [Feedback("rate_limited", 1.0)] * self.rate_limited + [Finished(self._record(run_id, status, **extra))]
        with self.lock:
            self.out.discard(run_id)
        if self.duplicate:
            # In order, from the loop's thread: each record and then its duplicate.
            for event in events + [Finished(self._record(run_id, status, **extra))]:
                self.post(event)
            return
        self._later(*events)

    def cancel(self, run_ids: Collection[str], reason: str) -> None:
        self.cancel_requests.append(list(run_ids))
        if self.ignore_cancel:
            return
        for run_id in run_ids:
            with self.lock:
                self.out.discard(run_id)
            self._later(Finished(self._record(run_id, "cancelled", error_type="CancelledError", error_message=reason)))

    async def close(self) -> None:
        for timer in self.timers:
            timer.join()
        self.closed = True


@pytest.mark.asyncio
async def test_every_run_is_delivered_once_in_arrival_order_and_returned_in_plan_order():
    seen: list[RunRecord] = []
    backend = FakeBackend()
    result = await run_batch(specs("a", "b", "c"), runs=10, backend=backend, max_concurrency=5,
                             on_run_finished=seen.append)
    assert backend.started and backend.closed
    assert result.total == 30 and result.passed_runs == 30 and not result.cancelled
    assert sorted(r.id for r in seen) == sorted(r.id for r in result.runs) and len({r.id for r in seen}) == 30
    assert [(r.scenario, r.index) for r in result.runs] == [(s, i) for i in range(10) for s in "abc"]
    assert backend.max_out <= 5
    assert result.metadata["backend"] == "fake"
    assert result.metadata["duplicates_dropped"] == 0 and result.metadata["runs_resent"] == 0


@pytest.mark.asyncio
async def test_duplicate_records_are_dropped_by_run_id_and_counted():
    seen: list[RunRecord] = []
    result = await run_batch(specs("a", "b"), runs=5, backend=FakeBackend(duplicate=True), on_run_finished=seen.append)
    assert len(seen) == 10 == len({r.id for r in seen})
    # Every record is followed by its duplicate on the driver's queue. The driver stops listening
    # once every run is accounted for and the feeder is done, so only the last run's duplicate may
    # come too late to be counted.
    assert result.total == 10 and result.metadata["duplicates_dropped"] in (9, 10)


@pytest.mark.asyncio
async def test_runs_of_a_lost_worker_are_sent_again_and_a_late_record_from_it_is_dropped():
    plan = {r.id: r for r in (await run_batch(specs("a", "b"), runs=3, executor="loop")).runs}
    lost = sorted(plan)[:3]
    seen: list[RunRecord] = []
    backend = FakeBackend(lose_first=lost, late_record_after_loss=True)
    result = await run_batch(specs("a", "b"), runs=3, backend=backend, on_run_finished=seen.append)
    assert len(seen) == 6 == len({r.id for r in seen}) and result.passed_runs == 6
    assert all(backend.submitted.count(i) == 2 for i in lost)
    assert result.metadata["runs_resent"] == 3 and result.metadata["workers_lost"] == 3
    # The "ghost" record of a lost worker arrives first (and the re-sent run's record is then the
    # duplicate, dropped if it arrives before the batch ends); each run id was delivered once.
    assert result.metadata["duplicates_dropped"] <= 3


@pytest.mark.asyncio
async def test_a_run_lost_more_often_than_infra_retries_is_recorded_as_worker_lost():
    plan = (await run_batch(specs("a"), runs=2, executor="loop")).runs
    doomed = plan[0].id
    seen: list[RunRecord] = []
    backend = FakeBackend(lose_always=[doomed], infra_retries=1)
    result = await run_batch(specs("a"), runs=2, backend=backend, on_run_finished=seen.append)
    assert backend.submitted.count(doomed) == 2  # the first send and one re-send
    record = next(r for r in result.runs if r.id == doomed)
    assert record.status == "error" and record.error_type == "WorkerLost"
    assert "infra_retries=1" in record.error_message and "killed by the test" in record.error_message
    assert record.id in {r.id for r in seen}  # delivered (stored) like any finished run
    assert result.error_runs == 1 and result.passed_runs == 1


@pytest.mark.asyncio
async def test_a_run_cancelled_on_its_worker_without_being_asked_is_sent_again():
    plan = (await run_batch(specs("a"), runs=2, executor="loop")).runs
    backend = FakeBackend(cancel_on_worker=[plan[1].id])
    result = await run_batch(specs("a"), runs=2, backend=backend)
    assert result.passed_runs == 2 and not result.cancelled
    assert backend.submitted.count(plan[1].id) == 2 and result.metadata["runs_resent"] == 1


@pytest.mark.asyncio
async def test_fail_fast_cancels_the_runs_out_and_submits_nothing_more():
    backend = FakeBackend(errors={"bad"}, hang={"slow"})
    result = await run_batch(specs("slow", "bad", "ok"), runs=20, backend=backend, max_concurrency=4,
                             on_error="fail_fast")
    assert result.cancelled and result.reason.startswith("fail_fast: 'bad'")
    assert result.error_runs >= 1 and result.cancelled_runs >= 1
    assert backend.cancel_requests and len(backend.submitted) < 60
    assert result.total + result.cancelled_runs + result.not_started == 60
    assert all(r.status == "cancelled" for r in result.runs if r.scenario == "slow")


@pytest.mark.asyncio
async def test_cancelling_the_batch_collects_cancelled_records_from_the_workers():
    seen: list[RunRecord] = []
    backend = FakeBackend(hang={"slow"})
    task = asyncio.ensure_future(run_batch(specs("fast", "slow"), runs=3, backend=backend, max_concurrency=6,
                                           on_run_finished=seen.append))
    while len(seen) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    result = await asyncio.wait_for(task, 5)
    assert result.cancelled and result.reason.startswith("interrupted")
    assert result.passed_runs == 3 and result.cancelled_runs == 3
    assert all(r.status != "cancelled" for r in seen)  # cancelled runs are not results to store
    assert sorted(backend.cancel_requests[0]) == sorted(r.id for r in result.runs if r.scenario == "slow")


@pytest.mark.asyncio
async def test_workers_that_never_answer_a_cancel_are_recorded_cancelled_after_the_grace(monkeypatch):
    monkeypatch.setattr(dispatch_module, "STOP_GRACE", 0.2)
    backend = FakeBackend(hang={"slow"}, ignore_cancel=True)
    task = asyncio.ensure_future(run_batch(specs("slow"), runs=3, backend=backend))
    while len(backend.submitted) < 3:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    result = await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 3
    assert result.cancelled_runs == 3 and all(r.error_type == "CancelledError" for r in result.runs)


@pytest.mark.asyncio
async def test_feedback_from_workers_reaches_the_batch_strategy():
    strategy = scenario.Adaptive(initial=8, min=1, max=8)
    result = await run_batch(specs("a"), runs=4, backend=FakeBackend(rate_limited=1), concurrency=strategy)
    assert result.passed_runs == 4
    snapshot = strategy.snapshot()
    assert snapshot["rate_limited"] == 4 and snapshot["limit"] < 8


@pytest.mark.asyncio
async def test_a_hook_that_raises_stops_the_batch_and_propagates():
    calls: list[str] = []

    def hook(record: RunRecord) -> None:
        calls.append(record.id)
        raise OSError("disk full")

    backend = FakeBackend(hang={"slow"})
    with pytest.raises(OSError, match="disk full"):
        await run_batch(specs("fast", "slow"), runs=3, backend=backend, on_run_finished=hook)
    assert len(calls) == 1 and backend.closed


@pytest.mark.parametrize("backend, message", [
    ("dask", "unknown backend"),
    (42, "unknown backend"),
])
def test_bad_backends_are_refused_before_anything_runs(backend: Any, message: str):
    from scenario.batch import prepare_batch

    with pytest.raises(ScenarioConfigError, match=message):
        prepare_batch(specs("a"), backend=backend)


def test_ray_options_are_checked_where_they_are_made():
    from scenario.distributed import Ray

    with pytest.raises(ScenarioConfigError, match="workers=0"):
        Ray(workers=0)
    with pytest.raises(ScenarioConfigError, match="infra_retries"):
        Ray(infra_retries=-1)
    with pytest.raises(ScenarioConfigError, match="processes= forks workers on this machine"):
        from scenario.batch import prepare_batch

        prepare_batch(specs("a"), backend=Ray(), processes=2)


def test_import_scenario_and_the_default_backends_never_import_ray(tmp_path):
    # A "ray" that blows up when imported: anything touching it on these paths fails loudly.
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('ray was imported')\n")
    code = (
        "import asyncio, sys\n"
        "import scenario\n"
        "from scenario.batch import Scenario, run_batch\n"
        "from scenario.distributed import Ray\n"
        "Ray(workers=2)\n"
        "class Echo(scenario.AgentAdapter):\n"
        "    async def call(self, input):\n"
        "        return 'ok'\n"
        "spec = Scenario(name='a', description='d', agents=[Echo], script=[scenario.user('hi'), scenario.agent(), "
        "scenario.succeed()])\n"
        "r1 = asyncio.run(run_batch([spec], runs=2))\n"
        "r2 = asyncio.run(run_batch([spec], runs=2, processes=2))\n"
        "assert r1.passed_runs == r2.passed_runs == 2, (r1, r2)\n"
        "print('ray' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{repo}", LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"


def test_the_ray_backend_without_ray_installed_names_the_extra(monkeypatch):
    import importlib.util

    from scenario.batch import prepare_batch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    for backend in ("ray", scenario.distributed.Ray(workers=1)):
        with pytest.raises(ScenarioConfigError, match=r"pip install 'scenario\[ray\]'"):
            prepare_batch(specs("a"), backend=backend)


def test_the_distributed_example_runs_offline_on_forked_processes():
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, str(repo / "examples" / "distributed_batch.py")], capture_output=True,
                          text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PASSED" in done.stdout and "backend processes: 0 runs re-sent" in done.stdout


@pytest.mark.asyncio
async def test_cancelled_while_the_backend_starts_returns_at_once_with_nothing_run():
    class SlowStart(FakeBackend):
        async def start(self, config: Any, parent_span: Any) -> None:
            await asyncio.sleep(3600)

    backend = SlowStart()
    task = asyncio.ensure_future(run_batch(specs("a"), runs=3, backend=backend))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    task.cancel()
    result = await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1
    assert result.cancelled and result.total == 0 and result.not_started == 3 and backend.submitted == []
    assert backend.closed
