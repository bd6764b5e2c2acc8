"""scenario view in a real browser: Playwright driving Debian's chromium (no browser download).

Stores are filled by real batches on the mock model (``run_batch(store=...)``), plus one with
hostile text (tests/helpers/view_data.py). The viewer runs as the real command in a subprocess. These
tests also take the screenshots in docs/view.md: set SCENARIO_UPDATE_SCREENSHOTS=1 to write
them to docs/images/ (otherwise they go to a temporary folder and are only checked).

Kept few and tolerant of a slow machine: every wait is for something to appear on the page
(with a generous timeout), never a fixed sleep or a timing assertion.
"""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import scenario
from scenario.testing import MockBehavior, MockLLMServer
from tests.helpers.agents import EchoAgent
from tests.helpers.view_data import XSS_SCRIPT, fill_store, refund_run_id

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: `make test` installs it (apt-get install chromium)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; `make test` does it)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "images" if os.environ.get("SCENARIO_UPDATE_SCREENSHOTS") else None
WAIT_MS = 60_000


# -- helpers ----------------------------------------------------------------------------------

class Viewer:
    """``scenario view STORE --no-browser --port 0`` in a subprocess, stopped with Ctrl-C."""

    def __init__(self, store: Path):
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scenario.cli", "view", str(store), "--no-browser", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        self.output = ""
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if selector.select(timeout=1):
                line = self.process.stdout.readline()
                self.output += line
                found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
                if found:
                    return found.group(1)
                if not line and self.process.poll() is not None:
                    break
        self.process.kill()
        raise AssertionError(f"scenario view did not start:\n{self.output}")

    def stop(self) -> int:
        """Ctrl-C, as a terminal sends it; returns the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            rest, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("scenario view did not stop within 30 s of Ctrl-C")
        self.output += rest
        return self.process.returncode


def run_shop_batch(store: Path, *, failing: tuple = (), latency: float = 0.0, runs: int = 5,
                   judge_turns: int = 2, max_turns: int = 4) -> None:
    """One real batch of the shop suite on the mock model, recorded in ``store``."""
    behavior = MockBehavior(judge_turns=judge_turns, failing_criteria=list(failing))
    with MockLLMServer(latency=latency, behavior=behavior) as server:
        model = scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=30)
        scenarios = [
            scenario.Scenario(
                name=name, description=f"A customer: {name}.", max_turns=max_turns, runs=runs,
                agents=[EchoAgent, scenario.UserSimulatorAgent(model=model.model, api_base=model.api_base,
                                                               api_key="mock"),
                        scenario.JudgeAgent(criteria=[criterion], model=model.model, api_base=model.api_base,
                                            api_key="mock")],
            )
            for name, criterion in (("refund", "The agent offers a refund"), ("greeting", "The agent greets"))
        ]
        asyncio.run(scenario.run_batch(scenarios, suite="shop", store=str(store), max_concurrency=2,
                                       executor="loop"))


def shot(page, name: str, tmp_path: Path) -> None:
    target = (SHOTS or tmp_path) / f"view-{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=False)
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name  # a rendered page, not a blank one


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                            "--disable-dev-shm-usage"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    # bypass_csp: the page's Content-Security-Policy would block the test's own probes; it also means
    # the XSS test proves escaping alone keeps hostile text inert (the CSP is a second wall).
    context = browser.new_context(viewport={"width": 1200, "height": 820}, bypass_csp=True)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()


SUITE_YAML = """
name: shop
description: A support bot for an online shop.
agent: support_agent:make_agent
defaults: {{runs: 5, max_turns: 4, max_concurrency: 4}}
scenarios:
  - name: refund
    description: A customer's mug arrived broken and they want their money back.
    criteria: ["The agent offers a refund{marker}"]
  - name: late parcel
    description: A customer's parcel is late.
    criteria: [The agent responds to the customer's concern]
"""

PYTEST_CONFTEST = """
import pytest, scenario
from scenario.testing import MockLLMServer

@pytest.fixture(scope="session", autouse=True)
def _mock_model():
    with MockLLMServer() as server:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=30))
        yield
"""

PYTEST_TESTS = """
import pytest, scenario
from support_agent import make_agent

