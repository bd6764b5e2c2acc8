"""The pytest plugin, exercised through real pytest sessions (pytester).

Inner sessions run in-process (fast) except the pytest-xdist one, which needs worker processes.
Every inner session talks to this suite's mock model server; its URL is written into the inner
conftest.
"""

from __future__ import annotations

import json
import pathlib
import xml.etree.ElementTree as ET
from typing import Any

import litellm  # noqa: F401  # imported once here: pytester drops modules an inner session imports
import pytest

import scenario
from scenario.events import ResultCollector, collecting

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

CONFTEST = """
import pytest
import scenario

BASE_URL = {base_url!r}


@pytest.fixture(autouse=True)
def _scenario_model():
    scenario.configure(default_model=scenario.ModelConfig(
        model="openai/gpt-4o-mini", api_base=BASE_URL, api_key="mock", timeout=10))
"""

HELPERS = """
import scenario


class EchoAgent(scenario.AgentAdapter):
    async def call(self, input):
        return "echo: " + input.last_new_user_message_str()


def agents(criteria="The agent answers", agent=None):
    return [agent or EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=[criteria])]
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, mock_server: Any) -> pytest.Pytester:
    """An inner test directory wired to the mock model server."""
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST.format(base_url=mock_server.base_url))
    pytester.makepyfile(scenario_helpers=HELPERS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def report(pytester: pytest.Pytester, name: str = "report.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())


def rows_by_test(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["nodeid"].split("::", 1)[1]: row for row in document["tests"]}


def no_internal_error(result: pytest.RunResult) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text, text


# -- the marker --------------------------------------------------------------------------------------
def test_marker_runs_an_async_body_n_times_and_passes_at_the_threshold(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_repeat="""
        import itertools
        import pytest
        import scenario
        from scenario_helpers import agents

        calls = itertools.count(1)

        @pytest.mark.asyncio
        @pytest.mark.scenario(runs=5, min_pass_rate=0.6)
        async def test_flaky():
            criteria = "The agent answers [mock:fail]" if next(calls) in (2, 4) else "The agent answers"
            result = await scenario.arun(name="flaky", description="A question.", agents=agents(criteria))
            assert result.success, result.reasoning

        def test_the_body_ran_five_times():
            assert next(calls) == 6
        """
    )
    result = run(suite, "--scenario-report=report.json")
    result.assert_outcomes(passed=2)
    row = rows_by_test(report(suite))["test_flaky"]
    assert (row["runs"], row["passed_runs"], row["pass_rate"], row["min_pass_rate"]) == (5, 3, 0.6, 0.6)
    assert row["outcome"] == "passed" and row["scenarios"] == 5 and row["scenarios_passed"] == 3
    assert [f["run"] for f in row["failures"]] == [2, 4]
    assert row["cost_usd"] > 0 and row["model_calls"] == 20


def test_failure_lists_failed_runs_with_reasoning_and_other_exceptions(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_failing="""
        import itertools
        import pytest
        import scenario
        from scenario_helpers import agents

        calls = itertools.count(1)

        @pytest.mark.asyncio
        @pytest.mark.scenario(runs=4, min_pass_rate=0.75)
        async def test_mostly_failing():
            n = next(calls)
            if n == 3:
                raise RuntimeError("database unavailable")
            criteria = "The agent offers a refund [mock:fail]" if n in (1, 2) else "The agent answers"
            result = await scenario.run(name="refund", description="A refund request.", agents=agents(criteria))
            passed = result.success  # the assertion below does not mention the result's reasoning...
            assert passed, "the refund scenario failed"  # ...so the plugin adds it

        @pytest.mark.scenario
        def test_single_run_keeps_the_original_error():
            assert 1 + 1 == 3

        def test_the_session_goes_on():
            pass
        """
    )
    result = run(suite)
    no_internal_error(result)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*1 of 4 runs passed (25%); this test needs at least 75% (min_pass_rate=0.75).*",
            "Failed runs:",
            "  run 1/4: AssertionError: the refund scenario failed (test_pp_failing.py:*)",
            "*scenario failed: Mock judge verdict*1 failed*",
            "  run 2/4: AssertionError: the refund scenario failed*",
            "  run 3/4: RuntimeError: database unavailable (test_pp_failing.py:*)",
        ]
    )
    # One run: pytest's own assertion report, not a pass-rate summary.
    result.stdout.fnmatch_lines(["*assert (1 + 1) == 3*"])


def test_sync_test_runs_repeat_on_threads(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_sync="""
        import asyncio
        import threading
        import pytest
        import scenario
        from scenario_helpers import agents

        threads = []

        @pytest.mark.scenario(runs=3)
        def test_sync_body():
            threads.append(threading.current_thread().name)
            result = asyncio.run(scenario.run(name="sync", description="A question.", agents=agents()))
            assert result.success

        def test_after():
            assert len(threads) == 3
            assert all(name.startswith("scenario-test-run") for name in threads)
        """
    )
    result = run(suite, "--scenario-report=report.json")
    result.assert_outcomes(passed=2)
    row = rows_by_test(report(suite))["test_sync_body"]
    assert (row["runs"], row["passed_runs"], row["scenarios"]) == (3, 3, 3)


def test_runs_are_concurrent_and_max_concurrency_bounds_them(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_concurrency="""
        import asyncio
        import pytest

        state = {"active": 0, "bounded_peak": 0}
        six_in_flight = asyncio.Event()

        @pytest.mark.asyncio
        @pytest.mark.scenario(runs=6)
        async def test_all_at_once():
            state["active"] += 1
            if state["active"] == 6:
                six_in_flight.set()
            await asyncio.wait_for(six_in_flight.wait(), 5)  # times out unless all six overlap
            state["active"] -= 1

        @pytest.mark.asyncio
        @pytest.mark.scenario(runs=6, max_concurrency=2)
        async def test_bounded():
            state["active"] += 1
            state["bounded_peak"] = max(state["bounded_peak"], state["active"])
            await asyncio.sleep(0.02)
            state["active"] -= 1

        def test_peaks():
            assert state["bounded_peak"] == 2
        """
    )
    run(suite).assert_outcomes(passed=3)


def test_async_test_with_only_the_scenario_marker_runs(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_bare="""
        import pytest
        import scenario
        from scenario_helpers import agents

        @pytest.mark.scenario(runs=2)
        async def test_bare():
            result = await scenario.arun(name="bare", description="A question.", agents=agents())
            assert result.success
        """
    )
    run(suite).assert_outcomes(passed=1)


def test_skip_inside_the_runs_skips_the_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_skip="""
        import pytest

        @pytest.mark.scenario(runs=3)
        def test_needs_a_key():
            pytest.skip("no API key")
        """
    )
    result = run(suite, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no API key*"])


# -- options and their precedence ---------------------------------------------------------------
PRECEDENCE_MODULE = """
import pytest

