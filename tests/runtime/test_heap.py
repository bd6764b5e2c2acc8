"""While batches run, objects alive at their start sit out of the cyclic GC; afterwards everything
is collectable again, and garbage from before the batch is reclaimed."""

from __future__ import annotations

import gc
import weakref

import pytest

import scenario
from scenario.runtime.heap import frozen_heap
from tests.helpers.agents import EchoAgent


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()  # a clean start whatever ran before
    yield
    gc.unfreeze()


def _visible_to_the_collector(obj) -> bool:
    return any(o is obj for o in gc.get_objects())  # frozen objects are in no generation


def test_the_heap_is_frozen_inside_and_given_back_after():
    before = [object()]
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0 and not _visible_to_the_collector(before)
    assert gc.get_freeze_count() == 0 and _visible_to_the_collector(before)


def test_overlapping_batches_share_one_freeze_undone_by_the_last():
    # Visibility, not freeze counts: frozen objects may be freed (by reference counting) meanwhile.
    before = [object()]
    first, second = frozen_heap(), frozen_heap()
    first.__enter__()
    try:
        second.__enter__()
        try:
            assert not _visible_to_the_collector(before)
        finally:  # the first batch ends while the second still runs
            first.__exit__(None, None, None)
        assert not _visible_to_the_collector(before)  # not the last one out: still frozen
    finally:
        second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0 and _visible_to_the_collector(before)


def test_an_application_that_froze_its_own_heap_keeps_it_as_it_was():
    gc.freeze()
    made_after_the_apps_freeze = [object()]
    with frozen_heap():
        assert _visible_to_the_collector(made_after_the_apps_freeze)  # we did not freeze again
    assert gc.get_freeze_count() > 0  # nor unfreeze what the application froze


def test_with_the_collector_disabled_nothing_is_frozen():
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_switched_off_nothing_is_frozen():
    with frozen_heap(enabled=False):
        assert gc.get_freeze_count() == 0


class Cycle:
    def __init__(self):
        self.me = self


class SeesTheHeap(EchoAgent):
    def __init__(self):
        super().__init__()
        self.freeze_counts: list[int] = []

    async def call(self, input):
        self.freeze_counts.append(gc.get_freeze_count())
        return await super().call(input)


SCRIPT = [scenario.user("hi"), scenario.agent(), scenario.succeed()]


@pytest.mark.asyncio
@pytest.mark.parametrize("executor", ["thread", "loop"])
async def test_a_batch_runs_on_a_frozen_heap_and_old_garbage_is_reclaimed_after_it(configured, executor):
    garbage = Cycle()
    gone = weakref.ref(garbage)
    del garbage  # a reference cycle: only the cyclic collector can reclaim it
    agent = SeesTheHeap()
    spec = scenario.Scenario(name="heap", description="d", agents=lambda: [agent], script=SCRIPT)
    result = await scenario.run_batch([spec], runs=3, executor=executor)
    assert result.passed_runs == 3
    assert len(agent.freeze_counts) == 3 and all(count > 0 for count in agent.freeze_counts)
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None


@pytest.mark.asyncio
async def test_configure_batch_gc_freeze_false_leaves_the_heap_alone(configured):
    scenario.configure(batch_gc_freeze=False)
    agent = SeesTheHeap()
    spec = scenario.Scenario(name="heap", description="d", agents=lambda: [agent], script=SCRIPT)
    result = await scenario.run_batch([spec], runs=2)
    assert result.passed_runs == 2 and agent.freeze_counts == [0, 0]


def test_configure_batch_gc_freeze_takes_a_bool():
    with pytest.raises(scenario.ScenarioConfigError, match=r"batch_gc_freeze='yes'.*True or False"):
        scenario.configure(batch_gc_freeze="yes")

