"""What the result store costs a batch: 1,000 autopilot runs against the mock model, recorded as a
batch with every record written to SQLite as it finishes (``run_batch(store=...)``, what
``scenario run`` does) versus not stored at all.

Goal: storing adds <= 3% to the batch's wall time. Both batches run in this one process, in
alternating order, against the same mock server (its own process), and the comparison is the
median of the per-round ratios, because the machine is shared and absolute numbers drift.

The wall ratio is noisy on a busy machine, so the store's cost is also measured directly: the CPU
time of the thread doing the writes (serialising the record, the SQLite insert and commit),
as a share of the whole process's CPU time for the stored batch. Wall time inside the writes is
not used: SQLite releases the GIL, and the wait to get it back is time other runs spend working.

    .venv/bin/python -m bench.store_overhead [--runs 1000] [--rounds 3] [--concurrency 50] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.batch_common import agents_for_autopilot, configure_library, mock_server, ratio_line, warm_up
from scenario.records import RunRecord
from scenario.store import ResultStore

GOAL = 1.03


class TimedStore(ResultStore):
    """A ResultStore whose put() adds up the CPU time of the thread writing."""

    spent = 0.0

    def put(self, record: RunRecord) -> None:
        started = time.thread_time()
        try:
            super().put(record)
        finally:
            self.spent += time.thread_time() - started


async def one_batch(runs: int, concurrency: int, store_path: Path | None) -> tuple[float, float, float, int]:
    """Wall seconds of one batch, process CPU seconds, CPU seconds spent writing, rows stored.

    The stored batch goes through run_batch(store=...), the path `scenario run` takes: a new batch
    row, fingerprints, every record written before it is counted, the batch closed at the end.
    """
    import scenario

    specs = [scenario.Scenario(name="parcel", description="A customer asks where their parcel is.",
                               agents=agents_for_autopilot())]
    store = TimedStore(store_path) if store_path is not None else None
    started, cpu = time.perf_counter(), time.process_time()
    result = await scenario.run_batch(specs, runs=runs, max_concurrency=concurrency, suite="bench", store=store)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if result.passed_runs != runs:
        raise SystemExit(f"expected {runs} passing runs, got:\n{result.summary()}")
    stored, spent = 0, 0.0
    if store is not None:
        stored = store.count("bench", batch_id=result.metadata["batch_id"])
        spent = store.spent
        store.close()
    return wall, cpu, spent, stored


async def main(args: argparse.Namespace) -> int:
    ratios, shares = [], []
    with mock_server(latency=args.latency) as url, tempfile.TemporaryDirectory() as tmp:
        configure_library(url)
        await warm_up(url)
        await one_batch(50, args.concurrency, Path(tmp) / "warm.db")  # SQLite, the store module, first writes
        for round_ in range(args.rounds):
            path = Path(tmp) / f"round{round_}.db"
            order = ("plain", "stored") if round_ % 2 == 0 else ("stored", "plain")
            walls = {}
            for kind in order:
                wall, cpu, spent, stored = await one_batch(args.runs, args.concurrency, path if kind == "stored" else None)
                walls[kind] = wall
                if kind == "stored":
                    if stored != args.runs:
                        raise SystemExit(f"expected {args.runs} stored rows, found {stored}")
                    shares.append(spent / cpu)
                    print(f"round {round_ + 1}: stored {stored} records, {1e6 * spent / args.runs:.0f} us CPU per write, "
                          f"{100 * spent / cpu:.2f}% of the batch's CPU time")
            ratio = walls["stored"] / walls["plain"]
            ratios.append(ratio)
            print(f"round {round_ + 1}: plain {walls['plain']:.2f}s, stored {walls['stored']:.2f}s, ratio {ratio:.3f}")
    median = statistics.median(ratios)
    print(ratio_line(f"store overhead, wall ratio stored/plain (median of {len(ratios)})", median, f"<= {GOAL}",
                     median <= GOAL))
    share = statistics.median(shares)
    print(ratio_line("store overhead, CPU inside writes / batch CPU (median)", share, f"<= {GOAL - 1:.2f}",
                     share <= GOAL - 1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02, help="mock model seconds per call")
    sys.exit(asyncio.run(main(parser.parse_args())))