pytestmark = pytest.mark.scenario(min_pass_rate=0.5)

calls = {"half": 0}

@pytest.mark.scenario
def test_defaults():
    pass

@pytest.mark.scenario(runs=2)
def test_marker_runs():
    pass

@pytest.mark.scenario(runs=4)
def test_half_pass():
    calls["half"] += 1
    assert calls["half"] % 2 == 0

@pytest.mark.scenario(runs=4, min_pass_rate=1.0)
def test_strict():
    pass
"""


@pytest.mark.parametrize(
    ("ini", "args", "expected_runs"),
    [
        ("", [], 1),
        ("scenario_runs = 4", [], 4),
        ("", ["--scenario-runs=3"], 3),
        ("scenario_runs = 4", ["--scenario-runs=3"], 3),
    ],
    ids=["builtin-default", "ini", "command-line", "command-line-beats-ini"],
)
def test_runs_default_comes_from_command_line_then_ini_and_the_marker_wins(
    pytester: pytest.Pytester, ini: str, args: list, expected_runs: int
) -> None:
    pytester.makeini(INI + ini + "\n")
    pytester.makepyfile(test_pp_precedence=PRECEDENCE_MODULE)
    result = run(pytester, "--scenario-report=report.json", *args)
    result.assert_outcomes(passed=4)
    rows = rows_by_test(report(pytester))
    assert rows["test_defaults"]["runs"] == expected_runs
    assert rows["test_marker_runs"]["runs"] == 2  # the marker's own value wins over both
    # Module pytestmark sets min_pass_rate; function markers add runs without losing it.
    assert rows["test_half_pass"]["min_pass_rate"] == 0.5 and rows["test_half_pass"]["passed_runs"] == 2
    assert rows["test_strict"]["min_pass_rate"] == 1.0


def test_min_pass_rate_and_max_concurrency_options(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "scenario_min_pass_rate = 1.0\nscenario_max_concurrency = 3\n")
    pytester.makepyfile(
        test_pp_rates="""
        import itertools
        import threading
        import time
        import pytest

        calls = itertools.count(1)
        lock = threading.Lock()
        state = {"active": 0, "peak": 0}

        @pytest.mark.scenario(runs=4)
        def test_three_of_four():
            with lock:
                state["active"] += 1
                state["peak"] = max(state["peak"], state["active"])
            time.sleep(0.05)
            with lock:
                state["active"] -= 1
            assert next(calls) != 1

        def test_peak():
            assert state["peak"] == 2
        """
    )
    # Command line beats ini for both settings: 3 of 4 passing is enough at 0.75.
    run(pytester, "--scenario-min-pass-rate=0.75", "--scenario-max-concurrency=2").assert_outcomes(passed=2)
    # Only the ini: 1.0 is required, and the concurrency cap is 3.
    result = run(pytester)
    result.assert_outcomes(passed=0, failed=2)
    result.stdout.fnmatch_lines(["*3 of 4 runs passed (75%); this test needs at least 100%*"])


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("runs=0", "runs=0 is not allowed; runs must be a whole number >= 1"),
        ("runs=2.5", "runs=2.5 is not allowed"),
        ("min_pass_rate=1.5", "min_pass_rate=1.5 is not allowed; it is a fraction between 0 and 1"),
        ("min_pass_rate=-0.1", "min_pass_rate=-0.1 is not allowed"),
        ("max_concurrency=0", "max_concurrency=0 is not allowed"),
        ("run=3", "unknown argument 'run'. Did you mean 'runs'?"),
        ("5", "takes keyword arguments only"),
    ],
)
def test_bad_marker_values_are_collection_errors(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_pp_bad=f"""
        import pytest

        @pytest.mark.scenario({marker})
        def test_marked():
            pass

        def test_innocent():
            pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_pp_bad.py*", f"*test_pp_bad.py::test_marked: *{message}*"])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "@pytest.mark.scenario(runs=3)\ndef helper():\n    pass\n",
            "@pytest.mark.scenario is on function 'helper', which pytest does not collect as a test",
        ),
        (
            "@pytest.mark.scenario(runs=3)\nclass Helpers:\n    def test_x(self):\n        pass\n",
            "@pytest.mark.scenario is on class 'Helpers', which pytest does not collect as a test",
        ),
    ],
    ids=["function", "class"],
)
def test_marker_on_a_non_test_is_a_collection_error(pytester: pytest.Pytester, source: str, message: str) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_pp_misplaced="import pytest\n\n" + source + "\ndef test_real():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_pp_misplaced.py*", f"*{message}*"])


