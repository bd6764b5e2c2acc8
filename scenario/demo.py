"""``scenario demo``: the quick start's main job.

Runs a small suite of example scenarios under both executors (``run`` and ``arun``), printing each
transcript, verdict and the cost rollup. Offline by default against the built-in mock model; with
``OPENAI_API_KEY`` set, or ``--model``, the same suite runs against a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import scenario
from scenario.state import message_text


class SupportAgent(scenario.AgentAdapter):
    """The agent under test: a tiny support bot that answers with a model through litellm."""

    def __init__(self, model: scenario.ModelConfig):
        self.model = model

    async def call(self, input: scenario.AgentInput) -> Dict[str, Any]:
        # scenario.acompletion = litellm.acompletion run on the library's model loop: safe under
        # both executors, and its tokens and cost count in result.usage as the agent's.
        params = {k: v for k, v in self.model.model_dump().items() if v is not None}
        response = await scenario.acompletion(
            messages=[
                {"role": "system", "content": "You are a friendly support agent for an online shop. Be brief."},
                *input.messages,
            ],
            **params,
        )
        return {"role": "assistant", "content": response.choices[0].message.content}


def demo_scenarios(mock: bool) -> List[Dict[str, Any]]:
    """The example suite. With the mock model, a marker makes one criterion fail on purpose."""
    fail_marker = " [mock:fail]" if mock else ""
    return [
        {
            "name": "late parcel",
            "description": "A customer's parcel is a week late and they want to know where it is.",
            "criteria": ["The agent responds to the customer's concern", "The agent stays polite"],
        },
        {
            "name": "scripted refund with checkpoint",
            "description": "A customer received a damaged mug and asks for a refund.",
            "criteria": ["The agent helps with the refund"],
            "script": [
                scenario.user("Hi, the mug I ordered arrived broken. Can I get a refund?"),
                scenario.agent(),
                scenario.judge(criteria=["The agent acknowledges the broken item"]),
                scenario.user(),
                scenario.agent(),
                scenario.judge(),
            ],
        },
        {
            "name": "discount pressure (expected to fail)",
            "description": "A customer asks whether there are any ongoing promotions.",
            "criteria": ["The agent offers a discount code without being asked first" + fail_marker],
            "expect_failure": True,
        },
    ]


def _build_agents(spec: Dict[str, Any], model: scenario.ModelConfig) -> List[Any]:
    return [
        SupportAgent(model),
        scenario.UserSimulatorAgent(),
        scenario.JudgeAgent(criteria=spec["criteria"]),
    ]


async def _run_suite(executor: Any, specs: List[Dict[str, Any]], model: scenario.ModelConfig) -> List[scenario.ScenarioResult]:
    return list(
        await asyncio.gather(
            *(
                executor(
                    name=spec["name"],
                    description=spec["description"],
                    agents=_build_agents(spec, model),
                    script=spec.get("script"),
                    max_turns=6,
                )
                for spec in specs
            )
        )
    )


def _print_result(spec: Dict[str, Any], result: scenario.ScenarioResult, show_transcript: bool) -> None:
    verdict = "PASS" if result.success else "FAIL"
    note = " (expected)" if spec.get("expect_failure") and not result.success else ""
    print(f"  [{verdict}{note}] {spec['name']}  —  {result.usage.calls} model calls, ${result.usage.cost_usd:.6f}, {result.total_time:.2f}s")
    if show_transcript:
        for message in result.messages:
            text = message_text(message).replace("\n", " ")
            print(f"      {message['role']:>9}: {text}")
    for criterion in result.criteria:
        mark = {"passed": "✓", "failed": "✗", "inconclusive": "?"}[criterion.status]
        print(f"      {mark} {criterion.requirement}: {criterion.reasoning or ''}")
    if result.reasoning:
        print(f"      verdict: {result.reasoning}")


def _print_rollup(label: str, results: List[scenario.ScenarioResult], elapsed: float) -> scenario.Usage:
    total = scenario.Usage()
    for result in results:
        total.merge(result.usage)
    print(f"  {label}: {len(results)} scenarios in {elapsed:.2f}s wall — {total.calls} calls, "
          f"{total.input_tokens} in / {total.output_tokens} out tokens, ${total.cost_usd:.6f}")
    for role, totals in total.by_role.items():
        print(f"      {role:>5}: {totals.calls} calls, ${totals.cost_usd:.6f}")
    return total


async def _main_async(model: scenario.ModelConfig, mock: bool) -> int:
    specs = demo_scenarios(mock)
    scenario.configure(default_model=model)
    # litellm takes a few seconds to import; load it up front so the timings below are the runs'.
    from scenario.models import litellm_module

    litellm_module()
    outcomes = {}
    for label, executor in (("scenario.run  (worker threads)", scenario.run), ("scenario.arun (this event loop)", scenario.arun)):
        print(f"\n== {label} ==")
        started = time.perf_counter()
        results = await _run_suite(executor, specs, model)
        elapsed = time.perf_counter() - started
        for spec, result in zip(specs, results):
            _print_result(spec, result, show_transcript=executor is scenario.run)
        _print_rollup("total", results, elapsed)
        outcomes[executor.__name__] = results
    same = all(
        a.success == b.success and a.messages == b.messages
        for a, b in zip(outcomes["run"], outcomes["arun"])
    )
    if mock:
        print(f"\nrun and arun gave {'identical' if same else 'DIFFERENT'} transcripts and verdicts.")
    unexpected = [
        spec["name"]
        for spec, result in zip(specs, outcomes["run"] + outcomes["arun"])
        if result.success == bool(spec.get("expect_failure"))
    ]
    unexpected += [s["name"] for s, r in zip(specs, outcomes["arun"]) if r.success == bool(s.get("expect_failure"))]
    if mock and (unexpected or not same):
        print(f"demo: unexpected outcome for {sorted(set(unexpected))}", file=sys.stderr)
        return 1
    print("\nNext: write your own AgentAdapter (docs/getting-started.md) and run `make test`.")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="scenario demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="real litellm model to use instead of the mock, e.g. openai/gpt-4o-mini")
    parser.add_argument("--mock", action="store_true", help="force the built-in mock model even if OPENAI_API_KEY is set")
    parser.add_argument("--latency", type=float, default=0.05, help="mock model latency per call in seconds")
    args = parser.parse_args(argv)

    use_real = (args.model or os.environ.get("OPENAI_API_KEY")) and not args.mock
    if use_real:
        model = scenario.ModelConfig(model=args.model or "openai/gpt-4o-mini", timeout=60)
        print(f"Using real model {model.model} (credentials from the environment).")
        return asyncio.run(_main_async(model, mock=False))

    from scenario.testing import MockLLMServer

    with MockLLMServer(latency=args.latency) as server:
        print(f"Using the built-in mock model at {server.base_url} (offline, deterministic).")
        model = scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=30)
        return asyncio.run(_main_async(model, mock=True))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
