"""Finishing an event loop we own, the same way everywhere.

A loop that is simply closed leaves tasks "destroyed but pending", async generators unfinalised
and default-executor threads running. Worker loops, the pytest plugin's loops and the mock
server's loop all end through :func:`drain` first.
"""

from __future__ import annotations

import asyncio


def drain(loop: asyncio.AbstractEventLoop) -> None:
    """On a loop that is not running: cancel leftover tasks and wait for them, finalise async
    generators, and shut the default executor down. The caller closes the loop afterwards."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # Each pass below is a full loop run; skip the ones with nothing to do (most worker loops:
    # no async generator was ever started, no default executor ever made).
    if getattr(loop, "_asyncgens", True):
        loop.run_until_complete(loop.shutdown_asyncgens())
    if getattr(loop, "_default_executor", True) is not None:
        loop.run_until_complete(loop.shutdown_default_executor())
