"""How fast ``scenario view`` renders its pages on a big store: 100,000 runs over 200 batches.

Goal: the batches page, a batch page and a run page each render server-side in well under a
second (goal: <= 0.5 s, median of several requests through the real app, in process). The store
is generated here (``put_many`` through the public store API, 500 runs a batch, every fifth run
failing, some erroring with a traceback), so the figures cover the real queries and templates.

Absolute times on a shared machine are noise, so each page is also timed side by side on a small
store (2 batches) in the same run, and the ratio big/small says whether a page's cost grows with
the store (it should not for the batch and run pages: they read one batch or one run).

    .venv/bin/python -m bench.view_pages [--runs 100000] [--batches 200] [--requests 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.batch_common import ratio_line

GOAL_SECONDS = 0.5


def make_store(path: Path, runs: int, batches: int) -> dict[str, str]:
    """Fill ``path``; returns ids of a batch and a failing run to request (from the middle)."""
    from scenario.records import RunRecord, run_id
    from scenario.store import ResultStore
    from scenario.types import CriterionResult, ModelCall, ScenarioResult, Usage

    per_batch = runs // batches
    scenarios = [f"scenario {n:02d}" for n in range(25)]
    usage = Usage()
    usage.record(role="user", model="openai/gpt-4o-mini", input_tokens=400, output_tokens=60, cost_usd=0.0001)
    usage.record(role="judge", model="openai/gpt-4o-mini", input_tokens=900, output_tokens=90, cost_usd=0.0002)
    messages = [{"role": "user", "content": "Hello, my parcel is late. Where is it? " * 3},
                {"role": "assistant", "content": "Sorry to hear that! Could you share your order number? " * 3},
                {"role": "user", "content": "It is 12345."},
                {"role": "assistant", "content": "Thanks, it arrives tomorrow.",
                 "tool_calls": [{"id": "c1", "type": "function",
                                 "function": {"name": "track", "arguments": '{"order": 12345}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"eta": "tomorrow"}'}]
    calls = [ModelCall(role="user", model="gpt-4o-mini", input_tokens=400, output_tokens=60, cost_usd=0.0001,
                       latency=0.4),
             ModelCall(role="judge", model="gpt-4o-mini", input_tokens=900, output_tokens=90, cost_usd=0.0002,
                       latency=0.6)]
    target: dict[str, str] = {}
    with ResultStore(path) as store:
        for b in range(batches):
            batch = store.start_batch("bench-suite", planned=per_batch,
                                      info={"thresholds": {s: 0.8 for s in scenarios}, "scenario_order": scenarios})
            records: list[RunRecord] = []
            for i in range(per_batch):
                scenario = scenarios[i % len(scenarios)]
                index = i // len(scenarios)
                status = "failed" if i % 5 == 0 else "error" if i % 97 == 0 else "passed"
                result = None
                if status != "error":
                    result = ScenarioResult(
                        success=status == "passed", messages=messages, usage=usage, model_calls=calls,
                        reasoning="The agent asked for the order number." if status == "passed"
                        else "The agent never asked for the order number.",
                        criteria=[CriterionResult(requirement="Asks for the order number",
                                                  status="passed" if status == "passed" else "failed",
                                                  reasoning="Turn 1.")])
                record = RunRecord(
                    id=run_id("bench-suite", scenario, "default", index), suite="bench-suite", scenario=scenario,
                    index=index, status=status, result=result, duration=1.0 + (i % 7) / 10, usage=usage,
                    started_at=time.time(), batch_id=batch.id,
                )
                if status == "error":
                    record.error_type, record.error_message = "KeyError", "'choices'"
                    record.error_traceback = 'Traceback (most recent call last):\n  File "agent.py", line 3\nKeyError'
                records.append(record)
            store.put_many(records)
            store.finish_batch(batch.id)
            if b == batches // 2:
                target["batch"] = batch.id
                target["run"] = records[0].id
    return target


def time_pages(path: Path, target: dict[str, str], requests: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from scenario.view import create_app

    pages = {"batches page": "/", "batch page": f"/batch/{target['batch']}",
             "run page": f"/batch/{target['batch']}/run/{target['run']}"}
    medians: dict[str, float] = {}
    with TestClient(create_app(path), base_url="http://127.0.0.1") as client:
        for name, url in pages.items():
            assert client.get(url).status_code == 200, url  # warm: templates compiled, pages cached by SQLite
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200
            medians[name] = statistics.median(times)
    return medians


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--requests", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="view-bench-") as tmp:
        big, small = Path(tmp) / "big.db", Path(tmp) / "small.db"
        started = time.perf_counter()
        big_target = make_store(big, args.runs, args.batches)
        print(f"generated {args.runs:,} runs in {args.batches} batches in {time.perf_counter() - started:.1f}s "
              f"({big.stat().st_size / 1e6:.0f} MB) (reported)")
        small_target = make_store(small, 2 * args.runs // args.batches, 2)
        big_times = time_pages(big, big_target, args.requests)
        small_times = time_pages(small, small_target, args.requests)
    ok = True
    for name, seconds in big_times.items():
        good = seconds <= GOAL_SECONDS
        ok = ok and good
        print(ratio_line(f"{name} on {args.runs:,} runs / {args.batches} batches, seconds", seconds,
                         f"<= {GOAL_SECONDS}", good))
        print(f"{name}: big store / 2-batch store = {seconds / small_times[name]:.2f}x "
              f"({seconds * 1000:.0f} ms vs {small_times[name] * 1000:.0f} ms) (reported)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
