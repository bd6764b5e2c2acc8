"""pytest plugin for scenario, loaded automatically through the ``pytest11`` entry point.

Nothing changes for a test suite that does not use it, except one fix: sessions mixing
pytest-asyncio tests and pytest-asyncio-concurrent groups no longer crash (see ``_loops``).

What it adds (docs/pytest.md has the patterns):

- ``@pytest.mark.scenario(runs=N, min_pass_rate=0.8, max_concurrency=K)``: the test body runs
  N times concurrently and the test passes when the pass rate reaches the threshold; the
  failure lists the failed runs and why. ``--scenario-runs``, ``--scenario-min-pass-rate``,
  ``--scenario-max-concurrency`` (or the ``scenario_*`` ini keys) set the defaults; the
  marker's own values win.
- Every ``scenario.run``/``arun`` result inside a test is attributed to that test. A table at
  the end of the session shows runs, pass rate, time and cost per scenario test and the total
  cost; ``--scenario-report=PATH`` writes the same as JSON; JUnit XML gets the figures as test
  properties. Under pytest-xdist the figures ride on the test reports to the controller.
- langwatch-scenario's ``@pytest.mark.agent_test`` marker and its ``--headless`` and
  ``--scenario-debug`` options are registered, so suites written for it run unchanged:
  the marker only labels a test, ``--headless`` has nothing to hide (no browser view here),
  ``--scenario-debug`` prints each conversation as it happens.
- With pytest-rerunfailures (installed with the ``pytest`` extra), a test rerun by
  ``@pytest.mark.flaky(reruns=N)`` or ``--reruns`` shows its reruns in the table and report.
- ``--scenario-store PATH`` (or the ``scenario_store`` ini key) records every scenario run of
  the session as one batch of a result store, for ``scenario view``/``report``/``compare``
  (see ``_store``).
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

import pytest

from scenario.events import ResultCollector, current_collector
from scenario.pytest_plugin import _store, _summary
from scenario.pytest_plugin._loops import (
    GroupLoop,
    bound_fixture_function,
    fixture_on_loop,
    is_async_fixture,
    is_group_member,
    member_active,
)
from scenario.pytest_plugin._repeat import (
    RunOutcome,
    make_async_wrapper,
    make_own_loop_wrapper,
    make_sync_wrapper,
)
from scenario.pytest_plugin._settings import (
    MARKER,
    MARKER_HELP,
    OPTION_NAMES,
    REPORT_OPTION,
    RepeatSettings,
    SettingError,
    argparse_type,
    check_marker,
    report_path,
    resolve,
    session_defaults,
)
from scenario.pytest_plugin._xdist import XdistGroupRunner
from scenario.reports.failure_text import explain
from scenario.settings import configure

__all__ = ["ScenarioPytestPlugin"]

PLUGIN_NAME = "scenario-session"

_SETTINGS = pytest.StashKey[RepeatSettings]()
_SETTINGS_ERROR = pytest.StashKey[str]()
_OUTCOMES = pytest.StashKey[list[RunOutcome]]()
_ROW = pytest.StashKey[dict[str, Any]]()
_EXPLAINED = pytest.StashKey[str]()

#: Failed scenario runs explained in full in a failing test's output (the rest are counted).
MAX_EXPLAINED_RUNS = 3

# Markers whose plugins run an async test on a loop of their own choosing.
_ASYNC_RUNNER_MARKERS = ("asyncio", "asyncio_concurrent", "anyio", "trio")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scenario", "scenario: agent simulation tests")
    helps = {
        "runs": "default number of runs for tests marked @pytest.mark.scenario (default 1).",
        "min_pass_rate": "default share of runs (0..1) that must pass for a marked test to pass (default 1.0).",
        "max_concurrency": "default cap on a marked test's runs in flight at once (default: all runs at once).",
    }
    metavars = {"runs": "N", "min_pass_rate": "RATE", "max_concurrency": "K"}
    for key, (flag, ini) in OPTION_NAMES.items():
        group.addoption(
            flag, dest=flag, type=argparse_type(key), default=None, metavar=metavars[key],
            help=helps[key] + f" Overrides ini {ini}; the marker's own value wins.",
        )
        parser.addini(ini, f"scenario: {helps[key]}", default="")
    flag, ini = REPORT_OPTION
    group.addoption(
        flag, dest=flag, default=None, metavar="PATH",
        help="write the scenario summary (runs, pass rate, time, cost per test) as JSON to PATH.",
    )
    parser.addini(ini, "scenario: write the scenario summary as JSON to this path.", default="")
    # langwatch-scenario's options (docs/migrating.md).
    group.addoption(
        "--headless", action="store_true", default=False,
        help="accepted for langwatch-scenario suites; this plugin opens no browser view, so it changes nothing.",
    )
    group.addoption(
        "--scenario-debug", action="store_true", default=False,
        help="print each scenario conversation as it happens (langwatch-scenario's debug flag).",
    )
    _store.add_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", "agent_test: marks an agent scenario test (langwatch-scenario's marker; a label only).")
    if config.getoption("--scenario-debug", default=False):
        configure(verbose=True)
    config.pluginmanager.register(ScenarioPytestPlugin(config), PLUGIN_NAME)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Any:
    """Check ``scenario`` markers where pytest can report them as collection errors."""
    result = yield
    if result is None:
        _reject_marker_on_non_test(collector, name, obj)
        return result
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Function):
            for mark in item.iter_markers(MARKER):
                try:
                    check_marker(mark, item.nodeid)
                except SettingError as exc:
                    pytest.fail(str(exc), pytrace=False)
    return result


def _reject_marker_on_non_test(collector: Any, name: str, obj: object) -> None:
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return
    marks = getattr(obj, "pytestmark", None)
    if not isinstance(marks, list) or not any(getattr(m, "name", None) == MARKER for m in marks):
        return
    if inspect.isclass(collector.obj):
        if name not in vars(collector.obj):
            return  # inherited: reported where it is defined
    elif getattr(obj, "__module__", None) != getattr(collector.obj, "__name__", None):
        return  # imported from elsewhere: reported where it is defined
    kind = "class" if inspect.isclass(obj) else "function"
    wanted = "Test*" if inspect.isclass(obj) else "test_*"
    pytest.fail(
        f"{collector.nodeid}: @pytest.mark.scenario is on {kind} {name!r}, which pytest does not collect as a "
        f"test, so the marker would do nothing. Put it on a test (named {wanted}, or matching your "
        "python_functions/python_classes settings), or remove it.",
        pytrace=False,
    )


def _explain_failures(collector: ResultCollector) -> str:
    """The failed criteria with the judge's reasoning, the error and the last turns, per failed run."""
    failed = [r for r in collector.results if not r.success]
    if not failed:
        return ""
    total = len(collector.results)
    parts = []
    for number, result in enumerate(failed[:MAX_EXPLAINED_RUNS], start=1):
        title = "scenario run did not pass" if total == 1 else f"failed scenario run {number} of {len(failed)}"
        parts.append(explain(result, title=title))
    if len(failed) > MAX_EXPLAINED_RUNS:
        parts.append(f"... and {len(failed) - MAX_EXPLAINED_RUNS} more failed run(s) (see the scenario summary).")
    return "\n\n".join(parts)


