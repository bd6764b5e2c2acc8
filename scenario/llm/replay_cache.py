"""Deterministic replay of model calls and of user functions.

With a ``cache_key`` (per run, or ``configure(cache_key=...)``) each model call the library makes
is stored on first run and replayed after, so a scenario re-runs identically without cost. The key
covers what decides the answer (cache key, model, messages, tools, sampling parameters) and never
per-run ids such as the thread id or trace context — that is what makes it hit.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from scenario import fork
from scenario.messages import AgentInput
from scenario.run_context import current_run
from scenario.settings import settings
from scenario.telemetry.tracer import warn_once

F = TypeVar("F", bound=Callable[..., Any])
_write_lock = threading.Lock()


@fork.register
def reset_after_fork() -> None:
    """In a forked child: a fresh write lock (a parent thread may have held it; see :mod:`scenario.fork`)."""
    global _write_lock
    _write_lock = threading.Lock()


def cache_dir() -> Path:
    return Path(settings().cache_dir or os.environ.get("SCENARIO_CACHE_DIR") or ".scenario-cache")


def active_cache_key(explicit: str | None = None) -> str | None:
    """The cache key in force: the run's, else the configured one."""
    if explicit:
        return explicit
    run = current_run.get()
    if run is not None and run.cache_key:
        return run.cache_key
    return settings().cache_key


def make_key(namespace: str, cache_key: str, payload: Any) -> str:
    blob = json.dumps({"ns": namespace, "key": cache_key, "payload": payload}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def load(key: str) -> Any | None:
    path = cache_dir() / key[:2] / f"{key}.json"
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a torn or foreign file is a miss, never a crash


def store(key: str, value: Any) -> None:
    """Write atomically (temp file + rename) so concurrent runs never read half a file."""
    folder = cache_dir() / key[:2]
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(value, ensure_ascii=False, default=repr)
    with _write_lock:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, folder / f"{key}.json")


def _key_part(value: Any) -> Any:
    """What of an argument decides the answer. An ``AgentInput`` or ``ScenarioState`` (a cached
    ``call(self, input)``) counts by its conversation and description, never by the per-run
    thread id or trace headers: with those in the key it would never hit. The state says which
    of its parts count itself (``scenario_replay_key()``), so this module needs no engine class."""
    if isinstance(value, AgentInput):
        request = value.judgment_request
        return {
            "messages": value.messages,
            "new_messages": value.new_messages,
            "judgment_request": request.model_dump() if request is not None else None,
            "description": getattr(value.scenario_state, "description", None),
        }
    replay_key = getattr(type(value), "scenario_replay_key", None)
    if callable(replay_key):
        return replay_key(value)
    return value


def _plain(value: Any) -> Any:
    """``value`` as JSON data: pydantic models (litellm/OpenAI messages) become their dicts.
    Raises TypeError for anything else that JSON cannot hold."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain(dump(exclude_none=True))
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _store_value(key: str, value: Any, namespace: str) -> None:
    """Store a function's return value, or (not JSON data) skip it and say so once: replaying a
    repr() string instead of the real value would silently change what the agent returns."""
    try:
        plain = _plain(value)
    except TypeError as exc:
        warn_once(f"cache:{namespace}", f"@scenario.cache: {namespace} returned {exc}; its calls are not cached. "
                  "Return strings, dicts, lists, numbers or pydantic models.")
        return
    store(key, {"value": plain})


def cache(ignore: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator: replay a function's (JSON-serialisable) return value while a cache key is active.

    Use it on your agent's model call to make whole scenarios replayable::

        @scenario.cache()
        async def call_llm(self, messages): ...

    Arguments named in ``ignore`` (``self`` always) do not enter the key; an ``AgentInput`` enters
    by its messages, judgment request and scenario description (so ``@scenario.cache()`` on an
    adapter's ``call`` replays across runs, as with langwatch-scenario). Without an active cache
    key the function simply runs. Return values are stored as JSON: pydantic models (litellm and
    OpenAI message objects) replay as their dicts; anything JSON cannot hold is not cached
    (warned once) rather than replayed wrongly.
    """
    ignored = set(ignore) | {"self"}

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        namespace = f"{func.__module__}.{func.__qualname__}"

        def key_for(args: tuple, kwargs: dict) -> str | None:
            cache_key = active_cache_key()
            if not cache_key:
                return None
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            payload = {k: _key_part(v) for k, v in bound.arguments.items() if k not in ignored}
            return make_key(namespace, cache_key, payload)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                key = key_for(args, kwargs)
                if key is not None:
                    hit = load(key)
                    if hit is not None:
                        return hit["value"]
                value = await func(*args, **kwargs)
                if key is not None:
                    _store_value(key, value, namespace)
                return value

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = key_for(args, kwargs)
            if key is not None:
                hit = load(key)
                if hit is not None:
                    return hit["value"]
            value = func(*args, **kwargs)
            if key is not None:
                _store_value(key, value, namespace)
            return value

        return wrapper  # type: ignore[return-value]

    return decorate