def test_marker_added_late_by_a_hook_fails_that_test_clearly(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.scenario(min_pass_rate=3))
        """
    )
    pytester.makepyfile(test_pp_late="def test_x():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_pp_late.py::test_x: min_pass_rate=3 is not allowed*"])


@pytest.mark.parametrize(
    ("ini", "args", "message"),
    [
        ("", ["--scenario-runs=0"], "runs=0 is not allowed"),
        ("", ["--scenario-min-pass-rate=high"], "'high' is not a number between 0 and 1"),
        ("", ["--scenario-max-concurrency=-1"], "max_concurrency=-1 is not allowed"),
        ("scenario_min_pass_rate = 2", [], "ini option scenario_min_pass_rate (in *): min_pass_rate=2.0 is not allowed"),
        ("scenario_runs = many", [], "ini option scenario_runs (in *): 'many' is not a whole number"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, ini: str, args: list, message: str) -> None:
    pytester.makeini(INI + ini + "\n")
    pytester.makepyfile(test_pp_any="def test_x():\n    pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


# -- pytest-asyncio and pytest-asyncio-concurrent in one session ---------------------------------
MIXED_MODULE = """
import asyncio
import pytest
import pytest_asyncio
import scenario
from scenario_helpers import agents

EXECUTOR = scenario.{executor}


class LoopBoundAgent(scenario.AgentAdapter):
    \"\"\"Holds objects an async fixture made on its loop.\"\"\"

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.lock = asyncio.Lock()

    async def call(self, input):
        if EXECUTOR is scenario.arun:
            assert asyncio.get_running_loop() is self.loop, "fixture and test run on different loops"
        async with self.lock:
            return "echo: " + input.last_new_user_message_str()


@pytest.fixture
async def bound_agent():
    agent = LoopBoundAgent()
    yield agent


@pytest.fixture
async def plain_value():
    return 42


