"""``python -m scenario.trace_demo``: run one scenario against the mock model and draw its spans.

A front end (like ``scenario.demo``): it drives the library from the top, so the telemetry room it
shows off never imports the scenario runner, the mock server or the package's front door. It
renders the trace shown in docs/observability.md. With ``--phoenix URL`` the spans go over
OTLP/HTTP to that Arize Phoenix server and the tree is drawn from what Phoenix stores (read back
over its REST API); otherwise from an in-memory exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import scenario
from scenario.llm.client import litellm_module
from scenario.telemetry import tracer as telemetry
from scenario.telemetry.spans import ATTR_THREAD_ID, SPAN_RUN
from scenario.telemetry.tree import build_forest, read_phoenix_spans, render_tree
from scenario.testing import MockLLMServer

#: Spans a whole demo trace has (run, 2 turns, 6 agent calls, 4 model calls): Phoenix is polled
#: until the trace is complete.
DEMO_TRACE_SPANS = 13


class SupportAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"Happy to help with: {input.last_new_user_message_str()}"


def _in_memory_exporter() -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


def _spans_from_phoenix(base_url: str, thread_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The demo run's spans as Phoenix stores them, once the whole trace has arrived (or after
    ``timeout`` seconds, with what has)."""
    telemetry.shutdown_private_provider()  # flushes what is buffered
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in read_phoenix_spans(base_url)
                   if (r.get("attributes") or {}).get(ATTR_THREAD_ID) == thread_id or r["name"] != SPAN_RUN]
        roots = [n for n in build_forest(records) if n.attributes.get(ATTR_THREAD_ID) == thread_id]
        if roots and len(list(roots[0].walk())) >= DEMO_TRACE_SPANS or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a demo scenario against the mock model, export its spans, print the tree."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = argparse.ArgumentParser(prog="python -m scenario.trace_demo", description=main.__doc__)
    parser.add_argument("--phoenix", help="base URL of a Phoenix server, e.g. http://127.0.0.1:6006")
    args = parser.parse_args(argv)

    memory = None
    if args.phoenix:
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = args.phoenix.rstrip("/") + "/v1/traces"
        scenario.configure(tracing="otlp")
    else:
        memory = _in_memory_exporter()

    litellm_module()  # imported up front, so the first model span times the call, not the import
    with MockLLMServer(latency=0.2) as server:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=server.base_url, api_key="mock", timeout=10))
        result = asyncio.run(scenario.run(
            name="refund request",
            description="A customer asks for a refund for a parcel that arrived damaged.",
            agents=[SupportAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["offers a refund"])],
        ))
    if memory is not None:
        records: list[Any] = list(memory.get_finished_spans())
    else:
        records = _spans_from_phoenix(args.phoenix.rstrip("/"), result.thread_id or "")
    roots = [n for n in build_forest(records) if n.attributes.get(ATTR_THREAD_ID) == result.thread_id]
    print(render_tree(roots))
    return 0 if roots else 1


if __name__ == "__main__":
    raise SystemExit(main())
