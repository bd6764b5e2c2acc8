"""``pytest --scenario-store``: a pytest session recorded as one batch, readable by view/report/compare."""

from __future__ import annotations

from typing import Any

import litellm  # noqa: F401  # imported once here: pytester drops modules an inner session imports
import pytest

from scenario.cli.main import main
from scenario.records import run_id
from scenario.store import ResultStore

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest
import scenario

@pytest.fixture(autouse=True)
def _scenario_model():
    scenario.configure(default_model=scenario.ModelConfig(
        model="openai/gpt-4o-mini", api_base={base_url!r}, api_key="mock", timeout=10))
"""

TESTS = """
import pytest
import scenario

class EchoAgent(scenario.AgentAdapter):
    async def call(self, input):
        return "echo: " + input.last_new_user_message_str()

class Broken(scenario.AgentAdapter):
    async def call(self, input):
        return {{}}["choices"]

def agents(criteria, agent=None):
    return [agent or EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[criteria])]

@pytest.mark.asyncio
async def test_run():
    assert (await scenario.run(name="greet", description="Says hi", agents=agents("The agent answers"))).success

@pytest.mark.asyncio
async def test_async_run():
    result = await scenario.arun(name="refund", description="Wants a refund", agents=agents("{refund_criterion}"))
    assert result.success

@pytest.mark.scenario(runs=3, min_pass_rate=0.5)
async def test_repeated():
    assert (await scenario.run(name="repeat", description="Again", agents=agents("The agent answers"))).success

@pytest.mark.asyncio
async def test_broken_agent():
    result = await scenario.run(name="broken", description="Crashes", agents=agents("x", Broken()))
    assert result.success

def test_not_a_scenario():
    assert 1 + 1 == 2
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, mock_server: Any) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST.format(base_url=mock_server.base_url))
    return pytester


def session(suite: pytest.Pytester, refund_criterion: str, *args: str) -> pytest.RunResult:
    suite.makepyfile(test_shop=TESTS.format(refund_criterion=refund_criterion))
    return suite.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_a_session_becomes_one_batch(suite, tmp_path):
    store_path = tmp_path / "results.db"
    result = session(suite, "The agent offers a refund", f"--scenario-store={store_path}")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines([f"scenario runs recorded as batch * of suite 'pytest:*' in {store_path}*"])
    with ResultStore(store_path, readonly=True) as store:
        [batch] = store.batches()
        assert batch.status == "finished" and batch.suite.startswith("pytest:")
        assert batch.finished == 6 and batch.passed == 5 and batch.errors == 1  # run + arun + 3 repeats + broken
        outcomes = {(o.scenario.split("::")[-1], o.index): o.status for o in store.outcomes(batch_id=batch.id)}
        assert outcomes == {("test_run", 0): "passed", ("test_async_run", 0): "passed",
                            ("test_repeated", 0): "passed", ("test_repeated", 1): "passed",
                            ("test_repeated", 2): "passed", ("test_broken_agent", 0): "error"}
        broken = store.record(batch.id, run_id(batch.suite, "test_shop.py::test_broken_agent", "default", 0))
        assert broken is not None and broken.error_type == "KeyError" and broken.result.messages
        assert "KeyError" in (broken.error_traceback or "")  # the traceback kept, for the run page
        thresholds = store.suite_info(batch.suite)["thresholds"]
        assert thresholds == {"test_shop.py::test_repeated": 0.5}


def test_two_sessions_compare_and_report(suite, tmp_path, capsys):
    store_path = tmp_path / "results.db"
    session(suite, "The agent offers a refund", f"--scenario-store={store_path}", "-k", "async_run")
    # The same tests again, with the refund criterion now failing on the mock judge.
    failing = session(suite, "The agent offers a refund [mock:fail]", f"--scenario-store={store_path}",
                      "-k", "async_run")
    failing.assert_outcomes(failed=1)
    with ResultStore(store_path, readonly=True) as store:
        assert [b.passed for b in store.batches()] == [0, 1]  # newest first
        suite_name = store.batches()[0].suite
    capsys.readouterr()
    assert main(["compare", "--store", str(store_path)]) == 0  # 1 run each: a flip, not beyond chance
    out = capsys.readouterr().out
    assert "test_shop.py::test_async_run" in out and "within chance" in out and "broke" in out
    assert main(["report", str(store_path), "--suite", suite_name, "--format", "json", "--out",
                 str(tmp_path / "r.json")]) == 0


def test_ini_option_and_suite_name(suite, tmp_path):
    suite.makeini("[pytest]\nasyncio_mode = strict\nscenario_store = out/results.db\n"
                  "scenario_store_suite = shop-bot\n")
    session(suite, "The agent offers a refund", "-k", "test_run")
    with ResultStore(suite.path / "out" / "results.db", readonly=True) as store:
        [batch] = store.batches()
        assert batch.suite == "shop-bot" and batch.finished == 1


def test_bad_store_path_is_a_usage_error(suite, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    result = session(suite, "x", f"--scenario-store={junk}", "-k", "not_a_scenario")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--scenario-store: * is not a scenario result store*"])
    assert junk.read_text() == "not sqlite"


def test_collect_only_records_nothing(suite, tmp_path):
    store_path = tmp_path / "results.db"
    session(suite, "x", f"--scenario-store={store_path}", "--collect-only")
    assert not store_path.exists()


def test_xdist_workers_write_into_the_controllers_batch(suite, tmp_path):
    store_path = tmp_path / "results.db"
    suite.makepyfile(test_shop=TESTS.format(refund_criterion="The agent offers a refund"))
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", f"--scenario-store={store_path}")
    result.assert_outcomes(passed=4, failed=1)
    with ResultStore(store_path, readonly=True) as store:
        [batch] = store.batches()  # one batch for the whole session, not one per worker
        assert batch.status == "finished" and batch.finished == 6
        assert len({o.id for o in store.outcomes(batch_id=batch.id)}) == 6