@pytest_asyncio.fixture
async def asyncio_fixture_agent():
    yield LoopBoundAgent()


arrived = []
everyone_here = asyncio.Event()


async def meet(expected=4):
    # Passes only if the group's tests are in flight at the same time.
    arrived.append(1)
    if len(arrived) == expected:
        everyone_here.set()
    await asyncio.wait_for(everyone_here.wait(), 5)


@pytest.mark.asyncio
async def test_pytest_asyncio_first():
    result = await EXECUTOR(name="first", description="A question.", agents=agents())
    assert result.success


@pytest.mark.asyncio_concurrent(group="support")
async def test_member_with_async_fixtures(bound_agent, plain_value):
    await meet()
    agent = bound_agent if EXECUTOR is scenario.arun else None
    result = await EXECUTOR(name="a", description="A question.", agents=agents(agent=agent))
    assert result.success and plain_value == 42


@pytest.mark.asyncio_concurrent(group="support")
async def test_member_plain(asyncio_fixture_agent):
    await meet()
    agent = asyncio_fixture_agent if EXECUTOR is scenario.arun else None
    result = await EXECUTOR(name="b", description="A question.", agents=agents(agent=agent))
    assert result.success


@pytest.mark.asyncio_concurrent(group="support")
@pytest.mark.scenario(runs=2)
async def test_member_repeated():
    await meet()
    result = await EXECUTOR(name="c", description="A question.", agents=agents())
    assert result.success


@pytest.mark.asyncio
async def test_pytest_asyncio_last(asyncio_fixture_agent):
    agent = asyncio_fixture_agent if EXECUTOR is scenario.arun else None
    result = await EXECUTOR(name="last", description="A question.", agents=agents(agent=agent))
    assert result.success
"""


@pytest.mark.parametrize("executor", ["run", "arun"])
def test_pytest_asyncio_and_concurrent_groups_share_a_session(suite: pytest.Pytester, executor: str) -> None:
    suite.makepyfile(test_pp_mixed=MIXED_MODULE.format(executor=executor))
    result = run(suite, "--scenario-report=report.json", "-W", "error::pytest.PytestRemovedIn10Warning")
    no_internal_error(result)
    result.assert_outcomes(passed=5)
    rows = rows_by_test(report(suite))
    assert rows["test_member_repeated"]["runs"] == 2
    assert rows["test_member_plain"]["scenarios"] == 1
    assert {name for name in rows} == {
        "test_pytest_asyncio_first", "test_member_with_async_fixtures", "test_member_plain",
        "test_member_repeated", "test_pytest_asyncio_last",
    }


# -- summary, JSON report, JUnit XML ----------------------------------------------------------------
SUMMARY_MODULE = """
import pytest
import scenario
from scenario_helpers import agents

@pytest.mark.asyncio
@pytest.mark.scenario(runs=3)
async def test_marked():
    result = await scenario.arun(name="marked", description="A question.", agents=agents())
    assert result.success

@pytest.mark.asyncio
async def test_unmarked_but_runs_a_scenario():
    result = await scenario.run(name="unmarked", description="A question.", agents=agents())
    assert result.success

def test_no_scenario_here():
    pass
