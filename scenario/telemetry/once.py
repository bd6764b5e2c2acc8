"""Telemetry's warnings, each given once per process.

Telemetry never fails a scenario, and a broken exporter or span processor would otherwise log on
every span or batch: the first occurrence of each kind of failure is logged, the rest are not.
"""

from __future__ import annotations

import logging
import threading

from scenario import fork

logger = logging.getLogger("scenario.telemetry.tracer")  # the logger these warnings always came from

_warned: set[str] = set()
_warn_lock = threading.Lock()


def warn_once(key: str, message: str) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message)


@fork.register
def reset_after_fork() -> None:
    """In a forked child: a fresh lock (see :mod:`scenario.fork`); what was warned stays warned."""
    global _warn_lock
    _warn_lock = threading.Lock()
