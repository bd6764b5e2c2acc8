"""Tracebacks are kept: result.error, run records, the store, JSON/HTML/JUnit reports, pytest output.

The agent here raises ``KeyError: 'choices'`` two calls deep, wrapped in a ``raise ... from``:
every place that shows the failure must show the user's frames (``parse``, ``call``) and the
chain, with the library's plumbing folded to one line.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

import scenario
from scenario.batch import Scenario, run_batch
from scenario.reports import render, report_from_store
from scenario.store import ResultStore
from scenario.tracebacks import format_exception, is_library_frame

pytest_plugins = ["pytester"]


class Broken(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return self.parse({"data": []})

    def parse(self, payload: dict) -> str:
        try:
            return payload["choices"][0]
        except KeyError as exc:
            raise RuntimeError("the backend answered without choices") from exc


SCRIPT = [scenario.user("hi"), scenario.agent(), scenario.succeed()]


def assert_readable_traceback(text: str) -> None:
    assert 'return payload["choices"][0]' in text  # the frame that raised
    assert "return self.parse(" in text  # the caller in the user's code
    assert "KeyError: 'choices'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    cause = text.index("The above exception was the direct cause")
    assert text.index("RuntimeError: the backend answered without choices", cause) > cause
    assert "library frame" in text and "folded: " in text  # the engine's frames, folded
    assert "scenario/engine.py\", line" not in text  # ...not printed one by one


@pytest.mark.asyncio
@pytest.mark.parametrize("door", ["run", "arun"])
async def test_result_error_keeps_the_traceback_and_names_the_user_frame(door: str) -> None:
    result = await getattr(scenario, door)(name="broken", description="d", agents=[Broken()], script=SCRIPT)
    assert not result.success and result.error is not None
    assert result.error.type == "RuntimeError" and result.error.where == "step 2 (agent), agent adapter Broken"
    assert_readable_traceback(result.error.traceback)
    assert "(test_tracebacks.py:" in result.reasoning and "in parse)" in result.reasoning


def test_unfolded_and_all_library_tracebacks_are_shown_whole() -> None:
    try:
        Broken().parse({})
    except RuntimeError as exc:
        full = format_exception(exc, fold=False)
    assert "library frame" not in full and "KeyError: 'choices'" in full
    assert is_library_frame(scenario.__file__) and not is_library_frame(__file__)


@pytest.mark.asyncio
async def test_records_the_store_and_every_report_carry_the_traceback(tmp_path) -> None:
    path = tmp_path / "r.db"
    specs = [Scenario(name="broken", description="d", agents=[Broken], script=SCRIPT)]
    result = await run_batch(specs, suite="shop", store=path)
    [record] = result.runs
    assert record.status == "error"
    assert_readable_traceback(record.error_traceback)
    with ResultStore(path, readonly=True) as store:
        [stored] = store.records()
        report = report_from_store(store)
    assert stored.error_traceback == record.error_traceback

    data = json.loads(render(report, "json"))
    assert_readable_traceback(data["suites"][0]["runs"][0]["error_traceback"])

    html = render(report, "html")
    assert '<details class="traceback"><summary>Traceback</summary>' in html  # collapsed
    assert "KeyError: &#x27;choices&#x27;" in html or "KeyError: &#39;choices&#39;" in html

    junit = ET.fromstring(render(report, "junit").encode())
    [failure] = junit.iter("error")
    assert_readable_traceback(failure.text)
    assert "broken run 1 errored" in failure.text and "user: hi" in failure.text


def test_junit_failure_text_has_failed_criteria_with_reasoning_and_last_turns(tmp_path) -> None:
    from scenario.records import RunRecord, run_id
    from scenario.reports import report_from_records
    from scenario.types import CriterionResult, ScenarioResult

    messages = [{"role": "user", "content": f"question {i}"} if i % 2 == 0 else
                {"role": "assistant", "content": f"answer {i}"} for i in range(10)]
    result = ScenarioResult(success=False, reasoning="The agent never offered a refund.", messages=messages,
                            criteria=[CriterionResult(requirement="Offers a refund", status="failed",
                                                      reasoning="It only apologised, in every turn.")])
    record = RunRecord(id=run_id("s", "refund", "default", 0), suite="s", scenario="refund", status="failed",
                       result=result)
    junit = ET.fromstring(render(report_from_records([record]), "junit").encode())
    [failure] = junit.iter("failure")
    text = failure.text
    assert "FAILED: Offers a refund" in text and "judge: It only apologised, in every turn." in text
    assert "Last 6 of 10 messages:" in text and "agent: answer 9" in text and "question 0" not in text


INNER_TEST = """
import asyncio

import scenario


class Broken(scenario.AgentAdapter):
    async def call(self, input):
        return self.parse({})

    def parse(self, payload):
        try:
            return payload["choices"][0]
        except KeyError as exc:
            raise RuntimeError("the backend answered without choices") from exc


def test_broken_agent():
    result = asyncio.run(scenario.run(name="broken", description="d", agents=[Broken()],
                                      script=[scenario.user("hi"), scenario.agent(), scenario.succeed()]))
    assert result.success, result.reasoning


def test_failed_criterion():
    result = asyncio.run(scenario.run(name="judged", description="d", agents=[Broken()],
                                      script=[scenario.user("hi"), scenario.fail("The agent never greeted the user.")]))
    assert result.success, result.reasoning
"""


def test_a_failing_pytest_test_shows_why_in_its_output_and_junit_xml(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TEST)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml")
    outcome.assert_outcomes(failed=2)
    text = outcome.stdout.str()
    assert "scenario: why the run(s) failed" in text
    assert 'return payload["choices"][0]' in text and "KeyError: 'choices'" in text
    assert "Verdict: The agent never greeted the user." in text and "user: hi" in text
    xml = ET.parse(pytester.path / "junit.xml").getroot()
    failures = {case.get("name"): case.find("failure").text for case in xml.iter("testcase")}
    assert 'return payload["choices"][0]' in failures["test_broken_agent"]
    assert "The agent never greeted the user." in failures["test_failed_criterion"]
