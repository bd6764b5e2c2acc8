"""The ``scenario`` command: run, report, exit codes, resume, interruption, concurrent jobs, dispatch.

Runs go through the real path: suite file -> batch -> engine -> litellm over HTTP to a mock model
(``--mock`` serves one in-process). Interruption tests run the command as a separate process and
signal it, as a user or CI runner would.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scenario.cli import main as cli
from scenario.records import run_id
from scenario.store import ResultStore
from tests.helpers.signals import as_in_a_terminal

REPO = Path(__file__).resolve().parents[2]

AGENT_MODULE = '''
import os
import scenario


class ShopAgent(scenario.AgentAdapter):
    def __init__(self, tone="friendly", fail_flag=None):
        self.tone = tone
        self.fail_flag = fail_flag

    def call(self, input):
        if self.fail_flag and os.path.exists(self.fail_flag):
            raise RuntimeError("agent backend unavailable")
        return f"[{self.tone}] happy to help with: {input.last_new_user_message_str()[:40]}"


def make_agent(tone="friendly", fail_flag=None):
    return ShopAgent(tone, fail_flag)


def make_nothing():
    return "not an agent"


class SlowAgent(scenario.AgentAdapter):
    def call(self, input):
        import time

        time.sleep(0.05)
        return "done"


def make_slow_agent():
    return SlowAgent()
'''


def write_suite(directory: Path, body: str, name: str = "suite.yaml") -> Path:
    (directory / "cli_test_agents.py").write_text(AGENT_MODULE)
    path = directory / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


SUITE = """
name: shop
agent: cli_test_agents:make_agent
defaults:
  model: openai/gpt-4o-mini
  runs: 2
  max_concurrency: 4
scenarios:
  - name: refund
    description: A customer wants a refund.
    criteria: [The agent offers a refund]
  - name: greeting
    description: Scripted hello.
    script: [{user: hello}, agent, succeed]
"""

FAILING_SUITE = """
name: flaky
agent: cli_test_agents:make_agent
defaults:
  model: openai/gpt-4o-mini
  runs: 2
scenarios:
  - name: good
    description: fine
    criteria: [The agent answers]
  - name: bad
    description: a criterion the mock judge fails
    criteria: ["The agent escalates [mock:fail]"]
