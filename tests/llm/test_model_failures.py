"""Model-call failures are classified, fast and explained: each case through scenario.run against
the mock model over HTTP, asserting the message (model, endpoint, fix) and how many requests the
endpoint saw (permanent errors: one; transient ones: retried)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import scenario
from scenario.llm.classify import redact_url
from scenario.llm.retry import RetryPolicy, retry_board
from scenario.settings import DEFAULT_MODEL_TIMEOUT
from scenario.testing import MockBehavior, MockLLMServer


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return "hello"


async def simulate(server: Any, prompt: str = "You are a user simulator.", **model: Any) -> scenario.ScenarioResult:
    settings = {"model": "openai/gpt-4o-mini", "api_base": server.base_url if server else None, "api_key": "mock",
                "system_prompt": prompt, **model}
    return await scenario.run(
        name="failing model", description="A user says hi.",
        agents=[Echo(), scenario.UserSimulatorAgent(**settings)],
        script=[scenario.user(), scenario.agent(), scenario.succeed()],
    )


def error_of(result: scenario.ScenarioResult) -> scenario.ModelCallError:
    assert not result.success and result.error is not None and result.error.type == "ModelCallError"
    exc = result.exception
    assert isinstance(exc, scenario.ModelCallError)
    return exc


@pytest.fixture
def server():
    with MockLLMServer() as running:
        yield running


@pytest.mark.asyncio
async def test_missing_api_key_fails_at_once_naming_the_variable(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = await simulate(server, api_key=None)
    exc = error_of(result)
    assert exc.kind == "missing_key" and exc.attempts == 1
    message = str(exc)
    assert "user model call to 'openai/gpt-4o-mini'" in message and server.base_url in message
    assert "no API key" in message and "set OPENAI_API_KEY in the environment" in message and "Not retried" in message
    assert server.stats.requests == 0  # the client refused before sending anything; nothing was retried


@pytest.mark.asyncio
@pytest.mark.parametrize("status, kind, words", [
    (401, "auth", "refused the credentials"),
    (403, "auth", "refused the credentials"),
    (404, "unknown_model", "unknown model or provider"),
    (400, "bad_request", "rejected the request as invalid"),
    (422, "bad_request", "rejected the request as invalid"),
])
async def test_client_errors_are_not_retried_and_say_what_to_fix(server, status, kind, words):
    result = await simulate(server, prompt=f"You are a user simulator. [mock:error={status}]")
    exc = error_of(result)
    assert exc.kind == kind and exc.attempts == 1, str(exc)
    assert words in str(exc) and "Fix:" in str(exc) and server.base_url in str(exc)
    assert server.stats.requests == 1


@pytest.mark.asyncio
async def test_unknown_provider_fails_before_any_request():
    result = await simulate(None, model="nosuch/model-x", api_key="k")
    exc = error_of(result)
    assert exc.kind == "unknown_model" and "'nosuch/model-x'" in str(exc) and "provider/model" in str(exc)


@pytest.mark.asyncio
async def test_context_window_errors_name_the_model_and_are_not_retried():
    with MockLLMServer(behavior=MockBehavior(context_window=5)) as small:
        result = await simulate(small)
        exc = error_of(result)
        assert exc.kind == "context_window" and exc.attempts == 1
        assert "'openai/gpt-4o-mini'" in str(exc) and "context window" in str(exc) and "maximum context length is 5" in str(exc)
        assert small.stats.requests == 1


@pytest.mark.asyncio
async def test_server_errors_are_retried_with_backoff_then_explained(server):
    scenario.configure(retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02))
    result = await simulate(server, prompt="You are a user simulator. [mock:error=503]")
    exc = error_of(result)
    assert exc.kind == "server" and exc.attempts == 3 and server.stats.requests == 3
    assert "after 3 attempts" in str(exc) and "RetryPolicy(max_attempts=...)" in str(exc)


@pytest.mark.asyncio
async def test_a_silent_endpoint_times_out_twice_and_names_the_url_and_the_setting(server):
    scenario.configure(retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.02))  # default max_timeout_attempts
    result = await simulate(server, prompt="You are a user simulator. [mock:hang]", timeout=0.5)
    exc = error_of(result)
    assert exc.kind == "timeout" and exc.attempts == 2 and server.stats.requests == 2
    message = str(exc)
    assert f"at {server.base_url}" in message and "no answer within 0.5s per attempt" in message
    assert "ModelConfig(timeout=...)" in message and "model.timeout" in message


@pytest.mark.asyncio
async def test_a_refused_connection_is_called_a_connection_error():
    scenario.configure(retry=RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02))
    result = await simulate(None, api_base="http://127.0.0.1:9/v1")
    exc = error_of(result)
    assert exc.kind == "connection" and exc.attempts == 2 and "could not connect" in str(exc)


def test_default_settings_bound_a_silent_endpoint_to_about_90_seconds():
    """The documented worst case (docs/getting-started.md): attempts that time out x the
    per-attempt timeout, plus the backoff between them."""
    policy = RetryPolicy()
    attempts = policy.max_timeout_attempts
    backoff = sum(policy.backoff_bounds(n)[1] for n in range(1, attempts))
    worst = attempts * DEFAULT_MODEL_TIMEOUT + backoff
    assert 80 <= worst <= 95, worst


def test_api_base_is_shown_without_credentials():
    assert redact_url("https://user:secret@proxy.example.com:8443/v1?api-key=abc&region=eu") == \
        "https://proxy.example.com:8443/v1?api-key=***&region=eu"
    assert redact_url(None) is None


@pytest.mark.asyncio
async def test_failed_calls_print_no_litellm_banner(server, capfd):
    await simulate(server, prompt="You are a user simulator. [mock:error=400]")
    await simulate(None, model="nosuch/model-x", api_key="k")
    out, err = capfd.readouterr()
    assert "Give Feedback" not in out + err and "Provider List" not in out + err


def test_litellm_logging_worker_errors_are_dropped_but_other_records_pass(caplog):
    from scenario.llm.client import litellm_module

    litellm_module()
    logger = logging.getLogger("LiteLLM")
    with caplog.at_level(logging.WARNING, logger="LiteLLM"):
        logger.error("LoggingWorker error: %s", "callback cut off")
        logger.warning("a real litellm warning")
    messages = [r.getMessage() for r in caplog.records]
    assert "a real litellm warning" in messages and not any("LoggingWorker" in m for m in messages)


@pytest.mark.asyncio
async def test_calls_waiting_to_retry_are_on_the_board_while_they_wait(server):
    scenario.configure(retry=RetryPolicy(max_attempts=2, initial_backoff=0.6, max_backoff=0.6, jitter=0.0))
    task = asyncio.ensure_future(simulate(server, prompt="You are a user simulator. [mock:error=429]"))
    seen = None
    for _ in range(200):
        await asyncio.sleep(0.02)
        snap = retry_board.snapshot()
        if snap.retrying:
            seen = snap
            break
    await task
    assert seen is not None and seen.rate_limited == 1
    assert seen.describe().startswith("1 call retrying, next in ") and seen.describe().endswith("; 1 rate-limited")
    assert retry_board.snapshot().retrying == 0
