"""What tracing costs: 50 concurrent autopilot scenarios with tracing on vs off, side by side.

Each scenario: a non-model echo agent, the user simulator and the judge, 2 turns, so 4 library
model calls against the mock model at 0.5 s latency (critical path 2 s). "On" is an application
SDK provider with a BatchSpanProcessor exporting over OTLP/HTTP (protobuf) to a local sink process
that accepts and discards (plus the library's usage processor): what a user with a collector has;
"on, no content" adds ``configure(trace_content=False)``; "off" is ``configure(tracing="off")``
with the same provider installed. Each round runs the three modes back to back in a rotating
order, so drift hits all alike; the median of the per-round on/off ratios is reported. Also counts
span objects created with tracing off (target: none).

    .venv/bin/python -m bench.telemetry_overhead [--scenarios 50] [--rounds 7] [--latency 0.5]

Target: wall(on) / wall(off) <= 1.05 under both executors.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import scenario

# Before litellm loads (on the first model call, not on `import scenario`).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parent.parent


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


async def batch(run: Callable[..., Any], scenarios: int) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(*(
        run(
            name=f"bench {i}",
            description=f"Customer {i} asks about delivery.",
            agents=[Echo(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["answers"])],
        )
        for i in range(scenarios)
    ))
    elapsed = time.perf_counter() - started
    bad = [r for r in results if not r.success or r.usage.calls != 4]
    if bad:
        raise SystemExit(f"benchmark scenario did not behave: {bad[0].reasoning} (calls={bad[0].usage.calls})")
    return elapsed


def count_span_objects() -> list[int]:
    from opentelemetry.sdk import trace as sdk_trace
    from opentelemetry.trace import span as api_span

    made = [0]
    for cls in (sdk_trace.Span, api_span.NonRecordingSpan):
        original = cls.__init__

        def counting(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            made[0] += 1
            __original(self, *args, **kwargs)

        cls.__init__ = counting  # type: ignore[method-assign]
    return made


SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_span_sink() -> tuple[subprocess.Popen[str], str]:
    """An OTLP/HTTP endpoint in its own process that answers 200 and drops what it gets."""
    proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    return proc, f"http://127.0.0.1:{port}/v1/traces"


def start_mock_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The mock model in its own process (MockBehavior(latency=..., judge_turns=2) via its command
    line), so its CPU does not compete with the library's for this process's GIL."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenario.testing.mock_llm", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"mock server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sink, endpoint = start_span_sink()

    class Counting(OTLPSpanExporter):
        exported = 0

        def export(self, spans: Any) -> Any:
            Counting.exported += len(spans)
            return super().export(spans)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Counting(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    made = count_span_objects()

    server, base_url = start_mock_server(args.latency)
    try:
        scenario.configure(default_model=scenario.ModelConfig(
            model="openai/gpt-4o-mini", api_base=base_url, api_key="mock", timeout=30))
        for run in (scenario.run, scenario.arun):  # warm-up: imports, pools, connections
            scenario.configure(tracing="auto")
            await batch(run, min(args.scenarios, 10))
        modes = ("on", "on, no content", "off")
        settings = {"on": ("auto", True), "on, no content": ("auto", False), "off": ("off", True)}
        times: dict[str, dict[str, list[float]]] = {n: {m: [] for m in modes} for n in ("run", "arun")}
        cpu: dict[str, float] = {m: 0.0 for m in modes}
        spans_on = 0
        spans_made_off = 0
        for round_index in range(args.rounds):
            order = modes[round_index % 3:] + modes[:round_index % 3]  # rotate: no mode always first
            for name, run in (("run", scenario.run), ("arun", scenario.arun)):
                for mode in order:
                    tracing, content = settings[mode]
                    scenario.configure(tracing=tracing, trace_content=content)
                    provider.force_flush()
                    before_exported = Counting.exported
                    before_made = made[0]
                    cpu_before = time.process_time()
                    times[name][mode].append(await batch(run, args.scenarios))
                    cpu[mode] += time.process_time() - cpu_before
                    provider.force_flush()
                    if mode == "on":
                        spans_on = Counting.exported - before_exported
                    elif mode == "off":
                        spans_made_off += made[0] - before_made
    finally:
        server.terminate()
        server.wait(timeout=10)
        provider.shutdown()
        sink.terminate()
        sink.wait(timeout=10)

    critical = 4 * args.latency
    print(f"telemetry overhead: {args.scenarios} concurrent autopilot scenarios x 4 model calls at "
          f"{args.latency} s latency (critical path {critical:.1f} s), {args.rounds} paired rounds")
    for name in ("run", "arun"):
        off = times[name]["off"]
        for mode in ("on", "on, no content"):
            on = times[name][mode]
            paired = statistics.median(x / y for x, y in zip(on, off))
            print(f"{name:>4}: tracing {mode} / off wall time = {paired:.3f}x median of paired rounds "
                  f"(median {statistics.median(on):.2f} s vs {statistics.median(off):.2f} s; target <= 1.05x)")
    for mode in ("on", "on, no content"):
        print(f"both: tracing {mode} / off process CPU time = {cpu[mode] / cpu['off']:.3f}x  "
              f"(+{(cpu[mode] - cpu['off']) / (2 * args.rounds * args.scenarios) * 1000:.2f} ms CPU per scenario, "
              "most of it the OTLP exporter's encoding on its background thread)")
    print(f"spans exported over OTLP/HTTP per batch with tracing on: {spans_on} ({spans_on / args.scenarios:.0f} per scenario); "
          f"span objects created with tracing off: {spans_made_off} (target 0)")


if __name__ == "__main__":
    asyncio.run(main())
