"""One after-fork registry: each owner of process-wide state resets its own state in a child.

A forked process inherits the parent's memory but only the thread that forked. Everything a
module keeps for the whole process and ties to threads or loops is then stale in the child: a
lock another parent thread held is never released, a worker pool counts threads that do not
exist, the model loop points at a loop nobody runs. Left alone, the child's first call hangs.

Policy:

* The module that owns a piece of process-wide state is the only code that resets it. It offers
  a public ``reset_after_fork()`` and registers it here with :func:`register` when it is
  imported; no other module writes its private fields.
* The registry runs from one ``os.register_at_fork`` hook, in every forked child (the batch's
  ``processes=N`` workers, and a user's own ``os.fork``/``multiprocessing`` children alike:
  the stale state is the same for them). Hooks run in registration order, which is import
  order, so an owner's dependencies (imported first) are reset before it.
* A hook that fails does not stop the others; the first failure is re-raised at the end with its
  traceback (Python prints it from the at-fork hook: a child never fails silently).
* Resetting means forgetting, never closing: a child shares the parent's descriptors (epoll
  instances, sockets), so closing an inherited loop or client would break the *parent*. Owners
  keep what they drop referenced until the child exits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

__all__ = ["register", "registered", "reset_all"]

Hook = Callable[[], None]

_hooks: list[Hook] = []
_lock = threading.Lock()


def register(hook: Hook) -> Hook:
    """Run ``hook`` in every forked child (once per fork; registering it again is a no-op).

    Returns ``hook``, so it can be used as a decorator.
    """
    if not callable(hook):
        raise TypeError(f"fork.register({hook!r}): needs a callable taking no arguments")
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
    return hook


def registered() -> list[Hook]:
    """The hooks, in the order they run (a copy)."""
    return list(_hooks)


def reset_all() -> None:
    """Run every registered hook; called in each forked child (and by tests).

    Every hook runs even if an earlier one raised; the first error is then re-raised.
    """
    first_error: BaseException | None = None
    for hook in list(_hooks):
        try:
            hook()
        except Exception as exc:
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error


def _after_fork_in_child() -> None:
    global _lock
    # Our own lock may have been held by a parent thread registering a hook at fork time.
    _lock = threading.Lock()
    reset_all()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
