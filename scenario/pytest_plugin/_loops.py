"""Make pytest-asyncio-concurrent groups run next to pytest-asyncio tests, on a loop we own.

Why this exists
---------------
pytest-asyncio-concurrent (0.5.x) runs a group by calling ``asyncio.get_event_loop()`` on the
main thread and ``run_until_complete`` on whatever that returns. pytest-asyncio (1.x) runs each
test in an ``asyncio.Runner`` whose ``close()`` calls ``asyncio.set_event_loop(None)``. After
that call the default policy remembers that a loop was explicitly set, so ``get_event_loop()``
no longer creates one and raises ``RuntimeError: There is no current event loop in thread
'MainThread'`` instead -- out of a pytest hook, hence an INTERNALERROR that ends the session.

The plugin wraps the group hook: for the duration of a group it makes a session-long loop of
its own the current loop, then puts back whatever was current before. pytest-asyncio never sees
the difference, and consecutive groups share one loop, so higher-scoped async fixtures created
for one group stay usable in the next.

Async fixtures of group members are the second half. pytest-asyncio-concurrent runs an
async-generator fixture on a brand-new loop of its own, and pytest-asyncio runs
``@pytest_asyncio.fixture`` ones on its runner's loop; either way the fixture's objects (client
sessions, queues, connections) belong to a different loop than the test body, and break as soon
as the test awaits them under ``scenario.arun``. While a group is being set up, the plugin
therefore runs every async fixture on the group's loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from scenario.runtime.event_loops import drain


def _peek_current_loop() -> asyncio.AbstractEventLoop | None:
    """The thread's current loop without creating one as a side effect."""
    with warnings.catch_warnings():  # the policy API is deprecated from Python 3.14 on
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    if local is not None and hasattr(local, "_loop"):
        return local._loop
    try:  # pragma: no cover - a policy without the usual thread-local
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return policy.get_event_loop()
    except RuntimeError:  # pragma: no cover
        return None


class GroupLoop:
    """The session's loop for pytest-asyncio-concurrent groups, created on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The loop while a group is running (setup, call and teardown), else None.
        self.active: asyncio.AbstractEventLoop | None = None

    def _get(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    @contextlib.contextmanager
    def current(self) -> Iterator[asyncio.AbstractEventLoop]:
        """Make the group loop the thread's current loop for a block, then restore the old one."""
        loop = self._get()
        previous = _peek_current_loop()
        asyncio.set_event_loop(loop)
        self.active = loop
        try:
            yield loop
        finally:
            self.active = None
            if previous is not None and previous.is_closed():
                previous = None
            asyncio.set_event_loop(previous)

    def close(self) -> None:
        """Shut the loop down for good (after session-scoped fixtures were torn down)."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        try:
            drain(loop)
        finally:
            if _peek_current_loop() is loop:
                asyncio.set_event_loop(None)
            loop.close()


def is_async_fixture(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def bound_fixture_function(fixturedef: Any, request: Any) -> Callable[..., Any]:
    """The fixture function as pytest would call it (bound to the test class instance, if any)."""
    try:
        from _pytest.fixtures import resolve_fixture_function
    except ImportError:  # pragma: no cover - pytest moved it
        return fixturedef.func
    return resolve_fixture_function(fixturedef, request)


def fixture_on_loop(func: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """A synchronous stand-in for an async fixture that runs it on ``loop``.

    pytest then handles it like any sync (generator) fixture: caching, scoping and teardown stay
    pytest's, only the awaiting happens on the loop the test body will run on.
    """
    name = getattr(func, "__name__", "fixture")
    if inspect.isasyncgenfunction(func):

        def asyncgen_fixture(**kwargs: Any) -> Iterator[Any]:
            agen = func(**kwargs)
            value = loop.run_until_complete(agen.__anext__())
            yield value
            try:
                loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
            loop.run_until_complete(agen.aclose())
            raise ValueError(f"async fixture {name!r} yielded more than once; a fixture yields exactly once.")

        replacement: Callable[..., Any] = asyncgen_fixture
    else:

        def coroutine_fixture(**kwargs: Any) -> Any:
            return loop.run_until_complete(func(**kwargs))

        replacement = coroutine_fixture
    replacement.__name__ = name
    replacement.__qualname__ = getattr(func, "__qualname__", name)
    replacement.__module__ = getattr(func, "__module__", __name__)
    return replacement


_member_class: Any = False  # not looked up yet


def is_group_member(item: Any) -> bool:
    """Whether ``item`` is a test run inside a pytest-asyncio-concurrent group."""
    global _member_class
    if _member_class is False:
        try:
            from pytest_asyncio_concurrent.grouping import AsyncioConcurrentGroupMember
        except ImportError:
            _member_class = None
        else:
            _member_class = AsyncioConcurrentGroupMember
    return _member_class is not None and isinstance(item, _member_class)


@contextlib.contextmanager
def member_active(item: Any) -> Iterator[None]:
    """Let pytest treat a group member as set up while its fixtures are resolved.

    pytest-asyncio-concurrent never pushes members onto pytest's setup stack (several are live
    at once, which the stack cannot express). pytest 9.1 started checking that stack whenever a
    fixture is requested: every fixture a member uses then warns "getfixturevalue during
    teardown is deprecated", and a function-scoped one fails with "not available during
    teardown". Listing the member as active for the duration of its setup or call satisfies the
    check; the member's finalizers keep going to its group, as the group plugin intends.
    """
    stack = getattr(getattr(getattr(item, "session", None), "_setupstate", None), "stack", None)
    if not isinstance(stack, dict) or item in stack:
        yield
        return
    stack[item] = ([], None)
    try:
        yield
    finally:
        stack.pop(item, None)
