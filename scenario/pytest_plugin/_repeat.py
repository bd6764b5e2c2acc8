"""Run one test body N times concurrently and decide the test from the pass rate.

The plugin swaps a marked test's function for a wrapper built here. The wrapper keeps the
test's kind: an ``async def`` test gets an ``async def`` wrapper, so pytest-asyncio and
pytest-asyncio-concurrent run it exactly as they would have run the test (same loop, same
group), and a plain test gets a plain wrapper that spreads its runs over threads.

Each run is a fresh call of the test function, so everything the body builds (agents,
conversations, clients) is its own; fixtures are set up once and shared by the runs. Each run
also gets its own :class:`~scenario.events.ResultCollector`, so the scenario results it
produces are attributed to that run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest.outcomes import Exit, Skipped, XFailed

from scenario.concurrency.strategies import SlidingWindow
from scenario.events import ResultCollector, collecting, current_collector
from scenario.pytest_plugin._settings import RepeatSettings
from scenario.rollup import meets, pass_rate
from scenario.runtime.event_loops import drain

# How much of a failed run's error and of a scenario's reasoning the failure message shows.


@dataclass
class RunOutcome:
    """What happened in one run of a repeated test."""

    index: int  # 1-based, as shown to users
    duration: float = 0.0
    error: BaseException | None = None
    collector: ResultCollector = field(default_factory=ResultCollector)

    @property
    def skipped(self) -> bool:
        return isinstance(self.error, Skipped) and not isinstance(self.error, XFailed)

    @property
    def passed(self) -> bool:
        return self.error is None


def _copy_identity(wrapper: Callable[..., Any], original: Callable[..., Any]) -> None:
    # Not functools.wraps: copying __dict__ would carry markers such as pytest-asyncio's
    # "this is an asyncio fixture/test" flags onto a function of a different kind.
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, name, getattr(original, name))
        except (AttributeError, TypeError):
            pass
    # pytest trims tracebacks to start at the real test function; point it there.
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just a run that raised it)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return True if cancelling is None else bool(cancelling())


def make_async_wrapper(
    function: Callable[..., Any], settings: RepeatSettings, on_done: Callable[[list[RunOutcome]], None]
) -> Callable[..., Any]:
    """An ``async def`` that runs ``function`` ``settings.runs`` times on the current loop."""

    async def one_run(index: int, kwargs: dict, gate: Any, parent: ResultCollector | None) -> RunOutcome:
        outcome = RunOutcome(index, collector=ResultCollector(parent))
        async with gate:
            token = current_collector.set(outcome.collector)
            started = time.perf_counter()
            try:
                await function(**kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except asyncio.CancelledError as exc:
                if _cancelling():
                    raise
                outcome.error = exc
            except BaseException as exc:  # a failed run, whatever it raised
                outcome.error = exc
            finally:
                outcome.duration = time.perf_counter() - started
                current_collector.reset(token)
        return outcome

    async def scenario_repeated_test(**kwargs: Any) -> None:
        parent = current_collector.get()
        gate: Any = contextlib.nullcontext()
        if settings.max_concurrency is not None and settings.max_concurrency < settings.runs:
            gate = SlidingWindow(settings.max_concurrency).slot()
        if settings.runs == 1:
            outcomes = [await one_run(1, kwargs, gate, parent)]
        else:
            tasks = [asyncio.ensure_future(one_run(i, kwargs, gate, parent)) for i in range(1, settings.runs + 1)]
            try:
                done = await asyncio.gather(*tasks, return_exceptions=True)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            outcomes = []
            for index, value in enumerate(done, start=1):
                if isinstance(value, RunOutcome):
                    outcomes.append(value)
                elif isinstance(value, (KeyboardInterrupt, SystemExit)):
                    raise value
                else:  # a run cancelled from inside: count it as failed, never lose it
                    outcomes.append(RunOutcome(index, error=value))
        on_done(outcomes)
        judge_runs(outcomes, settings, function)

    _copy_identity(scenario_repeated_test, function)
    return scenario_repeated_test


def make_sync_wrapper(
    function: Callable[..., Any], settings: RepeatSettings, on_done: Callable[[list[RunOutcome]], None]
) -> Callable[..., Any]:
    """A plain function that runs ``function`` ``settings.runs`` times on worker threads."""

    def one_run(index: int, kwargs: dict, parent: ResultCollector | None) -> RunOutcome:
        outcome = RunOutcome(index, collector=ResultCollector(parent))
        started = time.perf_counter()
        with collecting(outcome.collector):
            try:
                function(**kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                outcome.error = exc
        outcome.duration = time.perf_counter() - started
        return outcome

    def scenario_repeated_test(**kwargs: Any) -> None:
        parent = current_collector.get()
        if settings.runs == 1:
            # In the calling thread, so a single run behaves exactly like the plain test.
            outcomes = [one_run(1, kwargs, parent)]
        else:
            workers = min(settings.runs, settings.max_concurrency or settings.runs)
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario-test-run")
            try:
                futures = [
                    pool.submit(contextvars.copy_context().run, one_run, i, kwargs, parent)
                    for i in range(1, settings.runs + 1)
                ]
                outcomes = [future.result() for future in futures]
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        on_done(outcomes)
        judge_runs(outcomes, settings, function)

    _copy_identity(scenario_repeated_test, function)
    return scenario_repeated_test


def make_own_loop_wrapper(async_wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async repeated test on a private loop, for async tests no async plugin claimed.

    The loop is not made the thread's current loop, so nothing is left behind for the next
    test (or for pytest-asyncio-concurrent, which looks for a current loop).
    """

    def scenario_repeated_test(**kwargs: Any) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(async_wrapper(**kwargs))
        finally:
            try:
                drain(loop)
            finally:
                loop.close()

    _copy_identity(scenario_repeated_test, getattr(async_wrapper, "__wrapped__", async_wrapper))
    return scenario_repeated_test


