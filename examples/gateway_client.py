"""The user simulator and judge through your own OpenAI client (a gateway with custom headers).

    python examples/gateway_client.py

Offline: the "gateway" is the built-in mock model, and an httpx event hook shows the header
arriving on every call. With a real gateway, point ``base_url`` at it and drop ``MockLLMServer``.
"""

import asyncio

import httpx
import openai

import scenario
from scenario.testing import MockLLMServer


class SupportAgent(scenario.AgentAdapter):
    def call(self, input: scenario.AgentInput) -> str:
        return "Your parcel left our warehouse yesterday; it should arrive tomorrow."


async def main() -> None:
    with MockLLMServer() as server:
        seen = []

        async def show_header(request: httpx.Request) -> None:
            seen.append(request.headers.get("Ocp-Apim-Subscription-Key"))

        gateway = openai.AsyncOpenAI(
            base_url=server.base_url,  # your gateway's URL
            api_key="not-used-by-the-gateway",
            default_headers={"Ocp-Apim-Subscription-Key": "my-subscription-key"},
            http_client=httpx.AsyncClient(event_hooks={"request": [show_header]}),
        )
        result = await scenario.run(
            name="late parcel via gateway",
            description="A customer asks where their parcel is.",
            agents=[
                SupportAgent(),
                scenario.UserSimulatorAgent(model="azure/support-simulator", client=gateway),
                scenario.JudgeAgent(model="azure/support-judge", criteria=["The agent says when the parcel arrives"],
                                    client=gateway),
            ],
        )
        print(f"success={result.success}; {len(seen)} model calls through the gateway, headers: {sorted(set(seen))}")


if __name__ == "__main__":
    asyncio.run(main())
