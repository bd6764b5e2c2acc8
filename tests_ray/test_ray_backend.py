"""The Ray backend on a local 2-CPU cluster: parity with in-process, one quota for the cluster,
a worker killed mid-batch, Ctrl-C and a killed driver through the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import scenario
from scenario.batch import RunRecord, Scenario, run_batch
from scenario.distributed import Ray

REPO = Path(__file__).resolve().parents[1]


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


class Slow(scenario.AgentAdapter):
    """Sleeps, so a batch lasts long enough to kill something in the middle of it."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    async def call(self, input: scenario.AgentInput) -> str:
        await asyncio.sleep(self.seconds)
        return "done"


def autopilot(name: str, criteria: str = "The agent answers") -> Scenario:
    return Scenario(name=name, description="A customer asks about a parcel.",
                    agents=[Echo, scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[criteria])], max_turns=2)


def scripted(name: str, agent: Any = Echo) -> Scenario:
    return Scenario(name=name, description="scripted", agents=[agent],
                    script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])


def worker_pids() -> list[int]:
    """Live Ray worker processes running our actor (Ray titles them ``ray::ScenarioWorker...``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"ray::ScenarioWorker" in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


# ---------------------------------------------------------------------------------------------
# run_batch


@pytest.mark.asyncio
async def test_records_and_rollups_equal_the_in_process_backend(ray_cluster, configured):
    specs = [autopilot("parcel"), autopilot("refund", criteria="Offers a refund [mock:fail]"), scripted("hello")]
    local = await run_batch(specs, runs=3, max_concurrency=4)
    on_ray: list[RunRecord] = []
    remote = await run_batch(specs, runs=3, max_concurrency=4, backend=Ray(workers=2), on_run_finished=on_ray.append)

    assert remote.metadata["backend"] == "ray" and remote.metadata["ray"]["workers"] == 2
    assert [(r.id, r.status) for r in remote.runs] == [(r.id, r.status) for r in local.runs]
    assert sorted(r.id for r in on_ray) == sorted(r.id for r in remote.runs)
    for a, b in zip(local.runs, remote.runs):
        assert (a.usage.calls, a.usage.input_tokens, a.usage.output_tokens) == (
            b.usage.calls, b.usage.input_tokens, b.usage.output_tokens)
        assert a.usage.cost_usd == pytest.approx(b.usage.cost_usd)
        assert [m.get("role") for m in a.result.messages] == [m.get("role") for m in b.result.messages]
    assert remote.pass_rate == local.pass_rate and remote.passed_runs == local.passed_runs
    assert remote.usage.calls == local.usage.calls and remote.usage.cost_usd == pytest.approx(local.usage.cost_usd)
    assert remote.by_scenario["refund"].failed == local.by_scenario["refund"].failed == 3
    assert remote.metadata["runs_resent"] == 0 and remote.metadata["duplicates_dropped"] == 0


@pytest.mark.asyncio
async def test_a_rate_limit_holds_for_the_whole_cluster_with_uneven_workers(ray_cluster, mock_server, configured):
    # 60 requests/minute: a burst of 60, then 1 per second, for the batch as a whole. Per-worker
    # limiters would let both workers burst (120) and pace at 2/s. One scenario's runs are slow,
    # so the two workers make calls at very different rates.
    scenario.configure(rate_limits={"openai/*": scenario.RateLimit(requests_per_minute=60)})
    one_call = [scenario.user(), scenario.agent(), scenario.succeed()]  # the simulator: one model call
    specs = [
        Scenario(name="fast", description="d", agents=[Echo, scenario.UserSimulatorAgent()], script=one_call),
        Scenario(name="slow", description="d", agents=[lambda: Slow(0.5), scenario.UserSimulatorAgent()],
                 script=one_call),
    ]
    mock_server.reset_stats()
    result = await run_batch(specs, runs=35, max_concurrency=40, backend=Ray(workers=2))
    assert result.passed_runs == 70
    times = sorted(mock_server.stats.request_times)
    assert len(times) == 70
    start = times[0]
    # Never more than the burst plus what refilled since the first call (1/s). Slack: permits are
    # granted when a call is reserved and counted here when it arrives; the first call of a fresh
    # worker arrives up to a few seconds after its reservation, so later ones look early by that
    # much. Per-worker limits would let all 70 through at once.
    for count, at in enumerate(times, start=1):
        assert count <= 60 + (at - start) + 4, (count, at - start)
    assert times[-1] - start >= 6.0  # the 10 calls past the burst were paced (10 s), not let through


@pytest.mark.asyncio
async def test_a_worker_killed_mid_batch_loses_no_run_and_duplicates_none(ray_cluster):
    seen: list[RunRecord] = []
    before = set(worker_pids())  # actors of earlier batches may still be exiting
    specs = [scripted("a", agent=lambda: Slow(0.3)), scripted("b", agent=lambda: Slow(0.3))]
    task = asyncio.ensure_future(run_batch(specs, runs=20, max_concurrency=8, backend=Ray(workers=2, infra_retries=3),
                                           on_run_finished=seen.append))
    try:
        while len(seen) < 6:
            await asyncio.sleep(0.05)
        pids = sorted(set(worker_pids()) - before)
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        result = await asyncio.wait_for(task, 120)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=60)
    ids = [r.id for r in seen]
    assert len(ids) == len(set(ids)) == 40  # every run delivered exactly once
    assert result.passed_runs == 40 and result.error_runs == 0
    assert result.metadata["workers_lost"] == 1 and result.metadata["runs_resent"] >= 1


# ---------------------------------------------------------------------------------------------
# The CLI: --backend ray, Ctrl-C, a killed driver

AGENTS = '''
import asyncio
import scenario


class Slow(scenario.AgentAdapter):
    async def call(self, input):
        await asyncio.sleep(1.0)
        return "done"


def make_agent():
    return Slow()
'''

SUITE = """
name: remote
agent: remote_agents:make_agent
defaults: {runs: 15, max_concurrency: 2}
scenarios:
  - {name: a, description: one, script: [{user: hi}, agent, succeed]}
  - {name: b, description: two, script: [{user: hi}, agent, {fail: on purpose}], min_pass_rate: 0}
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    # The agent module sits next to the suite, not on this process's path: on the workers it
    # imports only because the CLI ships the suite's folder as the job's working directory.
    (tmp_path / "remote_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(SUITE).lstrip())
    return tmp_path


def cli(suite_dir: Path, address: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, RAY_ADDRESS=address, PYTHONPATH=str(REPO), CI="1")
    return subprocess.Popen(
        [sys.executable, "-m", "scenario.cli", "run", "suite.yaml", "--store", "r.db", "--backend", "ray",
         "--workers", "2", *extra],
        cwd=suite_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def stored_count(suite_dir: Path) -> int:
    """Rows in the store, read without taking the writer's lock (polled while the CLI writes)."""
    import sqlite3

    path = suite_dir / "r.db"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def stored(suite_dir: Path) -> list[RunRecord]:
    from scenario.store import ResultStore

    path = suite_dir / "r.db"
    if not path.exists():
        return []
    with ResultStore(path) as store:
        return store.records()


def test_the_cli_runs_a_suite_on_ray_with_the_same_results_as_locally(ray_cluster, suite_dir):
    proc = cli(suite_dir, ray_cluster)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]  # b fails on purpose, and its min_pass_rate of 0 allows that
    on_ray = {(r.scenario, r.index): r.status for r in stored(suite_dir)}
    assert len(on_ray) == 30
    assert set(on_ray.values()) == {"passed", "failed"}
    assert all(status == ("passed" if scenario_name == "a" else "failed") for (scenario_name, _), status in on_ray.items())


def test_ctrl_c_to_the_cli_group_cancels_runs_on_every_worker_and_exits_130(ray_cluster, suite_dir):
    before = set(worker_pids())
    proc = cli(suite_dir, ray_cluster)
    try:
        wait_until(lambda: stored_count(suite_dir) >= 4 or proc.poll() is not None, 240, "4 runs stored")
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        workers = set(worker_pids()) - before
        assert len(workers) == 2
        os.killpg(proc.pid, signal.SIGINT)
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - stopped < 30
    assert "Ctrl-C: stopping" in err and "Resume with:" in err and "--resume" in err
    assert "Traceback" not in err, err[-3000:]
    records = stored(suite_dir)
    assert 4 <= len(records) < 30 and {r.status for r in records} <= {"passed", "failed"}
    wait_until(lambda: not (workers & set(worker_pids())), 30, "the batch's worker actors are gone")


def test_killing_the_driver_ends_its_workers_and_a_resume_finishes_the_batch_exactly_once(ray_cluster, suite_dir):
    before = set(worker_pids())
    proc = cli(suite_dir, ray_cluster)
    try:
        wait_until(lambda: stored_count(suite_dir) >= 4 or proc.poll() is not None, 240, "4 runs stored")
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        workers = set(worker_pids()) - before
        assert len(workers) == 2
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    wait_until(lambda: not (workers & set(worker_pids())), 30, "the killed driver's worker actors are gone")
    resumed = cli(suite_dir, ray_cluster, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    keys = [(r.scenario, r.index) for r in stored(suite_dir) if r.status in ("passed", "failed")]
    assert len(set(keys)) == 30


def test_the_distributed_example_runs_on_ray(ray_cluster):
    env = dict(os.environ, RAY_ADDRESS=ray_cluster, PYTHONPATH=str(REPO), LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, str(REPO / "examples" / "distributed_batch.py"), "--backend", "ray"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PASSED" in done.stdout and "backend ray: 0 runs re-sent" in done.stdout


def test_the_python_snippet_of_batch_md_past_one_machine_runs(ray_cluster, tmp_path):
    import re

    text = (REPO / "docs" / "batch.md").read_text()
    section = text[text.index("## Past one machine"):]
    code = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[0]
    assert "backend=Ray(" in code
    # Run as a reader would: a script that defines its agent and specs (in __main__, so they
    # travel by value), then the snippet; the batch joins the session's cluster via RAY_ADDRESS
    # and ships the script's folder as the job's working directory.
    script = tmp_path / "doc_snippet.py"
    script.write_text(
        "import asyncio\nimport scenario\n\n"
        "class MyAgent(scenario.AgentAdapter):\n"
        "    async def call(self, input):\n"
        "        return 'ok'\n\n"
        "specs = [scenario.Scenario(name='doc', description='d', agents=[MyAgent],\n"
        "                           script=[scenario.user('hi'), scenario.agent(), scenario.succeed()])]\n\n"
        "async def main():\n"
        + textwrap.indent(code, "    ")
        + "    assert result.passed_runs == 5 and result.metadata['backend'] == 'ray', result.summary()\n\n"
        "asyncio.run(main())\n"
    )
    env = dict(os.environ, RAY_ADDRESS=ray_cluster, PYTHONPATH=str(REPO), LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PASSED" in done.stdout


@pytest.mark.asyncio
async def test_a_local_working_dir_after_the_caller_connected_is_refused_with_the_fix(ray_cluster):
    from scenario.errors import ScenarioConfigError

    with pytest.raises(ScenarioConfigError, match=r"pass runtime_env to your own ray.init"):
        await run_batch([scripted("a")], runs=2, backend=Ray(workers=1, runtime_env={"working_dir": "."}))


def test_a_restarted_coordinator_starts_drained(ray_cluster):
    import ray

    from scenario.batch.backends.ray import RateCoordinator

    limits = {"openai/*": scenario.RateLimit(requests_per_minute=60)}
    coordinator = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(RateCoordinator).remote(limits)
    try:
        assert ray.get(coordinator.was_restarted.remote()) is False
        assert ray.get(coordinator.reserve.remote("openai/*", 0)) == 0.0  # a fresh one: the burst is there
        ray.kill(coordinator, no_restart=False)  # dies; Ray starts it again
        # ray.kill returns before the old instance is gone, so a call may still reach it: wait
        # for an answer from the new one.
        wait_until(lambda: _restarted(coordinator), 60, "the coordinator is back, restarted")
        # A fresh bucket lets a minute's quota (60) through at once; a drained one has only what
        # refilled since the restart (one a second), so within 30 back-to-back reservations the
        # waits start and grow by the refill interval. The time since the restart is unknown on
        # a loaded machine, so the test reads the spacing, not the first wait.
        waits = [ray.get(coordinator.reserve.remote("openai/*", 0)) for _ in range(30)]
        assert waits[-1] > 0, waits
        # Spacing: one refill interval less the time between the two calls.
        assert 0.5 < waits[-1] - waits[-2] <= 1.01, waits
    finally:
        ray.kill(coordinator, no_restart=True)


def _restarted(actor: Any) -> bool:
    import ray

    try:
        return bool(ray.get(actor.was_restarted.remote(), timeout=5))
    except Exception:  # the actor is between lives: not answering yet
        return False


@pytest.mark.asyncio
async def test_adaptive_in_the_driver_hears_the_429s_of_ray_workers(ray_cluster):
    from scenario.testing import MockBehavior, MockLLMServer

    with MockLLMServer(behavior=MockBehavior(latency=0.02, rate_limit_above=2, retry_after=0.02)) as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock",
                                               timeout=10),
            retry=scenario.RetryPolicy(max_attempts=30, initial_backoff=0.01, max_backoff=0.05),
        )
        adaptive = scenario.Adaptive(initial=16, min=1, max=16, cooldown=0.05)
        result = await run_batch([autopilot("storm")], runs=16, concurrency=adaptive, backend=Ray(workers=2))
        assert result.passed_runs == 16
        assert server.stats.errors_served.get(429, 0) > 0
        assert adaptive.snapshot()["rate_limited"] > 0 and adaptive.limit < 16
