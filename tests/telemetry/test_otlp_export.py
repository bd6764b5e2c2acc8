"""Spans exported over OTLP/HTTP reach a real trace back-end, and read back as the same tree.

The receiver is Arize Phoenix, started by the test as a separate process on loopback with a
throw-away working directory. It lives in its own virtual environment (``make test`` builds
``.venv-phoenix`` and points ``SCENARIO_PHOENIX_PYTHON`` at it): installed next to our package it
drags in 1 GB, changes pinned dependencies and registers a pytest plugin that slows every pytest
start. With ``SCENARIO_PHOENIX_PYTHON`` set, a receiver that cannot start fails the test; without
it (a bare ``pytest`` on a machine without Phoenix) the test is skipped with this advice.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.util._once import Once

import scenario
from scenario.telemetry import tracer as telemetry
from scenario.telemetry.tree import SpanNode, build_forest, read_phoenix_spans, render_tree
from tests.helpers.agents import EchoAgent

STARTUP_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _phoenix_python() -> str:
    python = os.environ.get("SCENARIO_PHOENIX_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import phoenix.server.main"], capture_output=True, text=True)
    if probe.returncode != 0:
        _unavailable(
            f"Arize Phoenix (the OTLP receiver for this test) is not importable by {python}: "
            f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'unknown error'}. "
            "Run `make test` (it builds .venv-phoenix), or set SCENARIO_PHOENIX_PYTHON to a Python with "
            "arize-phoenix installed."
        )
    return python


def _unavailable(reason: str) -> None:
    """Fail when the receiver was promised (make test / CI), skip on a developer's bare pytest."""
    if os.environ.get("SCENARIO_PHOENIX_PYTHON"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def phoenix() -> Iterator[str]:
    """A Phoenix server on loopback; yields its base URL."""
    python = _phoenix_python()
    port, grpc_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="scenario-phoenix-") as workdir:
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        for name in [n for n in env if n.startswith("OTEL_")]:
            del env[name]
        log_path = os.path.join(workdir, "phoenix.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [python, "-m", "phoenix.server.main", "serve"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if process.poll() is not None:
                    with open(log_path, errors="replace") as log:
                        tail = log.read()[-2000:]
                    _unavailable(f"the Phoenix receiver exited during start-up (code {process.returncode}):\n{tail}")
                try:
                    with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"Phoenix did not answer on {base_url} within {STARTUP_TIMEOUT:.0f}s")
                time.sleep(0.25)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def no_app_provider() -> Iterator[None]:
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    telemetry.shutdown_private_provider()
    try:
        yield
    finally:
        telemetry.shutdown_private_provider()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def _shape(node: SpanNode) -> Any:
    return (node.name, node.status, [_shape(child) for child in node.children])


@pytest.mark.asyncio
async def test_spans_exported_over_otlp_http_read_back_from_phoenix(phoenix, configured, no_app_provider, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{phoenix}/v1/traces")
    scenario.configure(tracing="otlp")
    agents = lambda: [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["is polite"])]  # noqa: E731
    results = {
        "autopilot run": await scenario.run(name="autopilot run", description="Shipping question.", agents=agents()),
        "autopilot arun": await scenario.arun(name="autopilot arun", description="Shipping question.", agents=agents()),
        "scripted run": await scenario.run(
            name="scripted run", description="Scripted.", agents=agents(),
            script=[scenario.user("hello"), scenario.agent(), scenario.judge()],
        ),
        "scripted arun": await scenario.arun(
            name="scripted arun", description="Scripted.", agents=agents(),
            script=[scenario.user("hello"), scenario.agent(), scenario.judge()],
        ),
    }
    assert all(r.success for r in results.values())
    telemetry.shutdown_private_provider()  # flushes the batch processor

    expected = 2 * (13 + 5)  # wait until the back-end has stored every span
    deadline = time.monotonic() + 30
    while True:
        records = read_phoenix_spans(phoenix)
        if len(records) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    roots = [n for n in build_forest(records) if n.name == "scenario.run"]
    by_name = {root.attributes["scenario.name"]: root for root in roots}
    assert by_name.keys() == results.keys()
    for name, result in results.items():
        root = by_name[name]
        assert root.parent_id is None
        assert root.attributes["scenario.thread_id"] == result.thread_id
        assert root.attributes["scenario.success"] is True
        assert root.attributes["scenario.usage.calls"] == result.usage.calls
        assert root.attributes["scenario.usage.input_tokens"] == result.usage.input_tokens
        assert root.attributes[telemetry.ATTR_ROLLUP_COST] == pytest.approx(result.usage.cost_usd, abs=1e-12)
        assert not any(key.startswith("gen_ai.usage.") for key in root.attributes)
        chats = [n for n in root.walk() if n.name.startswith("chat ")]
        assert len(chats) == result.usage.calls
        assert sum(n.attributes["gen_ai.usage.output_tokens"] for n in chats) == result.usage.output_tokens
        assert all(n.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini" for n in chats)
    assert _shape(by_name["autopilot run"]) == _shape(by_name["autopilot arun"])
    assert _shape(by_name["scripted run"]) == _shape(by_name["scripted arun"])
    assert len(render_tree([by_name["autopilot run"]]).splitlines()) == 13
