"""Run pytest-asyncio-concurrent groups inside pytest-xdist workers.

Why this exists
---------------
pytest-asyncio-concurrent takes its members out of ``session.items`` at the start of the run
loop and runs every group after the loop. In an xdist worker that breaks twice: the worker
looks tests up by their index in ``session.items`` (now shifted, so it runs the wrong tests and
the controller reports a crash), and every worker would run every group afterwards anyway.

In a worker this plugin puts the items back before xdist's loop starts, runs the members xdist
hands to this worker, and turns the after-loop group runs into no-ops. Members of one group
that arrive back to back are held until the last of them and then run together as one
concurrent group (just those members), so a group keeps its concurrency within each worker.
xdist's worker stamps every report with the index of the test it is running; while a held
batch runs, the index is pointed at the test each report belongs to, then put back.
"""

from __future__ import annotations

from typing import Any

import pytest

from scenario.pytest_plugin._loops import is_group_member


def _find_interactor(config: pytest.Config) -> Any:
    try:
        from xdist.remote import WorkerInteractor
    except ImportError:  # pragma: no cover - workers always have xdist
        return None
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, WorkerInteractor) and hasattr(plugin, "item_index"):
            return plugin
    return None


class XdistGroupRunner:
    """Registered in xdist workers when pytest-asyncio-concurrent is active."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._items: list[pytest.Item] | None = None
        self._index_of: dict[str, int] = {}
        self._held: list[pytest.Item] = []
        self._running_batch = False

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._items = list(session.items)
        self._index_of = {item.nodeid: index for index, item in enumerate(self._items)}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        # Runs after the group plugin's wrapper removed its members, before xdist's loop.
        if self._items is not None:
            session.items[:] = self._items
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if not is_group_member(item):
            return None
        if not getattr(item, "group").children_have_same_parent:  # set by pytest-asyncio-concurrent
            # The group plugin marked these members skipped (a group must live in one module or
            # class); pytest's own protocol reports the skip without setting anything up.
            return None
        self._held.append(item)
        interactor = _find_interactor(self.config)
        same_group = (
            nextitem is not None
            and is_group_member(nextitem)
            and getattr(nextitem, "group") is getattr(item, "group")
            and nextitem.parent is item.parent
        )
        if same_group and interactor is not None:
            return True  # runs with the next member(s) of its group
        batch, self._held = self._held, []
        self._run_batch(batch, nextitem, interactor)
        return True

    def _run_batch(self, batch: list[Any], nextitem: pytest.Item | None, interactor: Any) -> None:
        group = batch[0].group
        saved = (group.children, group.children_finalizer)
        group.children = list(batch)
        group.children_finalizer = {member: [] for member in batch}
        current_index = getattr(interactor, "item_index", None)
        self._running_batch = True
        try:
            batch[0].ihook.pytest_runtest_protocol_async_group(group=group, nextgroup=nextitem)
        finally:
            self._running_batch = False
            group.children, group.children_finalizer = saved
            if interactor is not None:
                interactor.item_index = current_index

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self._running_batch and report.nodeid in self._index_of:
            interactor = _find_interactor(self.config)
            if interactor is not None:
                interactor.item_index = self._index_of[report.nodeid]

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_runtest_protocol_async_group(self, group: Any, nextgroup: Any) -> bool | None:
        # The group plugin's after-loop pass: its members already ran above.
        return None if self._running_batch else True
