"""Unit-test a judge prompt and a simulator turn with no model server and no API key.

    python examples/function_model.py

``FunctionModel(fn)`` answers the judge's and the simulator's model calls with your function
(``fn(messages, tools)``), in this process: only the call to litellm is replaced, so usage, spans
and retries behave as with a real model. Use it to pin down what a prompt sends and how a verdict
is read; use ``scenario.testing.MockLLMServer`` (or a real model) for the path through litellm.
"""

import asyncio

import scenario
from scenario.testing import FunctionModel, judge_verdict

CRITERIA = ["The agent apologises", "The agent asks for the order number"]


class SupportAgent(scenario.AgentAdapter):
    """The agent under test: a rule-based stand-in (yours would call a model or a framework)."""

    def __init__(self, asks_for_order: bool) -> None:
        self.asks_for_order = asks_for_order

    def call(self, input: scenario.AgentInput) -> str:
        if self.asks_for_order:
            return "I'm sorry your parcel is late. Could you tell me your order number?"
        return "I'm sorry your parcel is late."


def judge(messages: list[dict], tools: list[dict]):
    """Stands in for the judge model: rules on each criterion from the transcript it was sent."""
    transcript = messages[-1]["content"].lower()
    return judge_verdict(tools, {
        "The agent apologises": "passed" if "sorry" in transcript else "failed",
        "The agent asks for the order number": "passed" if "order number" in transcript else "failed",
    }, reasoning="read from the transcript")


def customer(messages: list[dict], tools: list[dict]) -> str:
    """Stands in for the simulator model: the persona is in its system prompt."""
    return "My parcel is a week late." if "impatient" in messages[0]["content"] else "Hello, where is my parcel?"


async def main() -> None:
    for asks_for_order in (True, False):
        judge_model = FunctionModel(judge)
        result = await scenario.arun(
            name="late parcel",
            description="A customer's parcel is a week late.",
            agents=[
                SupportAgent(asks_for_order),
                scenario.UserSimulatorAgent(model=FunctionModel(customer), persona="An impatient customer."),
                scenario.JudgeAgent(criteria=CRITERIA, model=judge_model),
            ],
            script=[scenario.user(), scenario.agent(), scenario.judge()],
        )
        print(f"asks for the order: {asks_for_order!s:5}  passed: {result.success!s:5}  "
              f"failed criteria: {result.failed_criteria}  judge calls: {len(judge_model.requests)}")
        assert result.success is asks_for_order


if __name__ == "__main__":
    asyncio.run(main())
