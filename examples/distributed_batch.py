"""A batch past one core, offline: forked processes, or a Ray cluster, against the built-in mock model.

    python examples/distributed_batch.py                 # processes=2 on this machine
    python examples/distributed_batch.py --backend ray   # Ray: RAY_ADDRESS, a cluster here, or a local one

The Ray backend needs ``pip install 'scenario[ray]'``. Agents defined in this script travel to
the Ray workers by value (they live in ``__main__``); agents from your own modules need those
modules on the workers: ``scenario.distributed.Ray(runtime_env={"working_dir": "."})``.
"""

import argparse
import asyncio

import scenario
from scenario.testing import MockLLMServer


class ShopAgent(scenario.AgentAdapter):
    """A tiny rule-based agent under test (yours would call a model or a framework)."""

    def call(self, input: scenario.AgentInput) -> str:
        if "refund" in input.last_new_user_message_str().lower():
            return "I'm sorry about that! I've started a refund; you'll get an email shortly."
        return "Happy to help. Could you tell me your order number?"


async def main(backend: str) -> None:
    with MockLLMServer() as server:
        scenario.configure(
            default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock"),
            # One quota for the whole batch, whichever process or machine makes the call.
            rate_limits={"openai/*": scenario.RateLimit(requests_per_minute=3000)},
        )
        specs = [
            scenario.Scenario(
                name="broken mug",
                description="A customer's mug arrived broken and they want a refund.",
                agents=[ShopAgent, scenario.UserSimulatorAgent(),
                        scenario.JudgeAgent(criteria=["The agent offers a refund"])],
                max_turns=3,
            ),
        ]
        if backend == "ray":
            from scenario.distributed import Ray

            result = await scenario.run_batch(specs, runs=8, max_concurrency=8, backend=Ray(workers=2))
        else:
            result = await scenario.run_batch(specs, runs=8, max_concurrency=8, processes=2)
        print(result.summary())
        meta = result.metadata
        print(f"backend {meta['backend']}: {meta['runs_resent']} runs re-sent, "
              f"{meta['duplicates_dropped']} duplicates dropped, {meta['workers_lost']} workers lost")
        assert result.passed, result.summary()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("processes", "ray"), default="processes")
    asyncio.run(main(parser.parse_args().backend))
