"""Throughput of the mock model server: 2000 chat completions at concurrency 200.

The server runs in a separate process (``python -m scenario.testing.mock_llm``)
so client and server do not share an event loop or a GIL, and the number
reflects what the server alone can sustain on its one event-loop core.
Benchmarks push litellm at ~250 calls/s through it, so this should stay well
above that (target: >= 400 requests/s).

    .venv/bin/python -m bench.mock_server_throughput [--requests 2000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A judge-sized request body, so JSON parsing and role detection are exercised.
_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You judge a conversation. Scenario: a user asks for a refund."},
            {
                "role": "user",
                "content": '<message role="user">I want a refund</message>\n'
                '<message role="assistant">Sure, let me help.</message>',
            },
        ],
        "tools": [
            {"type": "function", "function": {"name": "continue_test", "parameters": {"type": "object", "properties": {}}}},
            {
                "type": "function",
                "function": {
                    "name": "finish_test",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "criteria": {
                                "type": "object",
                                "properties": {"polite": {"type": "object", "description": "Agent is polite"}},
                            },
                            "reasoning": {"type": "string"},
                        },
                    },
                },
            },
        ],
    }
).encode()


def start_server() -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenario.testing.mock_llm", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"mock server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


async def run(base_url: str, total: int, concurrency: int) -> tuple[float, int]:
    import aiohttp

    url = f"{base_url}/chat/completions"
    counter = iter(range(total))
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for _ in counter:
            async with session.post(url, data=_BODY, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status != 200:
                    failures += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up: open the connections before timing.
        health = f"{base_url.removesuffix('/v1')}/health"

        async def warm() -> None:
            async with session.get(health) as resp:
                await resp.read()

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return total / elapsed, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()

    proc, base_url = start_server()
    try:
        rps, failures = asyncio.run(run(base_url, args.requests, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{rps:.0f} requests/s ({args.requests} requests, concurrency {args.concurrency}, {failures} non-200)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