"""


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(store: Path, suite: str | None = None) -> list[tuple]:
    conn = sqlite3.connect(store)
    try:
        sql = "SELECT id, scenario, variant, run_index, status, written_at, writer FROM runs"
        if suite:
            return conn.execute(sql + " WHERE suite = ?", (suite,)).fetchall()
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------
# Help and dispatch


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("run", "report", "demo", "mock-llm"):
        assert command in out
    code, out, _ = run_cli(["run", "--help"], capsys)
    assert code == 0
    for option in ("--runs", "--max-concurrency", "--adaptive", "--executor", "--model", "--store", "--resume",
                   "--report", "--out", "--min-pass-rate", "--mock"):
        assert option in out


def test_no_command_and_unknown_command_are_usage_errors(capsys):
    assert run_cli([], capsys)[0] == 2
    code, _, err = run_cli(["frobnicate"], capsys)
    assert code == 2 and "invalid choice" in err


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("scenario ")


def test_demo_and_mock_llm_get_the_rest_of_the_command_line(monkeypatch):
    import scenario.demo
    import scenario.testing.mock_llm

    seen = {}
    monkeypatch.setattr(scenario.demo, "main", lambda argv: seen.setdefault("demo", argv) and 0)
    monkeypatch.setattr(scenario.testing.mock_llm, "main", lambda argv: seen.setdefault("mock", argv) and 7)
    assert cli.main(["demo", "--latency", "0", "--mock"]) == 0
    assert cli.main(["mock-llm", "--port", "0"]) == 7
    assert seen == {"demo": ["--latency", "0", "--mock"], "mock": ["--port", "0"]}


def test_console_script_mock_llm_serves(tmp_path):
    script = REPO / ".venv" / "bin" / "scenario"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "scenario.cli"]
    proc = subprocess.Popen(command + ["mock-llm", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


# ----------------------------------------------------------------------------------------------
# scenario run: outcomes and exit codes


def test_run_passes_stores_every_run_and_writes_reports(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    code, out, err = run_cli(
        ["run", str(suite), "--mock", "--store", "r.db", "--report", "json", "--out", "out/r.json",
         "--report", "junit", "--out", "out/r.xml", "--out", "out/r.html", "--report", "html"],
        capsys,
    )
    assert code == 0, err
    assert "PASSED: all 2 scenario/variant pairs met" in out
    stored = rows(in_tmp / "r.db")
    assert len(stored) == 4 and {r[4] for r in stored} == {"passed"}
    assert {r[0] for r in stored} == {run_id("shop", s, "default", i) for s in ("refund", "greeting") for i in (0, 1)}
    data = json.loads((in_tmp / "out" / "r.json").read_text())
    assert data["passed"] is True and data["totals"]["runs"] == 4
    assert ET.parse(in_tmp / "out" / "r.xml").getroot().get("tests") == "2"
    assert "<svg" in (in_tmp / "out" / "r.html").read_text()


def test_missed_threshold_exits_1_and_command_line_threshold_wins(in_tmp, capsys):
    suite = write_suite(in_tmp, FAILING_SUITE)
    code, out, _ = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 1
    assert "FAILED: 1 of 2 scenario/variant pairs missed their pass-rate threshold" in out
    assert "MISSED" in out
    code, out, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--min-pass-rate", "0%"], capsys)
    assert code == 0
    code, _, _ = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--min-pass-rate", "0.5"], capsys)
    assert code == 1
    with ResultStore(in_tmp / "r.db", readonly=True) as store:
        assert [b.finished for b in store.batches("flaky")] == [4, 4, 4]  # each run is a fresh batch


def test_scenario_threshold_in_file_is_honoured(in_tmp, capsys):
    suite = write_suite(in_tmp, FAILING_SUITE.replace('criteria: ["The agent escalates [mock:fail]"]',
                                                      'criteria: ["The agent escalates [mock:fail]"]\n    min_pass_rate: 0'))
    code, out, _ = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 0, out


def test_processes_spread_runs_and_the_parent_stores_every_one(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    code, out, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--runs", "3", "--processes", "2"], capsys)
    assert code == 0, err
    stored = rows(in_tmp / "r.db")
    assert len(stored) == 6 and {r[4] for r in stored} == {"passed"}
    assert len({r[0] for r in stored}) == 6
    assert {r[6] for r in stored} == {stored[0][6]}  # one writer: this process, not the workers


def _batch_ids(store: Path) -> list[str]:
    with ResultStore(store, readonly=True) as opened:
        return [b.id for b in opened.batches()]


def test_running_again_after_editing_a_criterion_judges_afresh(in_tmp, capsys):
    """The issue's first case: edit a criterion, run again, get new verdicts (not the old ones)."""
    suite = write_suite(in_tmp, SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 0
    suite.write_text(suite.read_text().replace("criteria: [The agent offers a refund]",
                                               'criteria: ["The agent offers a refund [mock:fail]"]'))
    code, out, err = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 1, out + err
    assert "already finished" not in err and "nothing to run" not in err
    assert "FAILED: 1 of 2 scenario/variant pairs missed" in out
    newest, older = _batch_ids(in_tmp / "r.db")
    with ResultStore(in_tmp / "r.db", readonly=True) as store:
        assert store.batch(older).passed == 4 and store.batch(newest).passed == 2  # history kept


def test_resume_with_more_runs_only_runs_the_new_ones_and_changed_ones(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 0
    [batch_id] = _batch_ids(in_tmp / "r.db")
    before = {r[0]: r[5] for r in rows(in_tmp / "r.db")}
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--runs", "3", "--resume", batch_id], capsys)
    assert code == 0, err
    assert f"Resuming batch {batch_id} of suite 'shop'" in err and "4 of 6 runs kept; running 2: 2 not finished" in err
    after = {r[0]: r[5] for r in rows(in_tmp / "r.db")}
    assert len(after) == 6 and _batch_ids(in_tmp / "r.db") == [batch_id]
    assert all(after[k] == v for k, v in before.items())  # finished runs were not run again
    # The greeting scenario's description changes: resuming re-runs its runs and says why.
    suite.write_text(suite.read_text().replace("description: Scripted hello.", "description: Scripted wave."))
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--runs", "3", "--resume", batch_id], capsys)
    assert code == 0, err
    assert "3 of 6 runs kept; running 3: 3 changed since they ran: scenario (3)" in err


def test_errored_runs_run_again_on_resume(in_tmp, capsys):
    flag = in_tmp / "backend-down"
    flag.write_text("")
    suite = write_suite(in_tmp, SUITE.replace(
        "agent: cli_test_agents:make_agent",
        f"agent: {{agent: 'cli_test_agents:make_agent', args: {{fail_flag: '{flag}'}}}}",
    ))
    code, out, _ = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 1
    assert {r[4] for r in rows(in_tmp / "r.db")} == {"error"}
    [batch_id] = _batch_ids(in_tmp / "r.db")
    flag.unlink()
    # The batch finished (with errors): --resume alone looks for an interrupted one and says how to go on.
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--resume"], capsys)
    assert code == 2 and "no interrupted batch of suite 'shop'" in err and f"by id ({batch_id})" in err
    code, out, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--resume", batch_id], capsys)
    assert code == 0, out + err
    assert "0 of 4 runs kept; running 4: 4 ended on an error or timeout" in err
    stored = rows(in_tmp / "r.db")
    assert len(stored) == 4 and {r[4] for r in stored} == {"passed"}


def test_resume_flag_before_the_suite_file_is_not_a_batch_id(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 0
    code, _, err = run_cli(["run", "--resume", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 2 and "no interrupted batch of suite 'shop'" in err


def test_fresh_is_the_default_and_keeps_history(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 0
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--fresh"], capsys)
    assert code == 0, err
    assert len(_batch_ids(in_tmp / "r.db")) == 2 and len(rows(in_tmp / "r.db")) == 8


def test_variants_executor_and_filters(in_tmp, capsys):
    suite = write_suite(in_tmp, """
        name: shop
        variants:
          friendly: cli_test_agents:make_agent
          terse: {agent: cli_test_agents:make_agent, args: {tone: terse}}
        defaults: {model: openai/gpt-4o-mini, runs: 1}
        scenarios:
          - {name: a, description: x, criteria: [y]}
          - {name: b, description: x, criteria: [y], variants: [terse]}
    """)
    code, out, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--executor", "loop", "--adaptive"], capsys)
    assert code == 0, err
    assert sorted((r[1], r[2]) for r in rows(in_tmp / "r.db")) == [("a", "friendly"), ("a", "terse"), ("b", "terse")]
    with ResultStore(in_tmp / "r.db", readonly=True) as store:
        transcript = store.records(ids=[run_id("shop", "b", "terse", 0)])[0].result.messages
    assert any("[terse]" in str(m.get("content")) for m in transcript)
    code, _, _ = run_cli(["run", str(suite), "--mock", "--store", "s.db", "--variant", "friendly",
                          "--scenario", "a", "--max-concurrency", "1"], capsys)
    assert code == 0
    assert [(r[1], r[2]) for r in rows(in_tmp / "s.db")] == [("a", "friendly")]


def test_dry_run_checks_and_runs_nothing(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    code, out, _ = run_cli(["run", str(suite), "--store", "r.db", "--dry-run", "--runs", "5"], capsys)
    assert code == 0
    assert "is valid: 2 scenarios, 1 variant(s), 10 runs; 0 already in r.db, 10 to run" in out
    assert rows(in_tmp / "r.db") == []


def test_example_suite_runs_offline_against_the_mock(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = REPO / "examples" / "suite.yaml"
    code, out, err = run_cli(["run", str(example), "--mock", "--store", "r.db", "--report", "html", "--out", "r.html"],
                             capsys)
    assert code == 0, out + err
    assert "PASSED: all 9 scenario/variant pairs met" in out
    assert "known gap" in out  # the scenario that fails on purpose, with a 0% threshold
    assert len(rows(tmp_path / "r.db")) == 25
    assert (tmp_path / "r.html").exists()


def test_mock_needs_no_api_key_variable(in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("SCENARIO_TEST_UNSET_KEY", raising=False)
    suite = write_suite(in_tmp, SUITE.replace(
        "  model: openai/gpt-4o-mini\n",
        "  model: {name: openai/gpt-4o-mini, api_key_env: SCENARIO_TEST_UNSET_KEY}\n",
    ))
    code, _, err = run_cli(["run", str(suite), "--store", "r.db"], capsys)
    assert code == 2 and "SCENARIO_TEST_UNSET_KEY is not set" in err
    code, _, err = run_cli(["run", str(suite), "--store", "r.db", "--mock"], capsys)
    assert code == 0, err


def test_store_write_failure_stops_with_a_resume_hint(in_tmp, capsys, monkeypatch):
    from scenario.store import StoreError

    suite = write_suite(in_tmp, SUITE)
    calls = {"n": 0}
    original = ResultStore.put

    def flaky_put(self, record):
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoreError("writing to result store r.db failed: database or disk is full")
        return original(self, record)

    monkeypatch.setattr(ResultStore, "put", flaky_put)
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--max-concurrency", "1"], capsys)
    assert code == 2
    assert "Stopped: writing to result store r.db failed: database or disk is full" in err
    [batch_id] = _batch_ids(in_tmp / "r.db")
    assert "then resume with:\n  scenario run" in err and err.rstrip().endswith(f"--resume {batch_id}")
    assert len(rows(in_tmp / "r.db")) == 2


# ----------------------------------------------------------------------------------------------
# scenario run: usage errors (exit 2, nothing run)


def test_bad_suite_lists_every_problem_and_runs_nothing(in_tmp, capsys):
    suite = write_suite(in_tmp, """
        agent: cli_test_agents:make_agnt
        defaults: {runs: 0, colour: blue}
        scenarios:
          - {name: a, description: x}
    """)
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 2
    assert "4 problems in suite file" in err
    assert f"{suite}:1: agent: 'cli_test_agents' has no attribute 'make_agnt'" in err
    assert f"{suite}:2: defaults.runs: Input should be greater than or equal to 1" in err
    assert f"{suite}:2: defaults.colour: unknown key 'colour'" in err
    assert f"{suite}:4: scenarios[0]: criteria is missing" in err
    assert not (in_tmp / "r.db").exists()


def test_factory_returning_no_agent_is_a_usage_error(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE.replace("make_agent", "make_nothing"))
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)
    assert code == 2
    assert "agent: agent factory 'cli_test_agents:make_nothing' returned a str, not an agent adapter" in err
    assert not (in_tmp / "r.db").exists()


def test_missing_model_is_a_usage_error(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE.replace("  model: openai/gpt-4o-mini\n", ""))
    code, _, err = run_cli(["run", str(suite), "--store", "r.db"], capsys)
    assert code == 2
    assert "no model for the user simulator and judge" in err and "--mock" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--runs", "0"], "--runs: must be at least 1"),
        (["--min-pass-rate", "1.5"], "pass rate must be between 0 and 1"),
        (["--max-concurrency", "2", "--adaptive"], "not allowed with argument"),
        (["--resume", "--fresh"], "not allowed with argument"),
        (["--executor", "process"], "invalid choice"),
        (["--report", "html", "--report", "json", "--out", "a.html"], "2 --report but 1 --out"),
        (["--out", "report.txt"], "cannot tell the report format"),
        (["--resume", "--store", "nowhere.db"], "--resume: the store nowhere.db does not exist"),
        (["--variant", "nope"], "--variant nope not in the suite"),
    ],
)
def test_command_line_usage_errors(in_tmp, capsys, extra, message):
    suite = write_suite(in_tmp, SUITE)
    code, _, err = run_cli(["run", str(suite), "--mock"] + extra, capsys)
    assert code == 2
    assert message in err


def test_foreign_or_corrupted_store_is_refused_and_left_alone(in_tmp, capsys):
    suite = write_suite(in_tmp, SUITE)
    notes = in_tmp / "notes.txt"
    notes.write_text("not a database")
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", str(notes)], capsys)
    assert code == 2 and "is not a scenario result store" in err
    assert notes.read_text() == "not a database"
    other = in_tmp / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", str(other)], capsys)
    assert code == 2 and "not a scenario result store (tables: accounts)" in err
    assert other.read_bytes() == before


# ----------------------------------------------------------------------------------------------
# scenario report


def test_report_command_formats(in_tmp, capsys):
    suite = write_suite(in_tmp, FAILING_SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 1
    code, out, _ = run_cli(["report", "r.db", "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["passed"] is False
    groups = {g["scenario"]: g for g in data["suites"][0]["groups"]}
    assert groups["bad"]["met"] is False and groups["good"]["met"] is True
    code, out, _ = run_cli(["report", "r.db", "--format", "junit"], capsys)
    assert code == 0 and ET.fromstring(out.encode()).get("failures") == "1"
    code, _, err = run_cli(["report", "r.db", "--out", "report.html"], capsys)
    assert code == 0 and "Wrote html report" in err
    assert (in_tmp / "report.html").read_text().startswith("<!DOCTYPE html>")
    code, _, err = run_cli(["report", "r.db", "--suite", "nope"], capsys)
    assert code == 2 and "suite 'nope' is not in r.db (it has: flaky)" in err
    code, _, err = run_cli(["report", "missing.db"], capsys)
    assert code == 2 and "does not exist" in err


# ----------------------------------------------------------------------------------------------
# Interruption, kill and resume, concurrent jobs: real processes


def _command() -> list[str]:
    return [sys.executable, "-m", "scenario.cli"]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), LITELLM_LOCAL_MODEL_COST_MAP="True", CI="1")


def _wait_for_rows(store: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        if store.exists():
            try:
                count = len(rows(store))
            except sqlite3.OperationalError:  # tables not created yet
                count = 0
            if count >= at_least:
                return count
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} runs stored within {timeout}s")


SLOW_SUITE = """
name: slow
agent: cli_test_agents:make_agent
defaults: {model: openai/gpt-4o-mini, runs: 12, max_concurrency: 3}
scenarios:
  - {name: a, description: one, criteria: [x]}
  - {name: b, description: two, criteria: [y]}
"""


def _start_run(cwd: Path, suite: Path, store: Path, *extra: str, own_group: bool = False) -> subprocess.Popen:
    """``scenario run SUITE --store STORE EXTRA...`` as a subprocess, output piped, started as from a
    terminal (SIGINT at its default); ``own_group``: in a process group of its own, so a test can
    signal the whole group (the batch process and its workers) as a terminal or a CI runner does."""
    return subprocess.Popen(
        _command() + ["run", str(suite), "--store", str(store), *extra],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=own_group, preexec_fn=as_in_a_terminal,
    )


def test_sigkill_mid_batch_then_resume_gives_exactly_one_record_per_run(in_tmp, capsys):
    suite = write_suite(in_tmp, SLOW_SUITE)
    store = in_tmp / "r.db"
    proc = _start_run(in_tmp, suite, store, "--mock", "--mock-latency", "0.05")
    try:
        _wait_for_rows(store, 4, proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    survived = {r[0]: r[5] for r in rows(store)}
    assert 4 <= len(survived) < 24

    code, out, err = run_cli(["run", str(suite), "--mock", "--store", str(store), "--resume"], capsys)
    assert code == 0, out + err
    final = rows(store)
    ids = [r[0] for r in final]
    planned = {run_id("slow", s, "default", i) for s in ("a", "b") for i in range(12)}
    assert len(ids) == len(set(ids)) == 24 and set(ids) == planned
    by_id = {r[0]: r for r in final}
    for run, written_at in survived.items():
        if by_id[run][4] in ("passed", "failed"):
            assert by_id[run][5] == written_at  # finished before the kill: not run again


# Scripted, no model at all: these processes start fast (no litellm import) and each run takes
# as long as the agent sleeps.
SCRIPTED_SUITE = """
name: scripted
agent: cli_test_agents:make_slow_agent
defaults: {runs: 12, max_concurrency: 3}
scenarios:
  - {name: a, description: one, script: [{user: hi}, agent, succeed]}
  - {name: b, description: two, script: [{user: hi}, agent, {fail: on purpose}], min_pass_rate: 0}
"""


def test_ctrl_c_stores_finished_runs_prints_resume_and_exits_130(in_tmp, capsys):
    suite = write_suite(in_tmp, SCRIPTED_SUITE)
    store = in_tmp / "r.db"
    proc = _start_run(in_tmp, suite, store)
    _wait_for_rows(store, 3, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Ctrl-C: stopping" in err
    [batch_id] = _batch_ids(store)
    hint = err.split("Resume with:\n")[1].splitlines()[0].strip()
    assert hint == f"scenario run {suite} --store {store} --resume {batch_id}"  # the exact command
    with ResultStore(store, readonly=True) as opened:
        assert opened.batch(batch_id).status == "interrupted"
    stored = rows(store)
    assert 3 <= len(stored) < 24
    assert {r[4] for r in stored} <= {"passed", "failed"}  # cancelled runs are not results

    code, _, _ = run_cli(["run", str(suite), "--store", str(store), "--resume"], capsys)
    assert code == 0
    assert len(rows(store)) == 24


def test_sigterm_stops_like_ctrl_c_with_its_own_exit_code(in_tmp):
    suite = write_suite(in_tmp, SCRIPTED_SUITE)
    store = in_tmp / "r.db"
    proc = _start_run(in_tmp, suite, store)
    _wait_for_rows(store, 2, proc)
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "SIGTERM: stopping" in err and "Resume with:" in err


def test_two_jobs_writing_one_store_at_once(in_tmp):
    # One job runs the whole suite while another runs scenario b: each is its own batch, written
    # into one file at the same time.
    suite = write_suite(in_tmp, SCRIPTED_SUITE.replace("runs: 12", "runs: 10"))
    store = in_tmp / "shared.db"
    jobs = [_start_run(in_tmp, suite, store, *extra) for extra in ([], ["--scenario", "b"])]
    outputs = []
    for job in jobs:
        out, err = job.communicate(timeout=120)
        assert job.returncode == 0, err[-2000:]
        outputs.append(err)
    assert "[20/20 100%]" in outputs[0] and "[10/10 100%]" in outputs[1]
    with ResultStore(store, readonly=True) as opened:
        batches = sorted(opened.batches(), key=lambda b: b.planned)
        assert [(b.planned, b.finished, b.status) for b in batches] == [(10, 10, "finished"), (20, 20, "finished")]
        for batch in batches:
            ids = [o.id for o in opened.outcomes(batch_id=batch.id)]
            assert len(ids) == len(set(ids)) == batch.planned
        assert {o.status for o in opened.outcomes()} == {"passed", "failed"}


def test_report_format_comes_from_the_extension_and_html_never_goes_to_a_terminal(in_tmp, capsys, monkeypatch):
    suite = write_suite(in_tmp, FAILING_SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 1
    code, _, err = run_cli(["report", "r.db", "--out", "r.xml"], capsys)
    assert code == 0 and "Wrote junit report" in err
    assert ET.parse(in_tmp / "r.xml").getroot().tag == "testsuites"
    code, _, err = run_cli(["report", "r.db", "--out", "r.json"], capsys)
    assert code == 0 and json.loads((in_tmp / "r.json").read_text())["format"] == "scenario-report"
    code, _, err = run_cli(["report", "r.db", "--out", "r.txt"], capsys)
    assert code == 2 and "cannot tell the report format from the extension" in err
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, err = run_cli(["report", "r.db"], capsys)
    assert code == 2 and "not for a terminal" in err and "--out report.html" in err and out == ""
    code, out, _ = run_cli(["report", "r.db", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["passed"] is False


def test_report_of_an_older_batch_by_id(in_tmp, capsys):
    suite = write_suite(in_tmp, FAILING_SUITE)
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db"], capsys)[0] == 1
    assert run_cli(["run", str(suite), "--mock", "--store", "r.db", "--scenario", "good"], capsys)[0] == 0
    newest, older = _batch_ids(in_tmp / "r.db")
    code, out, _ = run_cli(["report", "r.db", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["totals"]["runs"] == 2  # the latest batch only
    code, out, _ = run_cli(["report", "r.db", "--format", "json", "--batch", older], capsys)
    assert code == 0 and json.loads(out)["totals"]["runs"] == 4
    code, _, err = run_cli(["report", "r.db", "--batch", "nope", "--format", "json"], capsys)
    assert code == 2 and f"--batch nope: no such batch in r.db (latest: {newest}, {older})" in err


def _children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_processes_stop_cleanly_when_the_whole_process_group_is_signalled(in_tmp, capsys, signum, code, name):
    # What a terminal (Ctrl-C) or a CI runner (cancelling a job) does: every process of the group
    # gets the signal, the workers too. The parent decides: exit code, stored runs, resume hint.
    suite = write_suite(in_tmp, SCRIPTED_SUITE)
    store = in_tmp / "r.db"
    proc = _start_run(in_tmp, suite, store, "--processes", "2", own_group=True)
    try:
        _wait_for_rows(store, 3, proc)
        workers = _children_of(proc.pid)
        assert len(workers) >= 2
        started = time.monotonic()
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    assert proc.returncode == code, err[-3000:]
    assert time.monotonic() - started < 15
    assert f"{name}: stopping" in err and "Resume with:" in err and "--resume" in err
    assert "Traceback" not in err and "RuntimeError" not in err and "worker process" not in err, err[-3000:]
    assert _alive(workers) == []
    stored = rows(store)
    assert 3 <= len(stored) < 24 and {r[4] for r in stored} <= {"passed", "failed"}

    resumed, _, err = run_cli(["run", str(suite), "--store", str(store), "--resume", "--processes", "2"], capsys)
    assert resumed == 0, err
    ids = [r[0] for r in rows(store)]
    assert len(ids) == len(set(ids)) == 24


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the worker processes")
def test_processes_workers_stop_within_seconds_when_the_batch_process_is_killed(in_tmp):
    suite = write_suite(in_tmp, SCRIPTED_SUITE)
    store = in_tmp / "r.db"
    proc = _start_run(in_tmp, suite, store, "--processes", "2", own_group=True)
    try:
        _wait_for_rows(store, 2, proc)
        workers = _children_of(proc.pid)
        assert len(workers) >= 2
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(workers) == [], "worker processes outlived the killed batch process"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("flags, message", [
    (["--address", "auto"], "--address only apply to --backend ray"),
    (["--workers", "2"], "--workers only apply to --backend ray"),
    (["--backend", "ray", "--processes", "2"], "with --backend ray use --workers N instead"),
])
def test_backend_flags_that_do_not_fit_together_are_refused(in_tmp, capsys, flags, message):
    suite = write_suite(in_tmp, SUITE)
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", *flags], capsys)
    assert code == 2 and message in err


def test_backend_ray_without_ray_installed_names_the_extra(in_tmp, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    suite = write_suite(in_tmp, SUITE)
    code, _, err = run_cli(["run", str(suite), "--mock", "--store", "r.db", "--backend", "ray"], capsys)
    assert code == 2 and "pip install 'scenario[ray]'" in err
    assert not (in_tmp / "r.db").exists()
