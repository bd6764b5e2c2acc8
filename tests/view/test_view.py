"""scenario view (served in-process) and scenario compare: pages, 404s, escaping, the CLI."""

from __future__ import annotations

import re
import sqlite3
import warnings

import pytest

pytest.importorskip("starlette", reason="the viewer needs the 'view' extra (in the dev extra)")

from scenario.cli.main import main  # noqa: E402
from scenario.reports.compare import compare, format_comparison  # noqa: E402
from scenario.reports.stats import fisher_exact, wilson_interval  # noqa: E402
from scenario.store import ResultStore  # noqa: E402
from tests.helpers.view_data import LONG, SUITE, XSS_IMG, XSS_SCRIPT, fill_store, outage_run_id, refund_run_id  # noqa: E402


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "results.db"
    fill_store(path, batches=2)
    return path


@pytest.fixture
def client(store_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about its httpx-based test client
        from starlette.testclient import TestClient

    from scenario.view import create_app

    with TestClient(create_app(store_path), base_url="http://127.0.0.1") as test_client:
        yield test_client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- statistics -------------------------------------------------------------------------------

def test_fisher_exact_matches_known_values():
    assert fisher_exact(10, 10, 3, 10) == pytest.approx(0.003096, abs=1e-6)
    assert fisher_exact(3, 3, 0, 3) == pytest.approx(0.1)
    assert fisher_exact(5, 10, 5, 10) == pytest.approx(1.0)
    assert fisher_exact(0, 0, 3, 5) == 1.0
    with pytest.raises(ValueError, match="within the runs"):
        fisher_exact(4, 3, 0, 3)


def test_wilson_interval_is_sensible_at_the_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_compare_separates_regressions_from_noise(store_path):
    with ResultStore(store_path, readonly=True) as store:
        before, after = store.outcomes(batch_id="b1-shop"), store.outcomes(batch_id="b2-shop")
    result = compare(before, after, base_id="b1", head_id="b2", thresholds={"refund": 0.75, "outage": 0.5})
    kinds = {p.scenario: p.kind for p in result.pairs}
    assert kinds == {"refund": "regressed", "greeting": "unchanged", "outage": "within chance"}
    refund = next(p for p in result.pairs if p.scenario == "refund")
    assert refund.flip == "broke" and refund.p_value < 0.001
    outage = next(p for p in result.pairs if p.scenario == "outage")
    assert outage.flip == "broke" and "within chance" in outage.statement  # 2 runs: a flip, not proof
    assert result.regressed
    text = format_comparison(result)
    assert "REGRESSED beyond chance: refund" in text and "Fisher's exact test" in text


def test_a_flip_within_chance_is_not_a_regression():
    from types import SimpleNamespace as Run

    before = [Run(suite="s", scenario="a", variant="default", status="passed", duration=1.0, attempts=1, cost_usd=0)
              for _ in range(3)]
    after = [Run(suite="s", scenario="a", variant="default", status=s, duration=1.0, attempts=1, cost_usd=0)
             for s in ("passed", "passed", "failed")]
    result = compare(before, after)
    [pair] = result.pairs
    assert pair.flip == "broke" and pair.kind == "within chance" and not result.regressed
    assert "verdict flip" in result.headline


# -- pages ------------------------------------------------------------------------------------

def test_batches_page_lists_every_batch_newest_first(client):
    page = client.get("/")
    assert page.status_code == 200
    rows = re.findall(r'<tr data-batch="([^"]+)" data-status="([^"]+)"', page.text)
    assert rows == [("b2-shop", "finished"), ("b1-shop", "finished")]
    text = _text(page.text)
    assert "2 missed" in text and "all met" in text  # thresholds met per batch
    assert client.get("/?suite=shop").status_code == 200
    missing = client.get("/?suite=nope")
    assert missing.status_code == 404 and "suite &#39;nope&#39;" in missing.text


def test_batch_page_has_groups_with_intervals_and_links_to_every_run(client):
    page = client.get("/batch/b2-shop")
    assert page.status_code == 200
    groups = re.findall(r'data-scenario="([^"]+)" data-variant="default" data-met="(yes|no)"', page.text)
    assert groups == [("refund", "no"), ("greeting", "yes"), ("outage", "no")]
    assert "95% interval" in page.text and "6–51%" in page.text  # Wilson interval of 2/10
    links = re.findall(r'class="run-link" href="(/batch/b2-shop/run/[0-9a-f]+)"', page.text)
    assert len(links) == 22
    assert "The agent never offered a refund." in page.text  # each failing run's verdict, inline
    assert 'href="/compare?base=b1-shop&amp;head=b2-shop"' in page.text


def test_failures_switch_hides_passing_runs(client):
    page = client.get("/batch/b2-shop?failures=1")
    statuses = re.findall(r'<tr data-status="([a-z]+)"><td class="num"><a class="run-link"', page.text)
    assert sorted(set(statuses)) == ["error", "failed"] and len(statuses) == 10
    assert 'data-scenario="greeting"' not in page.text
    clean = client.get("/batch/b1-shop?failures=1")
    assert "No failures in this batch." in clean.text


def test_run_page_shows_transcript_verdict_calls_and_traceback(client):
    page = client.get(f"/batch/b2-shop/run/{refund_run_id(3)}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'class="msg user" data-role="user"><span class="role">user</span>I want a refund for order 3', html)
    assert 'data-tool="lookup_order"' in html and "tool result &middot; lookup_order" in html
    assert "&#34;status&#34;: &#34;delivered&#34;" in html  # the tool result, as indented JSON
    assert 'class="crit-failed">failed' in html and "It said it would look, then stopped." in html
    calls = re.findall(r"<tr><td class=num>(\d)</td><td>(user|judge)</td>", html)
    assert calls == [("1", "user"), ("2", "judge")]
    assert "1&times; rate-limited (waited 1.50s)" in html
    errored = client.get(f"/batch/b2-shop/run/{outage_run_id(1)}").text
    assert "Error at agent adapter Broken: KeyError: &#39;choices&#39;" in errored
    assert '<details class="traceback" open>' in errored and "my_agent.py&#34;, line 12" in errored
    assert errored.count('<span class="badge error">error</span>') >= 2  # the attempt history


def test_untrusted_text_is_escaped_everywhere(client):
    for url in ("/", "/batch/b2-shop", f"/batch/b2-shop/run/{refund_run_id(0)}", f"/batch/b2-shop/run/{outage_run_id(0)}",
                "/compare"):
        html = client.get(url).text
        assert XSS_SCRIPT not in html and XSS_IMG not in html, url
        assert "onerror=" not in html.replace("onerror=&#34;", "")  # only as escaped text
        # The only script is the live-update file served by the viewer itself.
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/live.js" defer>']
    run = client.get(f"/batch/b2-shop/run/{refund_run_id(0)}")
    assert "&lt;script&gt;window.__xss = &#39;script&#39;&lt;/script&gt;" in run.text
    assert "&lt;iframe src=\\&#34;javascript:" in run.text  # HTML in tool arguments stays text
    assert LONG in run.text  # a 120,000-character message is shown whole
    assert run.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")


def test_unknown_ids_get_a_404_page_with_a_link_back(client):
    for url, what in (("/batch/nope", "batch &#39;nope&#39;"),
                      (f"/batch/b2-shop/run/{'0' * 24}", f"run &#39;{'0' * 24}&#39;"),
                      ("/batch/nope/run/x", "run &#39;x&#39;"),
                      ("/compare?base=nope", "batch &#39;nope&#39;"),
                      ("/no/such/page", "page")):
        page = client.get(url)
        assert page.status_code == 404, url
        assert what in page.text and '<a href="/" id="back">' in page.text


def test_ids_in_urls_are_escaped(client):
    page = client.get("/batch/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert page.status_code == 404 and "<script>alert(1)" not in page.text


def test_requests_for_another_host_are_refused(client):
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400


def test_compare_page_defaults_to_the_latest_two_batches(client):
    page = client.get("/compare")
    assert page.status_code == 200
    assert 'name="base" value="b1-shop"' in page.text and 'name="head" value="b2-shop"' in page.text
    assert re.search(r'data-scenario="refund" data-kind="regressed" data-flip="broke"', page.text)
    assert "REGRESSED beyond chance: refund" in page.text
    assert "larger than chance (p = " in page.text


def test_live_transcript_of_a_running_run(client, store_path):
    with ResultStore(store_path) as store:
        batch = store.start_batch(SUITE, planned=1, info={}, batch_id="b3-live")
        store.put_live(batch.id, "r1", suite=SUITE, scenario="refund", variant="default", index=0, turn=1,
                       messages=[{"role": "user", "content": "first " + XSS_SCRIPT}])
        page = client.get("/batch/b3-live")
        assert 'data-live="1"' in page.text and 'href="/batch/b3-live/live/r1"' in page.text
        stamp = client.get("/api/stamp").json()["stamp"]
        store.put_live(batch.id, "r1", suite=SUITE, scenario="refund", variant="default", index=0, turn=2,
                       messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"}])
        assert client.get("/api/stamp").json()["stamp"] != stamp  # what the page's script polls
        live = client.get("/batch/b3-live/live/r1")
        assert live.status_code == 200 and "second" in live.text and "Turn 2, 2 messages so far" in live.text
        assert client.get("/batch/b3-live/run/r1").text == live.text  # a run page before the record exists
        store.drop_live(batch.id, "r1")
        store.finish_batch(batch.id)
    assert client.get("/batch/b3-live/live/r1").status_code == 404
    assert 'data-live="1"' not in client.get("/batch/b3-live").text


def test_the_viewer_reads_while_a_batch_writes(store_path, client):
    with ResultStore(store_path) as writer:
        batch = writer.start_batch(SUITE, planned=5, info={}, batch_id="b4-busy")
        for index in range(5):
            from tests.helpers.view_data import make_record

            writer.put(make_record("greeting", index, "passed", batch_id=batch.id))
            page = client.get("/batch/b4-busy")
            assert page.status_code == 200 and page.text.count('class="run-link"') == index + 1


def test_the_viewer_never_writes_to_the_store(store_path, client):
    before = store_path.read_bytes()
    for url in ("/", "/batch/b1-shop", "/compare", "/api/stamp"):
        client.get(url)
    assert store_path.read_bytes() == before


# -- the commands -----------------------------------------------------------------------------

def test_scenario_compare_exits_1_on_a_regression_beyond_chance(store_path, capsys):
    assert main(["compare", "--store", str(store_path)]) == 1
    out = capsys.readouterr().out
    assert "Comparing batch b1-shop (before) with b2-shop (after)" in out
    assert "REGRESSED beyond chance: refund" in out
    assert main(["compare", "b1-shop", "b1-shop", "--store", str(store_path)]) == 0
    assert "No regression beyond chance" in capsys.readouterr().out


def test_scenario_compare_bad_input(store_path, tmp_path, capsys):
    assert main(["compare", "b1-shop", "nope", "--store", str(store_path)]) == 2
    assert "has no batch 'nope'" in capsys.readouterr().err
    assert main(["compare", "--store", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["compare", "--store", str(store_path), "--suite", "other"]) == 2
    assert "suite 'other' is not in" in capsys.readouterr().err
    assert main(["compare", "--store", str(store_path), "--alpha", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    single = tmp_path / "single.db"
    fill_store(single, batches=1)
    assert main(["compare", "--store", str(single)]) == 2
    assert "needs two batches" in capsys.readouterr().err


def test_scenario_view_bad_store_is_a_clear_message(tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing.db"), "--no-browser"]) == 2
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    assert main(["view", str(junk), "--no-browser"]) == 2
    assert "not a scenario result store" in capsys.readouterr().err
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["view", str(other), "--no-browser"]) == 2
    assert "not a scenario result store" in capsys.readouterr().err


def test_scenario_view_names_the_extra_when_missing(store_path, capsys, monkeypatch):
    import scenario.view as view

    monkeypatch.setattr(view, "missing_extra", lambda: "uvicorn")
    assert main(["view", str(store_path), "--no-browser"]) == 2
    assert "pip install 'scenario[view]'" in capsys.readouterr().err


def test_scenario_view_busy_port_is_a_clear_message(store_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["view", str(store_path), "--no-browser", "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_the_python_snippet_in_docs_view_runs(store_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "view.md").read_text()
    [snippet] = re.findall(r"```python\n(.*?)```", doc, re.S)
    namespace: dict = {}
    exec(compile(snippet, "docs/view.md", "exec"), namespace)
    result = namespace["latest_two"](str(store_path), SUITE)
    assert result.regressed and [p.scenario for p in result.regressions] == ["refund"]


def test_the_view_example_runs_offline(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "examples" / "view_history.py"), str(tmp_path / "ex.db")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**__import__("os").environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REGRESSED beyond chance: refund" in done.stdout and "scenario view" in done.stdout
    with ResultStore(tmp_path / "ex.db", readonly=True) as store:
        assert [b.passed for b in store.batches("shop")] == [6, 12]


def test_scenario_view_serves_until_ctrl_c(store_path):
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "scenario.cli", "view", str(store_path), "--no-browser",
                                "--port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)", line)
        assert found, line
        with urllib.request.urlopen(found.group(1), timeout=30) as response:
            assert response.status == 200 and b"b2-shop" in response.read()
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
    assert process.returncode == 0 and "scenario view: stopped." in rest and "Traceback" not in rest


def test_a_host_other_than_loopback_warns(store_path, monkeypatch, capsys):
    from scenario.view import server

    monkeypatch.setattr(server, "bind", lambda host, port: (_ for _ in ()).throw(server.ViewError("stop here")))
    assert main(["view", str(store_path), "--no-browser", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "WARNING: serving on 0.0.0.0, reachable from other machines" in err and "stop here" in err


def test_the_demo_keeps_its_runs_for_scenario_view(tmp_path, capsys):
    import scenario.demo

    path = tmp_path / "demo.db"
    report = tmp_path / "demo-report.html"  # not the default .scenario/ of the working directory
    assert scenario.demo.main(["--mock", "--latency", "0", "--store", str(path), "--report", str(report)]) == 0
    assert report.exists()
    assert f"(browse them: scenario view {path})" in capsys.readouterr().out
    with ResultStore(path, readonly=True) as store:
        [batch] = store.batches("demo")
        # The demo runs its suite under run and under arun (two variants): one expected failure each.
        assert batch.status == "finished" and batch.failed == 2 and batch.passed == batch.finished - 2
        failing = [o for o in store.outcomes(batch_id=batch.id) if o.status == "failed"][0]
        record = store.record(batch.id, failing.id)
    assert record.result.messages and record.result.criteria  # the transcript and the judge's reasoning
