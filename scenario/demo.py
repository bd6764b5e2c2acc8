"""``scenario demo``: the quick start's main job.

Runs a small suite of example scenarios under both executors (``run`` and ``arun``), printing each
transcript, verdict and the cost rollup. Offline by default against the built-in mock model; with
``OPENAI_API_KEY`` set, or ``--model``, the same suite runs against a real model.

It ends the way a first session should: the runs are stored as a batch in the result store, an HTML
report is written, and the last lines point at the example suite, the store, the report and the
next command. It exits 1 when a run ended unexpectedly (an error, or a verdict other than the
expected one), so ``make demo`` fails loudly rather than printing a reassuring summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import scenario
from scenario.engine.state import message_text
from scenario.llm.client import litellm_module
from scenario.records import RunRecord
from scenario.reports import report_from_store, write_report
from scenario.store import ResultStore, StoreError
from scenario.testing import MockLLMServer


class SupportAgent(scenario.AgentAdapter):
    """The agent under test: a tiny support bot that answers with a model through litellm."""

    def __init__(self, model: scenario.ModelConfig):
        self.model = model

    async def call(self, input: scenario.AgentInput) -> dict[str, Any]:
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


def demo_scenarios(mock: bool) -> list[dict[str, Any]]:
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


def _build_agents(spec: dict[str, Any], model: scenario.ModelConfig) -> list[Any]:
    return [
        SupportAgent(model),
        scenario.UserSimulatorAgent(),
        scenario.JudgeAgent(criteria=spec["criteria"]),
    ]


async def _run_suite(executor: Any, specs: list[dict[str, Any]], model: scenario.ModelConfig) -> list[scenario.ScenarioResult]:
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


def _print_result(spec: dict[str, Any], result: scenario.ScenarioResult, show_transcript: bool) -> None:
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


def _print_rollup(label: str, results: list[scenario.ScenarioResult], elapsed: float) -> scenario.Usage:
    total = scenario.Usage()
    for result in results:
        total.merge(result.usage)
    print(f"  {label}: {len(results)} scenarios in {elapsed:.2f}s wall — {total.calls} calls, "
          f"{total.input_tokens} in / {total.output_tokens} out tokens, ${total.cost_usd:.6f}")
    for role, totals in total.by_role.items():
        print(f"      {role:>5}: {totals.calls} calls, ${totals.cost_usd:.6f}")
    return total


def _unexpected(spec: dict[str, Any], result: scenario.ScenarioResult, mock: bool) -> bool:
    """An error is always unexpected; against the mock every verdict is known in advance, against
    a real model only the scenarios not marked as expected to fail must pass."""
    if result.error is not None:
        return True
    if spec.get("expect_failure"):
        return mock and result.success
    return not result.success


def _save(specs: list[dict[str, Any]], outcomes: dict[str, list[scenario.ScenarioResult]], store_path: str,
          report_path: str) -> str | None:
    """Store the demo's runs as one batch of suite "demo" (variants "run" and "arun") and write its
    HTML report; returns the batch id, or None when the store cannot be used (the demo's verdict
    does not depend on it)."""
    info = {"description": "scenario demo: the example suite",
            "thresholds": {s["name"]: (0.0 if s.get("expect_failure") else 1.0) for s in specs},
            "scenario_order": [s["name"] for s in specs],
            "scenarios": [{"name": s["name"], "description": s["description"], "criteria": s.get("criteria", [])}
                          for s in specs]}
    try:
        with ResultStore(store_path) as store:
            batch = store.start_batch("demo", planned=len(specs) * len(outcomes), info=info, command="scenario demo")
            store.put_many(RunRecord.from_result(result, suite="demo", scenario=spec["name"], variant=variant,
                                                 batch_id=batch.id)
                           for variant, results in outcomes.items() for spec, result in zip(specs, results))
            store.finish_batch(batch.id)
            write_report(report_from_store(store, batch_id=batch.id), "html", report_path)
        return batch.id
    except (StoreError, OSError) as exc:
        print(f"demo: could not store the results ({exc}); the runs above are unaffected.", file=sys.stderr)
        return None


def _pointers(store_path: str, report_path: str, batch_id: str | None) -> None:
    suite = os.path.join("examples", "suite.yaml")
    print("\nWhere to go next:")
    if os.path.exists(suite):
        print(f"  the example suite   {suite}  (scenarios, agents, thresholds in one file: docs/cli.md)")
    if batch_id is not None:
        print(f"  results             {store_path}, batch {batch_id}  (browse them: scenario view {store_path})")
        print(f"  report              {report_path}")
    run = f"scenario run {suite} --mock" if os.path.exists(suite) else "scenario run SUITE.yaml --mock"
    print(f"  next command        {run}  (then write your own AgentAdapter: docs/getting-started.md)")


async def _main_async(model: scenario.ModelConfig, mock: bool, store_path: str = "", report_path: str = "") -> int:
    specs = demo_scenarios(mock)
    scenario.configure(default_model=model)
    # litellm takes a few seconds to import; load it up front so the timings below are the runs'.
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
    unexpected = sorted({
        f"{spec['name']} ({executor})"
        for executor, results in outcomes.items()
        for spec, result in zip(specs, results)
        if _unexpected(spec, result, mock)
    })
    batch_id = _save(specs, outcomes, store_path, report_path) if store_path else None
    if store_path:
        _pointers(store_path, report_path, batch_id)
    if unexpected or (mock and not same):
        what = ", ".join(unexpected) if unexpected else "run and arun disagreed"
        print(f"\ndemo FAILED: unexpected outcome for {what}. The reasons are printed above each verdict.",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scenario demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="real litellm model to use instead of the mock, e.g. openai/gpt-4o-mini")
    parser.add_argument("--mock", action="store_true", help="force the built-in mock model even if OPENAI_API_KEY is set")
    parser.add_argument("--latency", type=float, default=0.05, help="mock model latency per call in seconds")
    parser.add_argument("--store", default=".scenario/results.db", help="result store for the demo's batch")
    parser.add_argument("--report", default=None, metavar="PATH",
                        help="where to write the HTML report (default: demo-report.html beside the store)")
    args = parser.parse_args(argv)
    if args.report is None:
        args.report = os.path.join(os.path.dirname(args.store) or ".", "demo-report.html")

    use_real = (args.model or os.environ.get("OPENAI_API_KEY")) and not args.mock
    if use_real:
        model = scenario.ModelConfig(model=args.model or "openai/gpt-4o-mini", timeout=60)
        print(f"Using real model {model.model} (credentials from the environment).")
        return asyncio.run(_main_async(model, mock=False, store_path=args.store, report_path=args.report))

    with MockLLMServer(latency=args.latency) as server:
        print(f"Using the built-in mock model at {server.base_url} (offline, deterministic).")
        model = scenario.ModelConfig(model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=30)
        return asyncio.run(_main_async(model, mock=True, store_path=args.store, report_path=args.report))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
