"""Batches in a result store: fresh by default, resumed on request, stale runs re-run. Offline.

    python examples/resume_batch.py [STORE]        # default: a temporary file

1. A batch of 2 scenarios x 4 runs stops early: the agent's backend breaks on its 5th call and
   ``on_error="fail_fast"`` stops the batch, which the store marks ``interrupted``.
2. The backend is fixed and a criterion is edited. ``run_batch(..., resume=True)`` continues that
   batch: verdicts whose fingerprint is unchanged are kept, the errored run and the runs that never
   started run now, and the runs judged on the old criterion run again. The plan says why.
3. Running again without ``resume`` is a fresh batch; the store keeps both as history.
"""

import asyncio
import sys
import tempfile
from pathlib import Path

import scenario
from scenario.batch.runner import prepare_batch
from scenario.batch.stored import StoredBatch
from scenario.store import ResultStore
from scenario.testing import MockLLMServer


class ShopAgent(scenario.AgentAdapter):
    calls = 0
    broken_on_call = 5  # the backend fails on this call (0: never): in the third run

    async def call(self, input: scenario.AgentInput) -> str:
        ShopAgent.calls += 1
        if ShopAgent.calls == ShopAgent.broken_on_call:
            raise ConnectionResetError("order service dropped the connection")
        return "Sorry about that! I can refund you or send a replacement today."


def specs(refund_criterion: str) -> list:
    return [
        scenario.Scenario(name="refund", description="A customer's mug arrived broken; they want a refund.",
                          agents=[ShopAgent, scenario.UserSimulatorAgent(),
                                  scenario.JudgeAgent(criteria=[refund_criterion])]),
        scenario.Scenario(name="late parcel", description="A customer's parcel is a week late.",
                          agents=[ShopAgent, scenario.UserSimulatorAgent(),
                                  scenario.JudgeAgent(criteria=["The agent stays polite"])]),
    ]


async def main(path: Path) -> int:
    with MockLLMServer() as server, ResultStore(path) as store:
        scenario.configure(default_model=scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url,
                                                              api_key="mock"))
        first = await scenario.run_batch(specs("The agent offers a refund"), runs=4, suite="shop", store=store,
                                         on_error="fail_fast", max_concurrency=1)
        batch = store.batch(first.metadata["batch_id"])
        print(f"1. batch {batch.id}: {batch.status} ({batch.reason}); {batch.finished} of {batch.planned} runs stored")

        ShopAgent.broken_on_call = 0  # the backend is fixed...
        edited = specs("The agent offers a refund or a replacement")  # ...and a criterion edited
        # run_batch(..., resume=True) does exactly this; opening the plan first lets us print it.
        plan = StoredBatch.open(store, prepare_batch(edited, runs=4, suite="shop", max_concurrency=1), resume=True)
        print(f"2. {plan.plan.describe()}")
        resumed = await plan.execute()
        print(f"   the whole batch now: {resumed.passed_runs}/{resumed.total} passed; "
              f"status {store.batch(batch.id).status}, {store.count(batch_id=batch.id)} records (one per run)")

        fresh = await scenario.run_batch(edited, runs=4, suite="shop", store=store)
        print(f"3. a fresh batch {fresh.metadata['batch_id']}: {fresh.passed_runs}/{fresh.total} passed; "
              f"the store holds {len(store.batches('shop'))} batches of suite 'shop'")
        ok = resumed.passed and fresh.passed and store.count(batch_id=batch.id) == 8
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(asyncio.run(main(Path(sys.argv[1]))))
    with tempfile.TemporaryDirectory() as folder:
        sys.exit(asyncio.run(main(Path(folder) / "results.db")))
