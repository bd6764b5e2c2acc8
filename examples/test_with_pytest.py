"""Scenario tests in pytest, fully offline: ``pytest examples/test_with_pytest.py``.

The patterns of docs/pytest.md, from the most common one down. A mock model server started in
a fixture plays the user simulator and the judge, so this runs without an API key; in your
project, drop the two fixtures at the top and configure a real model instead.

Needs: pytest, pytest-asyncio (for ``@pytest.mark.asyncio``) and pytest-asyncio-concurrent
(for ``@pytest.mark.asyncio_concurrent``); scenario's pytest plugin loads by itself.
"""

from __future__ import annotations

import asyncio
import os

# litellm fetches a price list over the network at import unless told to use its bundled one.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

import scenario
from scenario.testing import MockLLMServer


# -- offline set-up: a mock model for the simulator and the judge ------------------------------------
@pytest.fixture(scope="module")
def mock_model():
    with MockLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def use_mock_model(mock_model):
    scenario.configure(
        default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=mock_model.base_url, api_key="mock", timeout=10
        )
    )


# -- the agent under test (yours goes here) -----------------------------------------------------------
class ShopAssistant(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"Happy to help with that. You said: {input.last_new_user_message_str()}"


def shop_agents(*criteria: str) -> list:
    """A fresh set of agents: the assistant, a user simulator, and a judge with these criteria."""
    return [ShopAssistant(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=list(criteria))]


# 1. One scenario, one test: the most common pattern. ---------------------------------------------
@pytest.mark.asyncio
async def test_order_status():
    result = await scenario.run(
        name="order status",
        description="A customer asks where their order is.",
        agents=shop_agents("The assistant offers to help"),
    )
    assert result.success, result.reasoning


# 2. Flaky by nature: run the body 5 times at once, pass if at least 80% of runs pass. ----------
@pytest.mark.asyncio
@pytest.mark.scenario(runs=5, min_pass_rate=0.8)
async def test_refund_answer_is_stable():
    result = await scenario.run(
        name="refund",
        description="A customer wants a refund for a damaged parcel.",
        agents=shop_agents("The assistant acknowledges the damaged parcel"),
    )
    assert result.success, result.reasoning


# 3. Independent scenarios side by side: one concurrent group, one event loop. ------------------
@pytest.mark.asyncio_concurrent(group="support")
async def test_support_billing():
    result = await scenario.run(
        name="billing", description="A customer was charged twice.", agents=shop_agents("The assistant offers help")
    )
    assert result.success, result.reasoning


@pytest.mark.asyncio_concurrent(group="support")
async def test_support_shipping():
    result = await scenario.run(
        name="shipping", description="A customer asks about shipping to Norway.", agents=shop_agents("The assistant offers help")
    )
    assert result.success, result.reasoning


# 4. An agent holding loop-bound objects made by an async fixture: use arun, which runs the
#    scenario on the test's own loop (the loop the fixture ran on).
class QueueBackedAssistant(scenario.AgentAdapter):
    def __init__(self) -> None:
        self.requests: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def call(self, input: scenario.AgentInput) -> str:
        await self.requests.put(input.last_new_user_message_str())
        return f"Logged your request: {await self.requests.get()}"


@pytest.fixture
async def queue_backed_assistant():
    assistant = QueueBackedAssistant()
    yield assistant
    assert assistant.requests.empty()


@pytest.mark.asyncio_concurrent(group="support")
async def test_support_with_async_fixture(queue_backed_assistant):
    result = await scenario.arun(
        name="complaint",
        description="A customer complains about a late delivery.",
        agents=[
            queue_backed_assistant,
            scenario.UserSimulatorAgent(),
            scenario.JudgeAgent(criteria=["The assistant logs the request"]),
        ],
    )
    assert result.success, result.reasoning
