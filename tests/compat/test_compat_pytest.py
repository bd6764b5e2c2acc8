"""langwatch-scenario's pytest surface: agent_test marker, --headless/--scenario-debug, flaky reruns."""

from __future__ import annotations

import pytest

from tests.pytest_plugin.test_pytest_plugin import no_internal_error, report, rows_by_test, run, suite  # noqa: F401  (fixtures)

pytest_plugins = ["pytester"]


def _warnings(result: pytest.RunResult) -> dict:
    # Third-party deprecation warnings vary by version; they are not what these tests check.
    count = result.parseoutcomes().get("warnings")
    return {"warnings": count} if count else {}


def test_agent_test_marker_and_peer_options_are_registered_and_harmless(suite: pytest.Pytester) -> None:  # noqa: F811
    suite.makepyfile(
        test_peer_style="""
        import pytest
        import scenario
        from scenario_helpers import agents

        @pytest.mark.agent_test
        @pytest.mark.asyncio
        async def test_weather():
            result = await scenario.run(name="weather", description="User asks for the weather.", agents=agents())
            assert result.success, result.reasoning
        """
    )
    result = run(suite, "--strict-markers", "--headless", "--scenario-debug", "-s")
    no_internal_error(result)
    result.assert_outcomes(passed=1)
    # --scenario-debug prints the conversation as it happens
    assert "[weather] assistant: echo:" in result.stdout.str()


def test_flaky_reruns_work_and_show_in_the_summary(suite: pytest.Pytester) -> None:  # noqa: F811
    suite.makepyfile(
        test_flaky_peer="""
        import itertools
        import pytest
        import scenario
        from scenario_helpers import agents

        attempts = itertools.count(1)

        @pytest.mark.agent_test
        @pytest.mark.flaky(reruns=3)
        @pytest.mark.asyncio
        async def test_passes_on_third_attempt():
            attempt = next(attempts)
            criteria = "The agent answers" if attempt >= 3 else "The agent answers [mock:fail]"
            result = await scenario.run(name="flaky", description="A question.", agents=agents(criteria))
            assert result.success, result.reasoning

        @pytest.mark.asyncio
        async def test_steady():
            result = await scenario.run(name="steady", description="A question.", agents=agents())
            assert result.success
        """
    )
    result = run(suite, "--scenario-report=report.json")
    no_internal_error(result)
    assert result.parseoutcomes() == {"passed": 2, "rerun": 2, **_warnings(result)}
    rows = rows_by_test(report(suite))
    assert rows["test_passes_on_third_attempt"]["reruns"] == 2
    assert rows["test_passes_on_third_attempt"]["outcome"] == "passed"
    assert rows["test_steady"]["reruns"] == 0
    assert report(suite)["total"]["reruns"] == 2
    assert len(rows) == 2, "a rerun attempt is not a row of its own"
    text = result.stdout.str()
    assert "test_passes_on_third_attempt  (after 2 reruns)" in text
    assert "2 rerun(s) of failed attempts" in text


def test_reruns_that_never_pass_still_fail_and_count(suite: pytest.Pytester) -> None:  # noqa: F811
    suite.makepyfile(
        test_always_fails="""
        import pytest
        import scenario
        from scenario_helpers import agents

        @pytest.mark.flaky(reruns=1)
        @pytest.mark.asyncio
        async def test_never():
            result = await scenario.run(name="never", description="A question.", agents=agents("x [mock:fail]"))
            assert result.success, result.reasoning
        """
    )
    result = run(suite, "--scenario-report=report.json")
    assert result.parseoutcomes() == {"failed": 1, "rerun": 1, **_warnings(result)}
    row = rows_by_test(report(suite))["test_never"]
    assert (row["outcome"], row["reruns"]) == ("failed", 1)
    assert "FAILED  (after 1 rerun)" in result.stdout.str()
