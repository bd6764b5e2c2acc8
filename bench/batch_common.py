"""Shared pieces of the batch and core benchmarks: the mock server process, a bare-litellm
ceiling, a local agent under test, and timing helpers.

The mock model runs in its own process (``python -m scenario.testing.mock_llm``) so the client
side measured here does not share a GIL or an event loop with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Before litellm is imported anywhere: its bundled price list, no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "openai/gpt-4o-mini"


@contextlib.contextmanager
def mock_server(latency: float = 0.0, rate_limit_above: int | None = None, retry_after: float | None = None,
                judge_turns: int = 2) -> Iterator[str]:
    """Start the mock model in a separate process; yield its base URL; stop it after."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "scenario.testing.mock_llm", "--port", "0", "--latency", str(latency),
           "--judge-turns", str(judge_turns)]
    if rate_limit_above is not None:
        cmd += ["--rate-limit-above", str(rate_limit_above)]
    if retry_after is not None:
        cmd += ["--retry-after", str(retry_after)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"mock server did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def configure_library(base_url: str, timeout: float = 30.0) -> None:
    import scenario

    scenario.configure(default_model=scenario.ModelConfig(model=MODEL, api_base=base_url, api_key="mock",
                                                          timeout=timeout))


@dataclass
class Measure:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"wall {self.wall:.2f}s, cpu {self.cpu:.2f}s"


@contextlib.contextmanager
def measured() -> Iterator[Measure]:
    """Wall and process CPU (all threads) of the block."""
    m = Measure(0.0, 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    yield m
    m.wall = time.perf_counter() - wall
    m.cpu = time.process_time() - cpu


_CAPTURED: list[dict[str, Any]] = []


async def capture_requests(base_url: str) -> list[dict[str, Any]]:
    """The exact litellm arguments of one autopilot run (simulator and judge calls, judge tools
    included), so the bare-litellm ceiling sends the same requests the batch sends."""
    import scenario
    from scenario.llm import client as models

    configure_library(base_url)
    original = models.call_model
    captured: list[dict[str, Any]] = []

    async def spy(request: Any) -> Any:  # the innermost call of the layers: one attempt's litellm arguments
        captured.append(dict(request.kwargs))
        return await original(request)

    models.call_model = spy
    try:
        await scenario.arun(name="capture", description="A customer asks about a parcel.", agents=agents_for_autopilot())
    finally:
        models.call_model = original
    _CAPTURED[:] = captured
    return captured


async def bare_litellm(base_url: str, calls: int, concurrency: int, setup_inline: bool = False) -> Measure:
    """The ceiling: ``litellm.acompletion`` on one loop, ``concurrency`` workers, no library code,
    replaying the requests of one autopilot run (see :func:`capture_requests`).

    ``setup_inline``: run litellm's synchronous set-up on the loop, as the library does for
    providers where that is safe (``scenario.llm.model_loop.setup_may_run_inline``), instead of on
    the loop's thread pool as plain litellm does.

    It runs on the library's model loop, the one loop that drives litellm in this process:
    litellm's logging worker and client cache are bound to one loop, and driving it from a second
    loop in the same process (this benchmark's own) makes both measurements worse.
    """
    from scenario.llm.client import model_loop

    if not _CAPTURED:
        await capture_requests(base_url)
    return await asyncio.wrap_future(model_loop.submit(_bare_litellm(list(_CAPTURED), calls, concurrency, setup_inline)))


async def _bare_litellm(requests: list[dict[str, Any]], calls: int, concurrency: int, setup_inline: bool) -> Measure:
    from scenario.llm.client import litellm_module, model_loop

    litellm = litellm_module()
    remaining = iter(range(calls))

    async def worker() -> None:
        for n in remaining:
            call = litellm.acompletion(**requests[n % len(requests)])
            if setup_inline:  # on the model loop already: a task with the permission, no hop
                await model_loop.run(call, setup_inline=True)
            else:
                await call

    with measured() as m:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return m


async def warm_up(base_url: str, freeze: bool = True) -> None:
    """Import litellm and open a connection, so no measurement pays for start-up.

    ``freeze``: move every object alive now out of the cyclic GC (see below). Benchmarks of
    ``run_batch`` against bare litellm pass False: a batch does that itself
    (``configure(batch_gc_freeze=...)``), and bare litellm as users call it does not."""
    import scenario

    configure_library(base_url)
    # litellm prints a "Give Feedback / Get Help" banner for every exception it maps; a bench
    # that provokes thousands of 429s would drown its own output in them.
    from scenario.llm.client import litellm_module

    litellm_module().suppress_debug_info = True
    await scenario.arun(name="warm-up", description="warm up", agents=agents_for_autopilot())
    await capture_requests(base_url)
    await bare_litellm(base_url, 20, 10)
    # litellm leaves ~300k objects behind at import; freezing them out of the cyclic GC keeps
    # full collections from dominating whichever measurement happens to trigger one. Done once
    # here, so the ceiling and the library are measured under the same conditions.
    import gc

    gc.collect()
    if freeze:
        gc.freeze()
    else:
        gc.unfreeze()  # an earlier warm-up's freeze in this process


_ECHO_CLASS: Any = None


def EchoAgent() -> Any:  # noqa: N802 - used like a class (a factory of adapters)
    """The agent under test: answers locally, so every model call is the simulator's or judge's.
    The class is made on first use so importing this module stays cheap."""
    global _ECHO_CLASS
    if _ECHO_CLASS is None:
        import scenario

        class Echo(scenario.AgentAdapter):
            async def call(self, input: scenario.AgentInput) -> str:
                return "You said: " + input.last_new_user_message_str()

        _ECHO_CLASS = Echo
    return _ECHO_CLASS()


def agents_for_autopilot() -> list[Any]:
    import scenario

    return [EchoAgent(), scenario.UserSimulatorAgent(), scenario.JudgeAgent(criteria=["The agent answers"])]


def ratio_line(label: str, value: float, goal: str, ok: bool) -> str:
    return f"{label}: {value:.3f} (goal {goal}) {'OK' if ok else 'MISSED'}"


def autopilot_spec(name: str = "bench", description: str = "A customer asks about a parcel.") -> Any:
    import scenario

    return scenario.Scenario(name=name, description=description, agents=agents_for_autopilot())


def rss_bytes() -> int:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