# -- the verdict -----------------------------------------------------------------------------------
def judge_runs(outcomes: list[RunOutcome], settings: RepeatSettings, function: Callable[..., Any]) -> None:
    """Return if the pass rate is met, else raise what pytest should report."""
    for outcome in outcomes:
        if isinstance(outcome.error, Exit):
            raise outcome.error
    counted = [o for o in outcomes if not o.skipped]
    if not counted:  # every run skipped itself: the test is skipped, with the first reason
        raise outcomes[0].error  # type: ignore[misc]
    if meets(sum(1 for o in counted if o.passed), len(counted), settings.min_pass_rate):
        return
    failed = [o for o in counted if not o.passed]
    if len(counted) == 1:
        # One run: let pytest show the original error with its usual detail.
        raise failed[0].error  # type: ignore[misc]
    pytest.fail(failure_message(outcomes, settings, function), pytrace=False)


def failure_message(outcomes: list[RunOutcome], settings: RepeatSettings, function: Callable[..., Any]) -> str:
    counted = [o for o in outcomes if not o.skipped]
    passed = sum(1 for o in counted if o.passed)
    rate = pass_rate(passed, len(counted))
    lines = [
        f"{passed} of {len(counted)} runs passed ({rate:.0%}); this test needs at least "
        f"{settings.min_pass_rate:.0%} (min_pass_rate={settings.min_pass_rate:g}).",
        "Failed runs:",
    ]
    if len(counted) < len(outcomes):
        lines[0] += f" {len(outcomes) - len(counted)} skipped run(s) not counted."
    test_file = _source_file(function)
    for outcome in counted:
        if outcome.passed:
            continue
        error_lines = describe_error(outcome.error, test_file).splitlines() or ["(no message)"]
        lines.append(f"  run {outcome.index}/{len(outcomes)}: {error_lines[0]}")
        lines.extend(f"      {line}" for line in error_lines[1:])
        shown = "\n".join(error_lines)
        for result in outcome.collector.results:
            if result.success:
                continue
            reasoning = (result.reasoning or "no reasoning given").strip()
            if reasoning and reasoning in shown:
                continue  # the assertion message already says it
            lines.append(f"      scenario failed: {reasoning}")
    return "\n".join(lines)


def describe_error(error: BaseException | None, test_file: str | None = None) -> str:
    """``Type: message (file:line)``, the message whole (a failure's text is never cut)."""
    if error is None:
        return ""
    name = type(error).__name__
    if isinstance(error, pytest.fail.Exception):
        name = "Failed"
    text = str(getattr(error, "msg", None) or error).strip()
    text_lines = text.splitlines()
    where = _location(error, test_file)
    head = f"{name}: {text_lines[0]}" if text_lines else name
    if where:
        head += f" ({where})"
    return "\n".join([head, *text_lines[1:]])


def _location(error: BaseException, test_file: str | None) -> str | None:
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
    if not frames:
        return None
    chosen = frames[-1]
    if test_file is not None:
        in_test = [f for f in frames if os.path.abspath(f.filename) == test_file]
        if in_test:
            chosen = in_test[-1]
    return f"{os.path.basename(chosen.filename)}:{chosen.lineno}"


def _source_file(function: Callable[..., Any]) -> str | None:
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    return os.path.abspath(code.co_filename) if code is not None else None