class ScenarioPytestPlugin:
    """The per-session half of the plugin (registered as ``scenario-session``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.defaults = session_defaults(config)  # bad ini values stop the session here
        self.report_path = report_path(config)
        self.is_worker = hasattr(config, "workerinput")
        self.group_loop = GroupLoop()
        self.rows: list[dict[str, Any]] = []
        self.reruns: dict[str, int] = {}  # nodeid -> attempts rerun so far (pytest-rerunfailures)
        path = _store.store_path(config)
        recording = path is not None and not config.option.collectonly
        self.session_store: _store.SessionStore | None = (
            _store.SessionStore(config, path) if path is not None and recording else None
        )
        if self.is_worker and config.pluginmanager.has_plugin("asyncio-concurrent"):
            config.pluginmanager.register(XdistGroupRunner(config), "scenario-xdist-groups")

    # -- the session's batch in a result store (--scenario-store) --------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.session_store is not None:
            self.session_store.open()  # before xdist starts its workers: they need the batch id

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.session_store is not None:
            self.session_store.configure_node(node)

    # -- collection ---------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.session_store is not None:
            self.session_store.collected(_thresholds(items, self.defaults))
        for item in items:
            if not isinstance(item, pytest.Function):
                continue
            marks = list(item.iter_markers(MARKER))
            if not marks:
                continue
            try:
                settings = resolve(marks, self.defaults, item.nodeid)
            except SettingError as exc:  # a marker added after collection by a hook
                item.stash[_SETTINGS_ERROR] = str(exc)
                continue
            self._install(item, settings)

    def _install(self, item: pytest.Function, settings: RepeatSettings) -> None:
        original = item.obj

        def keep(outcomes: list[RunOutcome]) -> None:
            item.stash[_OUTCOMES] = outcomes

        if inspect.iscoroutinefunction(original):
            wrapper = make_async_wrapper(original, settings, keep)
            if not any(item.get_closest_marker(name) for name in _ASYNC_RUNNER_MARKERS):
                # No async plugin claims this test: run it on a private loop instead of
                # letting pytest skip it as "async def functions are not natively supported".
                wrapper = make_own_loop_wrapper(wrapper)
        elif inspect.isasyncgenfunction(original) or inspect.isgeneratorfunction(original):
            return  # not a runnable test body; pytest and its plugins report it as such
        else:
            wrapper = make_sync_wrapper(original, settings, keep)
        item.obj = wrapper
        item.stash[_SETTINGS] = settings

    # -- running ------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        message = item.stash.get(_SETTINGS_ERROR, None)
        if message is not None:
            pytest.fail(message, pytrace=False)
        if is_group_member(item):
            with member_active(item):
                return (yield)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        # Also entered (as a context manager, inside the test's task) by pytest-asyncio-concurrent
        # for its group members, so the collector is per test even when tests share a loop.
        collector = ResultCollector()
        token = current_collector.set(collector)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            if is_group_member(item):
                with member_active(item):  # request.getfixturevalue() in the body
                    return (yield)
            return (yield)
        except BaseException as exc:
            error = exc
            raise
        finally:
            current_collector.reset(token)
            self._record(item, collector, time.perf_counter() - started, error)

    def _record(
        self, item: pytest.Item, collector: ResultCollector, duration: float, error: BaseException | None
    ) -> None:
        settings = item.stash.get(_SETTINGS, None)
        if settings is None and not collector.results:
            return  # not a scenario test
        if self.session_store is not None:
            self.session_store.record(item.nodeid, collector.results)
        path = getattr(item, "path", None)
        row = _summary.build_row(
            nodeid=item.nodeid,
            collector=collector,
            duration=duration,
            error=error,
            settings=settings,
            outcomes=item.stash.get(_OUTCOMES, None),
            test_file=os.path.abspath(str(path)) if path is not None else None,
        )
        item.stash[_ROW] = row
        explained = _explain_failures(collector)
        if explained:
            item.stash[_EXPLAINED] = explained
        item.user_properties.extend(_summary.user_properties(row))
        if row["failures"] and row["outcome"] == "passed":
            # Passed on pass rate with some runs failing: say which, for -rA / -rP readers.
            text = "\n".join(f"run {f['run']}: {f['error']}" for f in row["failures"])
            item.add_report_section("call", "scenario failed runs", text)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        if call.when == "call":
            explained = item.stash.get(_EXPLAINED, None)
            if explained and report.failed:
                # On the failure itself (not a captured-output section) so pytest's JUnit XML
                # puts it in the <failure> text too, and -p no:capture or -s cannot hide it.
                add = getattr(report.longrepr, "addsection", None)
                if add is not None:
                    add("scenario: why the run(s) failed", explained)
                else:
                    report.sections.append(("scenario: why the run(s) failed", explained))
            row = item.stash.get(_ROW, None)
            if row is not None:
                if report.outcome != row["outcome"]:
                    row = dict(row, outcome=report.outcome)  # e.g. xfail turns a failure into "skipped"
                setattr(report, _summary.REPORT_ATTRIBUTE, row)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.outcome == "rerun":  # a failed attempt pytest-rerunfailures will run again
            self.reruns[report.nodeid] = self.reruns.get(report.nodeid, 0) + 1
            return
        row = getattr(report, _summary.REPORT_ATTRIBUTE, None)
        if report.when == "call" and isinstance(row, dict):
            self.rows.append(dict(row, reruns=self.reruns.pop(report.nodeid, 0)))

    # -- pytest-asyncio-concurrent groups -----------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True, optionalhook=True)
    def pytest_runtest_protocol_async_group(self, group: Any, nextgroup: Any) -> Any:
        with self.group_loop.current():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        loop = self.group_loop.active
        if loop is None or not is_async_fixture(fixturedef.func):
            return (yield)
        original = fixturedef.func
        fixturedef.func = fixture_on_loop(bound_fixture_function(fixturedef, request), loop)
        try:
            return (yield)
        finally:
            fixturedef.func = original

    # -- end of session -----------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.session_store is not None:
            self.session_store.close(exitstatus)
        if self.report_path and not self.is_worker:
            path = self.report_path
            if not os.path.isabs(path):
                path = os.path.join(str(self.config.invocation_params.dir), path)
            _summary.write_json(path, self.rows)
            self.written_report = path

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        stored = self.session_store
        if stored is not None and stored.batch_id is not None:
            terminalreporter.write_line(
                f"scenario runs recorded as batch {stored.batch_id} of suite {stored.suite!r} in {stored.path} "
                f"(scenario view {stored.path})"
            )
        if self.rows:
            terminalreporter.write_sep("=", "scenario summary")
            for line in _summary.table_lines(self.rows):
                terminalreporter.write_line(line)
        written = getattr(self, "written_report", None)
        if written:
            terminalreporter.write_line(f"scenario report written to {written}")

    def pytest_unconfigure(self) -> None:
        self.group_loop.close()


def _thresholds(items: list[pytest.Item], defaults: Any) -> dict[str, float]:
    """Each scenario-marked test's min_pass_rate, by node id (unmarked tests: every run passes)."""
    found: dict[str, float] = {}
    for item in items:
        marks = list(item.iter_markers(MARKER))
        if not marks:
            continue
        try:
            found[item.nodeid] = resolve(marks, defaults, item.nodeid).min_pass_rate
        except SettingError:
            continue  # reported on the test itself
    return found