"""


def test_session_summary_and_json_report(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_pp_summary=SUMMARY_MODULE)
    result = run(suite, "--scenario-report=out/scenario.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= scenario summary =*",
            "runs  passed  rate   min   time*cost  test",
            "   3       3  100%  100%  *s  $0.0*  test_pp_summary.py::test_marked",
            "   1       1  100%     -  *s  $0.0*  test_pp_summary.py::test_unmarked_but_runs_a_scenario",
            "2 scenario test(s), 4 of 4 runs passed, 4 scenario run(s), 16 model call(s); session cost $0.0*",
            "scenario report written to *out*scenario.json",
        ]
    )
    assert "test_no_scenario_here" not in result.stdout.str().split("scenario summary")[1]
    document = report(suite, "out/scenario.json")
    rows = rows_by_test(document)
    assert set(rows) == {"test_marked", "test_unmarked_but_runs_a_scenario"}
    marked = rows["test_marked"]
    assert (marked["runs"], marked["passed_runs"], marked["pass_rate"], marked["marked"]) == (3, 3, 1.0, True)
    assert marked["duration_s"] > 0 and marked["cost_usd"] > 0 and marked["input_tokens"] > 0
    assert rows["test_unmarked_but_runs_a_scenario"]["marked"] is False
    total = document["total"]
    assert total["tests"] == 2 and total["runs"] == 4 and total["model_calls"] == 16
    assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in document["tests"]))


def test_report_path_from_ini(suite: pytest.Pytester) -> None:
    suite.makeini(INI + "scenario_report = reports/from-ini.json\n")
    suite.makepyfile(test_pp_summary=SUMMARY_MODULE)
    run(suite).assert_outcomes(passed=3)
    assert report(suite, "reports/from-ini.json")["total"]["tests"] == 2


def test_nothing_is_added_to_a_session_without_scenario_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_pp_plain="def test_x():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "scenario summary" not in result.stdout.str()
    assert "scenario report" not in result.stdout.str()


def test_junit_xml_gets_the_figures_as_properties(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_pp_summary=SUMMARY_MODULE)
    run(suite, "--junitxml=junit.xml").assert_outcomes(passed=3)
    cases = {case.get("name"): case for case in ET.parse(suite.path / "junit.xml").iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_marked"].iter("property")}
    assert properties["scenario_runs"] == "3" and properties["scenario_passed_runs"] == "3"
    assert properties["scenario_pass_rate"] == "1.0" and properties["scenario_min_pass_rate"] == "1.0"
    assert float(properties["scenario_cost_usd"]) > 0 and float(properties["scenario_duration_s"]) >= 0
    assert properties["scenario_results"] == "3" and properties["scenario_model_calls"] == "12"
    assert list(cases["test_no_scenario_here"].iter("property")) == []


def test_passing_test_with_failed_runs_shows_them_in_a_report_section(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_section="""
        import itertools
        import pytest

        calls = itertools.count(1)

        @pytest.mark.scenario(runs=3, min_pass_rate=0.5)
        def test_one_bad_run():
            if next(calls) == 2:
                raise ValueError("flaky tool call")
        """
    )
    result = run(suite, "-rP")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*scenario failed runs*", "run 2: ValueError: flaky tool call*"])


# -- pytest-xdist ------------------------------------------------------------------------------------
def test_xdist_spreads_tests_over_workers_and_merges_the_summary(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_pp_spread="""
        import pytest
        import scenario
        from scenario_helpers import agents

        @pytest.mark.parametrize("n", range(6))
        @pytest.mark.scenario(runs=2)
        def test_sync_marked(n):
            pass

        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", range(2))
        async def test_plain_async(n):
            result = await scenario.arun(name="p", description="A question.", agents=agents())
            assert result.success
        """,
        test_pp_group="""
        import pytest
        import scenario
        from scenario_helpers import agents

        @pytest.mark.asyncio_concurrent(group="g")
        @pytest.mark.parametrize("n", range(3))
        async def test_member(n):
            result = await scenario.run(name="m", description="A question.", agents=agents())
            assert result.success
        """,
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--scenario-report=report.json")
    no_internal_error(result)
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines(["*= scenario summary =*", "11 scenario test(s), 17 of 17 runs passed*"])
    document = report(suite)
    assert len(document["tests"]) == 11
    assert {row["worker"] for row in document["tests"]} == {"gw0", "gw1"}
    assert document["total"]["scenarios"] == 5


# -- the shipped example ------------------------------------------------------------------------------
def test_the_pytest_example_passes_offline(pytester: pytest.Pytester) -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "test_with_pytest.py"
    pytester.makeini(INI)
    pytester.makepyfile(test_pp_with_pytest=example.read_text())
    result = run(pytester, "--scenario-report=report.json")
    no_internal_error(result)
    result.assert_outcomes(passed=5)
    assert report(pytester)["total"]["runs"] == 9


# -- attribution (the engine's hook) -----------------------------------------------------------------
@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["run", "arun"])
async def test_results_are_attributed_to_the_current_collector(configured: Any, executor: str) -> None:
    class Echo(scenario.AgentAdapter):
        async def call(self, input: scenario.AgentInput) -> str:
            return "echo"

    test_level = ResultCollector()
    run_level = ResultCollector(parent=test_level)
    with collecting(run_level):
        result = await getattr(scenario, executor)(
            name="attributed", description="d", agents=[Echo()], script=[scenario.user("hi"), scenario.agent(), scenario.succeed()]
        )
    assert run_level.results == [result] and test_level.results == [result]
    await getattr(scenario, executor)(
        name="outside", description="d", agents=[Echo()], script=[scenario.user("hi"), scenario.succeed()]
    )
    assert len(test_level.results) == 1  # nothing is collected outside the block

