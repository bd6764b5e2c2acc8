"""Results history offline: two batches of one suite in a store, compared, then browsable.

    python examples/view_history.py [STORE]        # default: .scenario/view-example.db
    scenario view .scenario/view-example.db        # then browse it (needs: pip install 'scenario[view]')

The first batch passes; in the second the refund criterion is made to fail on the mock judge (its
``[mock:fail]`` marker), a regression that ``scenario compare`` and the viewer's compare page flag
as larger than chance. Replace the mock with a real model and ``ShopAgent`` with your agent to
make it real; ``scenario run SUITE.yaml`` and ``pytest --scenario-store PATH`` fill stores the same way.
"""

import asyncio
import sys

import scenario
from scenario.reports.compare import format_comparison
from scenario.store import ResultStore
from scenario.testing import MockLLMServer
from scenario.view.pages import compare_batches


class ShopAgent(scenario.AgentAdapter):
    def call(self, input: scenario.AgentInput) -> str:
        if "refund" in input.last_new_user_message_str().lower():
            return "I'm sorry! I've started a refund; you'll get an email shortly."
        return "Happy to help. Could you tell me your order number?"


def suite(refund_criterion: str) -> list:
    return [
        scenario.Scenario(name="refund", description="A customer wants a refund for a broken mug.", runs=6,
                          agents=[ShopAgent, scenario.UserSimulatorAgent(),
                                  scenario.JudgeAgent(criteria=[refund_criterion])]),
        scenario.Scenario(name="late parcel", description="A customer's parcel is late.", runs=6,
                          agents=[ShopAgent, scenario.UserSimulatorAgent(),
                                  scenario.JudgeAgent(criteria=["The agent answers politely"])]),
    ]


async def main(store_path: str) -> int:
    with MockLLMServer() as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock")
        )
        for criterion in ("The agent offers a refund", "The agent offers a refund [mock:fail]"):
            result = await scenario.run_batch(suite(criterion), suite="shop", store=store_path)
            print(f"batch {result.metadata['batch_id']}: {result.passed_runs}/{result.total} runs passed")
    with ResultStore(store_path, readonly=True) as store:
        after, before = store.batches("shop")[:2]
        comparison = compare_batches(store, before, after)
    print(format_comparison(comparison))
    print(f"\nBrowse it: scenario view {store_path}")
    return 1 if comparison.regressed else 0


if __name__ == "__main__":
    code = asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else ".scenario/view-example.db"))
    sys.exit(0 if code in (0, 1) else code)  # the regression is the point of the example
