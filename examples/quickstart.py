"""Quick start, offline: run one scenario under each executor against the built-in mock model.

    python examples/quickstart.py

Replace ``MockLLMServer`` with a real model (``scenario.configure(default_model="openai/gpt-4o-mini")``)
and ``ShopAgent`` with your own agent to make it real.
"""

import asyncio

import scenario
from scenario.testing import MockLLMServer


class ShopAgent(scenario.AgentAdapter):
    """A tiny rule-based agent under test (yours would call a model or a framework)."""

    def call(self, input: scenario.AgentInput) -> str:
        question = input.last_new_user_message_str().lower()
        if "refund" in question or "broken" in question:
            return "I'm sorry about that! I've started a refund; you'll get an email shortly."
        return "Happy to help. Could you tell me your order number?"


async def main() -> None:
    with MockLLMServer() as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock")
        )
        for execute in (scenario.run, scenario.arun):
            result = await execute(
                name="broken mug",
                description="A customer's mug arrived broken and they want a refund.",
                agents=[
                    ShopAgent(),
                    scenario.UserSimulatorAgent(),
                    scenario.JudgeAgent(criteria=["The agent offers a refund", "The agent is polite"]),
                ],
                script=[
                    scenario.user("Hi, my mug arrived broken, can I get a refund?"),
                    scenario.agent(),
                    scenario.judge(criteria=["The agent responds to the request"]),
                    scenario.proceed(),
                ],
            )
            print(f"{execute.__name__}: success={result.success} reasoning={result.reasoning!r}")
            print(f"   {len(result.messages)} messages, {result.usage.calls} model calls, ${result.usage.cost_usd:.6f}")
            assert result.success, result.reasoning


if __name__ == "__main__":
    asyncio.run(main())