@pytest.mark.scenario(runs=3, min_pass_rate=0.6)
async def test_refund():
    result = await scenario.run(name="refund", description="A broken mug; wants a refund.",
                                agents=[make_agent(), scenario.UserSimulatorAgent(),
                                        scenario.JudgeAgent(criteria=["The agent offers a refund"])])
    assert result.success
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return done


@pytest.fixture(scope="module")
def history_store(tmp_path_factory):
    """Two real `scenario run --mock` batches of one suite (the second with the refund criterion
    failing on the mock judge: a seeded regression) and one real pytest session, in one store."""
    work = tmp_path_factory.mktemp("view-history")
    shutil.copy(ROOT / "examples" / "support_agent.py", work / "support_agent.py")
    (work / ".gitignore").write_text("results.db*\n__pycache__/\n")
    (work / "suite.yaml").write_text(SUITE_YAML.format(marker=""))
    for git in (["init", "-q", "-b", "main"], ["add", "-A"],  # batches record the suite's commit and branch
                ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "shop suite"]):
        subprocess.run(["git", *git], cwd=work, check=True, capture_output=True, timeout=60)
    path = work / "results.db"
    for marker in ("", " [mock:fail]"):
        (work / "suite.yaml").write_text(SUITE_YAML.format(marker=marker))
        done = _cli("-m", "scenario.cli", "run", "suite.yaml", "--mock", "--store", str(path), "--progress", "off",
                    cwd=work)
        assert done.returncode == (0 if not marker else 1), done.stdout + done.stderr
    (work / "conftest.py").write_text(PYTEST_CONFTEST)
    (work / "test_shop.py").write_text(PYTEST_TESTS)
    done = _cli("-m", "pytest", "-q", "-p", "no:cacheprovider", f"--scenario-store={path}",
                "--scenario-store-suite=shop-pytest", "test_shop.py", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


# -- tests ------------------------------------------------------------------------------------

def test_batches_to_batch_to_failing_run_in_two_clicks(history_store, page, tmp_path):
    viewer = Viewer(history_store)
    try:
        page.goto(viewer.url + "/")
        rows = page.locator("table.batches tbody tr")
        assert rows.count() == 3
        assert rows.first.get_attribute("data-status") == "finished"
        assert " main" in rows.nth(1).inner_text() and rows.nth(1).locator("code").count() == 1  # commit, branch
        shot(page, "batches", tmp_path)
        page.select_option("#suite-filter", "shop")  # filter by suite
        page.click("form.toolbar button")
        page.wait_for_url(re.compile(r"suite=shop"))
        assert rows.count() == 2
        rows.first.locator("a").first.click()  # click 1: the newest batch of the suite
        page.wait_for_selector("table.summary")
        assert page.locator('tr[data-scenario="refund"][data-met="no"]').count() == 1
        assert page.locator("a.run-link").count() == 10
        page.click("#failures-toggle")  # failures only
        page.wait_for_url(re.compile(r"failures=1"))
        assert page.locator("a.run-link").count() == 5
        assert page.locator('tr[data-status="passed"]').count() == 0
        shot(page, "batch", tmp_path)
        page.locator("a.run-link").first.click()  # click 2: the failing run
        page.wait_for_selector("#transcript .msg.agent")
        assert page.locator("#status .badge").inner_text() == "failed"
        assert "The agent offers a refund" in page.locator("table.criteria-table").inner_text()
        assert "configured to fail" in page.locator("table.criteria-table").inner_text()  # the judge's reasoning
        assert page.locator("#transcript .msg.user").count() >= 1
        assert page.locator("table.model-calls tbody tr").count() >= 2  # simulator and judge calls, in order
        shot(page, "run", tmp_path)
    finally:
        assert viewer.stop() == 0
    assert "scenario view: stopped." in viewer.output and "Traceback" not in viewer.output


def test_compare_shows_the_seeded_regression(history_store, page, tmp_path):
    viewer = Viewer(history_store)
    try:
        page.goto(viewer.url + "/compare?suite=shop")
        row = page.locator('tr[data-scenario="refund"]')
        assert row.get_attribute("data-kind") == "regressed" and row.get_attribute("data-flip") == "broke"
        assert page.locator('tr[data-scenario="late parcel"]').get_attribute("data-kind") == "unchanged"
        assert "REGRESSED beyond chance: refund" in page.locator("#headline").inner_text()
        shot(page, "compare", tmp_path)
    finally:
        viewer.stop()


def test_a_pytest_session_batch_is_browsable(history_store, page):
    viewer = Viewer(history_store)
    try:
        page.goto(viewer.url + "/?suite=shop-pytest")
        page.locator("table.batches tbody tr a").first.click()
        page.wait_for_selector("table.summary")
        row = page.locator('tr[data-scenario="test_shop.py::test_refund"]')
        assert row.get_attribute("data-met") == "yes" and "60%" in row.inner_text()  # the marker's threshold
        assert page.locator("a.run-link").count() == 3
        page.locator("a.run-link").first.click()
        page.wait_for_selector("#transcript .msg.agent")
        assert "The agent offers a refund" in page.locator("table.criteria-table").inner_text()
    finally:
        viewer.stop()


def test_live_pages_update_while_a_batch_runs(tmp_path, page):
    store = tmp_path / "live.db"
    fill_store(store, batches=1, hostile=False)  # the store exists before the viewer opens it
    errors: list = []

    def batch() -> None:
        try:  # slow mock answers: each run takes several seconds, long enough to watch it grow
            run_shop_batch(store, latency=0.4, runs=3, judge_turns=5, max_turns=7)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    viewer = Viewer(store)
    worker = _start(threading.Thread(target=batch, name="live-batch"))
    try:
        page.goto(viewer.url + "/")
        page.wait_for_selector('tr[data-status="running"]')  # the batches page picked up the new batch
        page.locator('tr[data-status="running"] a').first.click()
        page.wait_for_selector("main[data-live]")
        page.wait_for_selector("#running li a")  # a run in flight, with its transcript so far
        shot(page, "live-batch", tmp_path)
        batch_url = page.url
        for _ in range(5):  # a run may finish between the list and its page: then take the next one
            page.goto(batch_url)
            page.wait_for_selector("#running li a")
            page.locator("#running li a").first.click()
            page.wait_for_selector("#transcript")
            if page.locator("#finished-link").count() == 0:
                break
        else:
            raise AssertionError("every run finished before its live page loaded")
        first = page.locator("#transcript .msg").count()
        shot(page, "live-run", tmp_path)
        # The page changes in place: more messages, or the run finishing (then its full transcript).
        page.wait_for_function(f"document.querySelectorAll('#transcript .msg').length > {first}"
                               " || document.querySelector('#finished-link') !== null")
        page.goto(batch_url)
        page.wait_for_function("document.querySelectorAll('a.run-link').length > 0")  # finished runs appear
        page.wait_for_function("!document.querySelector('main').hasAttribute('data-live')", timeout=120_000)
        assert page.locator("a.run-link").count() == 6  # the whole batch, without a reload
    finally:
        worker.join(timeout=120)
        viewer.stop()
    assert not errors, errors


def _start(worker: threading.Thread) -> threading.Thread:
    worker.start()
    return worker


def test_hostile_transcripts_do_not_execute(tmp_path, page):
    store = tmp_path / "hostile.db"
    fill_store(store, batches=2)
    viewer = Viewer(store)
    try:
        page.goto(f"{viewer.url}/batch/b2-shop/run/{refund_run_id(0)}")
        page.wait_for_selector("#transcript .msg.agent")
        assert page.evaluate("window.__xss") is None and page.dialogs == []
        assert XSS_SCRIPT in page.locator("#transcript .msg.user").first.inner_text()  # shown as text
        assert page.locator("#transcript iframe, #transcript img, #transcript script").count() == 0
        assert page.evaluate("[...document.querySelectorAll('body *')].every("
                             "e => [...e.attributes].every(a => !a.name.startsWith('on')))")  # no handler anywhere
        assert page.locator("#transcript a").count() == 0  # a javascript: link stays text
        # A 120,000-character message wraps instead of widening the page.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.locator("#transcript .msg.user").first.hover()
        for url in ("/", "/batch/b2-shop", "/compare"):
            page.goto(viewer.url + url)
            assert page.evaluate("window.__xss") is None and page.dialogs == []
        page.goto(viewer.url + "/batch/does-not-exist")
        assert "The store has no batch" in page.inner_text("#not-found")
        page.click("#back")
        page.wait_for_selector("table.batches")
    finally:
        viewer.stop()
