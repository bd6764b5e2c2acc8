"""Why the thread executor costs more per model call: the hop to the model loop and back.

Every model call a run makes is awaited on the run's loop and executed on the library's one model
loop. Under ``executor="loop"`` all runs share the caller's loop, so completions come back to one
thread in batches; under ``executor="thread"`` each run has its own thread and loop, so every
completion wakes a different thread, which must win the GIL from whoever holds it. This measures
that hop alone (a 10 ms sleep on the model loop instead of litellm) for N concurrent callers as N
threads with one loop each vs N tasks on one loop, in CPU per hop.

    .venv/bin/python -m bench.batch_hops
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

HOPS = 4000


async def remote() -> int:
    await asyncio.sleep(0.01)
    return 1


def threads(n: int) -> float:
    from scenario.llm.client import model_loop

    per = max(20, HOPS // n)
    barrier = threading.Barrier(n + 1)

    def worker() -> None:
        loop = asyncio.new_event_loop()

        async def go() -> None:
            for _ in range(per):
                await asyncio.wrap_future(model_loop.submit(remote()))

        barrier.wait()
        loop.run_until_complete(go())
        loop.close()

    pool = [threading.Thread(target=worker) for _ in range(n)]
    for t in pool:
        t.start()
    cpu = time.process_time()
    barrier.wait()
    for t in pool:
        t.join()
    return (time.process_time() - cpu) / (n * per) * 1e6


def one_loop(n: int) -> float:
    from scenario.llm.client import model_loop

    per = max(20, HOPS // n)

    async def main() -> None:
        async def worker() -> None:
            for _ in range(per):
                await asyncio.wrap_future(model_loop.submit(remote()))

        await asyncio.gather(*(worker() for _ in range(n)))

    cpu = time.process_time()
    asyncio.run(main())
    return (time.process_time() - cpu) / (n * per) * 1e6


def main() -> int:
    from scenario.llm.client import model_loop

    model_loop.loop()
    for n in (50, 200):
        t, loop_us = threads(n), one_loop(n)
        print(f"hop to the model loop and back, {n} concurrent callers: {t:.0f} us CPU as threads, {loop_us:.0f} us on one "
              f"loop; threads / one loop: {t / loop_us:.2f} (reported)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
