"""Reports: JSON for tools, JUnit XML for CI, one self-contained HTML file for people."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from scenario.records import RunRecord, run_id
from scenario.reports import render, report_from_records, report_from_store, summarize, write_report
from scenario.rollup import percentile
from scenario.store import ResultStore
from scenario.types import CriterionResult, ScenarioResult, Usage

EVIL = "<script>alert('x')</script> & \"quotes\""


def record(scenario: str, variant: str, index: int, status: str, *, suite: str = "shop", duration: float = 1.0) -> RunRecord:
    usage = Usage()
    usage.record(role="judge", model="openai/gpt-4o-mini", input_tokens=1000, output_tokens=500, cost_usd=0.00045)
    criteria = [
        CriterionResult(requirement="The agent offers a refund", status="passed", reasoning="It did, in turn 2."),
        CriterionResult(requirement=f"Never says {EVIL}", status="failed" if status == "failed" else "passed",
                        reasoning=f"Quoted {EVIL}"),
    ]
    result = ScenarioResult(
        success=status == "passed",
        reasoning=f"verdict for {scenario} {variant} {index}",
        messages=[
            {"role": "user", "content": f"I want a refund {EVIL}"},
            {"role": "assistant", "content": "Sure, refund started.",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "refund", "arguments": "{\"id\": 7}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\": true}"},
        ],
        criteria=criteria,
        usage=usage,
    ) if status != "error" else None
    return RunRecord(
        id=run_id(suite, scenario, variant, index), suite=suite, scenario=scenario, variant=variant, index=index,
        status=status, result=result, attempts=3 if status == "error" else 1, started_at=1_700_000_000.0 + index,
        duration=duration, usage=usage if result is not None else Usage(),
        error_type="RateLimitError" if status == "error" else None,
        error_message="429 Too Many Requests" if status == "error" else None,
    )


def sample() -> list[RunRecord]:
    runs = []
    for i in range(4):  # refund/base: 3 of 4 pass
        runs.append(record("refund", "base", i, "failed" if i == 2 else "passed", duration=1.0 + i))
    for i in range(4):  # refund/new: all pass
        runs.append(record("refund", "new", i, "passed", duration=0.5))
    for i in range(2):  # outage/base: all errored
        runs.append(record("outage", "base", i, "error", duration=0.1))
    return runs


INFO = {"shop": {"description": "Shop bot", "thresholds": {"refund": 0.75, "outage": 0.5},
                 "scenario_order": ["refund", "outage"],
                 "scenarios": [{"name": "refund", "description": "Wants a refund", "criteria": ["offers refund"]}]}}


def test_summary_groups_and_thresholds():
    report = report_from_records(sample(), suite_info=INFO)
    groups = {(g.scenario, g.variant): g for g in report.groups}
    base, new, outage = groups[("refund", "base")], groups[("refund", "new")], groups[("outage", "base")]
    assert (base.runs, base.passed, base.failed, base.errors, base.pass_rate, base.met) == (4, 3, 1, 0, 0.75, True)
    assert new.met and new.pass_rate == 1.0
    assert (outage.errors, outage.met, outage.retries) == (2, False, 4)
    assert base.latency_p50 == 2.5 and base.latency_p95 == pytest.approx(3.85)
    assert [g.scenario for g in report.groups] == ["refund", "refund", "outage"]  # suite order
    assert report.passed is False
    totals = report.totals()
    assert totals["runs"] == 10 and totals["passed"] == 7 and totals["errors"] == 2
    assert totals["cost_usd"] == pytest.approx(8 * 0.00045)


def test_default_threshold_is_every_run_passes():
    [group] = summarize([record("a", "default", 0, "passed"), record("a", "default", 1, "failed")])
    assert group.threshold == 1.0 and not group.met


def test_percentile():
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_json_report():
    data = json.loads(render(report_from_records(sample(), suite_info=INFO, source="r.db"), "json"))
    assert data["format"] == "scenario-report" and data["version"] == 1 and data["source"] == "r.db"
    assert data["passed"] is False
    [suite] = data["suites"]
    assert suite["name"] == "shop" and suite["runs_total"] == 10 and suite["runs_passed"] == 7
    groups = {(g["scenario"], g["variant"]): g for g in suite["groups"]}
    assert groups[("refund", "base")]["threshold"] == 0.75 and groups[("refund", "base")]["met"] is True
    assert groups[("outage", "base")]["met"] is False
    assert len(suite["runs"]) == 10
    first = suite["runs"][0]
    assert first["result"]["messages"][0]["content"].endswith(EVIL)
    assert first["result"]["criteria"][1]["reasoning"] == f"Quoted {EVIL}"
    errored = [r for r in suite["runs"] if r["status"] == "error"][0]
    assert errored["error_type"] == "RateLimitError" and errored["attempts"] == 3


def test_junit_report():
    xml = render(report_from_records(sample(), suite_info=INFO), "junit")
    root = ET.fromstring(xml.encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "0", "1")
    [suite] = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"refund [base]", "refund [new]", "outage [base]"}
    base = cases["refund [base]"]
    assert base.find("failure") is None  # 75% met the 75% threshold
    assert "run 3: failed" in base.find("system-out").text
    props = {p.get("name"): p.get("value") for p in base.find("properties")}
    assert props["pass_rate"] == "0.7500" and props["threshold"] == "0.75"
    error = cases["outage [base]"].find("error")
    assert error is not None and "pass rate 0% (0/2) is below the threshold 50%" in error.get("message")
    assert "RateLimitError: 429 Too Many Requests" in error.text


def test_junit_failure_when_threshold_missed():
    runs = [record("a", "default", 0, "passed"), record("a", "default", 1, "failed")]
    root = ET.fromstring(render(report_from_records(runs), "junit").encode())
    [case] = root.iter("testcase")
    assert case.get("name") == "a"  # the default variant is not spelled out
    failure = case.find("failure")
    assert failure is not None and "pass rate 50% (1/2) is below the threshold 100%" in failure.get("message")


def test_html_report_is_self_contained_and_escaped():
    html = render(report_from_records(sample(), suite_info=INFO, source="r.db"), "html")
    assert html.startswith("<!DOCTYPE html>")
    # Nothing loaded from anywhere: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html.replace("&lt;script&gt;", "")
    assert "<link" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    # The summary table, one pass-rate bar per (scenario, variant), cost and latency figures.
    assert html.count('class="bar"') == 3
    assert html.count("<svg") == 3
    assert "total cost" in html and "run latency p95" in html
    # Every transcript, with verdict and per-criterion reasoning.
    assert html.count('<details class="run"') == 10
    assert html.count("Sure, refund started.") == 8
    # Tool calls are shown with their name and their arguments as indented JSON, results beside them.
    assert html.count('data-tool="refund"') == 8 and "&#34;id&#34;: 7" in html
    assert "tool result &middot; refund" in html and "&#34;ok&#34;: true" in html
    assert "It did, in turn 2." in html
    assert "RateLimitError: 429 Too Many Requests" in html
    assert 'data-status="failed" open' in html  # what did not pass starts expanded


def test_empty_report_renders():
    for fmt in ("html", "json", "junit"):
        assert render(report_from_records([]), fmt)


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render(report_from_records([]), "pdf")


def _in_batch(records, batch_id):
    for item in records:
        item.batch_id = batch_id
    return records


def test_write_report_and_report_from_store(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        old = store.start_batch("shop", info=INFO["shop"])
        store.put_many(_in_batch([record("refund", "base", 0, "failed")], old.id))
        shop = store.start_batch("shop", info=INFO["shop"])
        second = store.start_batch("second")
        store.put_many(_in_batch(sample(), shop.id)
                       + _in_batch([record("other", "default", 0, "passed", suite="second")], second.id))
        report = report_from_store(store)
        assert [s.name for s in report.suites] == ["second", "shop"]
        only = report_from_store(store, "shop")  # the latest batch of the suite, not its history
        earlier = report_from_store(store, batch_id=old.id)
    assert [g.threshold for g in only.groups] == [0.75, 0.75, 0.5]
    assert len(only.records) == len(sample()) and {r.batch_id for r in only.records} == {shop.id}
    assert [(r.scenario, r.status) for r in earlier.records] == [("refund", "failed")]
    path = write_report(only, "json", tmp_path / "nested" / "out.json")
    assert json.loads(path.read_text())["suites"][0]["name"] == "shop"
    assert not list((tmp_path / "nested").glob(".*partial"))


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    html_path = write_report(report_from_records(sample(), suite_info=INFO, source="r.db"), "html", tmp_path / "report.html")
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert 'id="verdict"' in rendered and "FAILED" in rendered
    assert rendered.count("<rect") >= 6 and rendered.count("<tr>") >= 3
    assert "<script>alert" not in rendered  # escaped text stayed text in the live DOM
    shot = tmp_path / "shot.png"
    result = subprocess.run(base + ["--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}",
                                    html_path.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real page, not a blank one


def test_a_zero_threshold_scenario_is_tracked_not_shown_as_met():
    records = [record("known gap", "default", i, "failed") for i in range(3)]
    report = report_from_records(records, suite_info={"shop": {"thresholds": {"known gap": 0.0}}})
    [group] = report.groups
    assert group.met and group.verdict == "tracked" and group.as_dict()["verdict"] == "tracked"
    html = render(report, "html")
    assert 'class="badge tracked"' in html and "tracked (0% needed)" in html
    assert 'class="badge met"' not in html
