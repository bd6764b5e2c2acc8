"""What the judge reads on long conversations: prompt tokens with and without condensation.

Conversations of 10, 40 and 160 exchanges (each agent reply ~1,600 tokens) are judged once with
the default ``token_threshold`` (8192) and once with condensation off (threshold 10**9), against
the mock model (which reads one message back before ruling when offered the lookup tools). It
prints the judge's prompt tokens per verdict, measured by the mock's usage, side by side.

    .venv/bin/python -m bench.judge_condense
"""

from __future__ import annotations

import asyncio

import scenario
from scenario.testing import MockLLMServer

REPLY = "Here is a long and detailed answer about your order and our policies. " * 90  # ~1,600 tokens


class VerboseAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return REPLY


async def judge_tokens(exchanges: int, threshold: int) -> tuple:
    script = [s for i in range(exchanges) for s in (scenario.user(f"question {i}"), scenario.agent())]
    result = await scenario.run(
        name=f"long {exchanges}", description="A customer with many questions.",
        agents=[VerboseAgent(), scenario.JudgeAgent(criteria=["Answers every question"], token_threshold=threshold)],
        script=[*script, scenario.judge()],
    )
    judge = result.usage.by_role["judge"]
    return judge.input_tokens, judge.calls, result.success


async def main() -> None:
    with MockLLMServer() as server:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=30))
        print("exchanges  full transcript (tokens)  condensed (tokens, calls)  condensed/full")
        for exchanges in (10, 40, 160):
            full, _calls, ok_full = await judge_tokens(exchanges, 10**9)
            condensed, calls, ok_condensed = await judge_tokens(exchanges, 8192)
            assert ok_full and ok_condensed
            print(f"{exchanges:9d}  {full:24d}  {condensed:14d} ({calls} calls)  "
                  f"judge prompt tokens condensed/full at {exchanges} exchanges: {condensed / full:.3f} (reported)")


if __name__ == "__main__":
    asyncio.run(main())
