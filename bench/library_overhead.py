"""The library's own CPU per model call under each door, with litellm replaced by an in-process fake.

litellm's 3-5 ms of CPU per call dwarfs and blurs everything the library adds around a call (the
hop to the model loop and back, the engine, spans, usage). Here ``litellm.acompletion`` is
replaced by a coroutine that sleeps ``--latency`` seconds on the model loop and answers like the
mock model (same simulator text, judge tool calls), so what is measured is the library alone:
N concurrent autopilot scenarios (4 model calls each) via ``run`` and ``arun`` (``asyncio.gather``)
and via ``run_batch`` with ``executor="thread"`` and ``"loop"``. For each: CPU per model call,
split by thread (the caller's loop, the model loop, worker threads; read from
``/proc/self/task/*/schedstat``) and the context switches per run, the signature of waking many
threads. Rounds are interleaved; the best round counts.

    .venv/bin/python -m bench.library_overhead [--runs 200] [--latency 0.01] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import threading
import types
from typing import Any

from bench.batch_common import agents_for_autopilot, configure_library, measured, ratio_line

DOORS = ("arun", "run", "loop", "thread")


def install_fake_litellm(latency: float) -> None:
    """Answer every model call in process (after ``latency`` s on the model loop), like the mock."""
    from scenario.llm import model_loop
    from scenario.testing.mock_behavior import (
        ChatRequest,
        MockBehavior,
        RequestMarkers,
        build_reply,
        classify,
    )

    behavior = MockBehavior()
    real = model_loop.litellm_module()

    async def acompletion(**kwargs: Any) -> Any:
        if latency:
            await asyncio.sleep(latency)
        messages, tools = kwargs["messages"], kwargs.get("tools") or []
        text = "\n".join(m["content"] for m in messages if isinstance(m.get("content"), str))
        request = ChatRequest(model=kwargs["model"], messages=messages, tools=tools, tool_choice=kwargs.get("tool_choice"),
                              stream=False, include_usage=False, role=classify(messages, tools), text=text,
                              prompt_chars=len(text), markers=RequestMarkers())
        reply = build_reply(request, behavior)
        calls = []
        if reply.tool_name:
            calls = [{"id": "call_1", "type": "function",
                      "function": {"name": reply.tool_name, "arguments": reply.tool_arguments}}]
        message = types.SimpleNamespace(content=reply.content, tool_calls=calls)
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=message)], model=kwargs["model"],
                                     usage=types.SimpleNamespace(prompt_tokens=10, completion_tokens=5, total_tokens=15),
                                     _hidden_params={"response_cost": 1e-5})

    # The module object litellm_module() hands out (model_loop owns it). The fake has no synchronous
    # set-up to run inline or on a thread, and no provider lookup (so none is asked for).
    model_loop._litellm = types.SimpleNamespace(acompletion=acompletion, Timeout=real.Timeout,  # noqa: SLF001
                                                completion_cost=real.completion_cost)


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far per thread group (exact: schedstat counts nanoseconds)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as fh:
                seconds = int(fh.read().split()[0]) / 1e9
        except OSError:
            continue
        name = names.get(int(tid), "")
        group = ("caller" if name == "MainThread" else "model loop" if name == "scenario-model-loop"
                 else "workers" if name.startswith("scenario-") else "other")
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def context_switches() -> int:
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as fh:
                total += sum(int(line.split()[1]) for line in fh if "ctxt_switches" in line)
        except OSError:
            continue
    return total


async def one_round(door: str, runs: int) -> dict[str, Any]:
    import scenario

    before, switches = thread_cpu(), context_switches()
    with measured() as m:
        if door in ("run", "arun"):
            results = await asyncio.gather(*(getattr(scenario, door)(name=f"o{i}", description="A parcel question.",
                                                                      agents=agents_for_autopilot())
                                             for i in range(runs)))
            assert all(r.success and r.usage.calls == 4 for r in results)
        else:
            specs = [scenario.Scenario(name="o", description="A parcel question.", agents=agents_for_autopilot())]
            result = await scenario.run_batch(specs, runs=runs, executor=door, max_concurrency=runs)
            assert result.passed_runs == runs and result.usage.calls == 4 * runs
    after = thread_cpu()
    calls = 4 * runs
    return {"cpu": 1000 * m.cpu / calls, "wall": m.wall, "switches": (context_switches() - switches) / runs,
            "split": {k: 1000 * (after.get(k, 0.0) - before.get(k, 0.0)) / calls for k in after}}


async def main(args: argparse.Namespace) -> int:
    import scenario

    configure_library("http://127.0.0.1:9")  # never contacted: the fake answers
    install_fake_litellm(args.latency)
    for door in DOORS:  # warm-up: threads, loops, imports
        await one_round(door, 20)
    gc.collect()
    gc.freeze()
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for door in DOORS:
            measured_round = await one_round(door, args.runs)
            if door not in best or measured_round["cpu"] < best[door]["cpu"]:
                best[door] = measured_round
    print(f"library CPU per model call, litellm faked ({args.latency}s per call), {args.runs} concurrent autopilot runs "
          f"x 4 calls (best of {args.rounds}):")
    for door, facts in best.items():
        split = ", ".join(f"{k} {v:.3f}" for k, v in sorted(facts["split"].items()) if v >= 0.001)
        print(f"  {door:6}: {facts['cpu']:.3f} ms ({split}); {facts['switches']:.1f} context switches per run")
    ratio = best["run"]["cpu"] / best["arun"]["cpu"]
    print(ratio_line("library CPU per model call, run / arun", ratio, "<= 1.10", ratio <= 1.10))
    ratio = best["thread"]["cpu"] / best["loop"]["cpu"]
    print(ratio_line("library CPU per model call, batch executor thread / loop", ratio, "<= 1.10", ratio <= 1.10))
    del scenario
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args())))
