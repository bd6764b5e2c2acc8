"""WorkerLoads: the one least-loaded choice of the multi-worker backends (processes, Ray)."""

from __future__ import annotations

from scenario.batch.backends.base import WorkerLoads


def test_a_run_goes_to_the_worker_holding_fewest_runs_and_the_lowest_index_on_a_tie():
    loads = WorkerLoads(3)
    assert [loads.assign(run) for run in ("a", "b", "c", "d")] == [0, 1, 2, 0]
    loads.release(1, "b")
    assert loads.assign("e") == 1


def test_a_worker_that_stopped_taking_gets_nothing_more_but_keeps_its_runs_to_report():
    loads = WorkerLoads(2)
    loads.assign("a")
    loads.stop_taking(0)
    assert [loads.assign(run) for run in ("b", "c")] == [1, 1]
    assert loads.taking_count == 1
    assert loads.holding(["a", "b"]) == [(1, ["b"])]  # commands go only to workers that take them
    assert loads.retire(0) == {"a"}


def test_retiring_a_worker_hands_back_its_runs_and_none_left_means_no_worker():
    loads = WorkerLoads()
    assert loads.assign("a") is None
    which = loads.add_worker()
    assert loads.assign("a") == which and loads.assign("b") == which
    assert loads.retire(which) == {"a", "b"}
    assert loads.retire(which) == set()
    assert loads.assign("c") is None and len(loads) == 1


def test_cancel_lists_name_only_the_runs_each_worker_holds():
    loads = WorkerLoads(2)
    for run in ("r1", "r2", "r3", "r4"):
        loads.assign(run)
    assert loads.holding(["r4", "r1", "r9"]) == [(0, ["r1"]), (1, ["r4"])]
