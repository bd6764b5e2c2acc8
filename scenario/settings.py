"""Process-wide settings set with :func:`configure`.

Settings are read when a run starts, never written by a run, so concurrent runs cannot change
each other's behaviour. Nothing here touches ``os.environ`` or litellm's globals.

Values flow down, never calls: this module sits below the rooms that act on a setting (rate
limits, the tracer), so :func:`configure` does not reach into them. A room that must act when a
setting changes registers a hook with :func:`on_configure`; ``configure`` calls every hook with the
settings it was given explicitly. A hook registered after ``configure`` ran (its module was
imported later) is called at once with what was configured so far, so nothing is lost to import
order.
"""

from __future__ import annotations

import difflib
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scenario.checks import check_choice, check_max_turns, check_positive_int, is_whole_number
from scenario.errors import ScenarioConfigError

DEFAULT_MAX_TURNS = 10
#: Seconds per model call attempt. With RetryPolicy.max_timeout_attempts = 2, a call to an
#: endpoint that never answers gives up after ~90 s (see scenario.llm.classify).
DEFAULT_MODEL_TIMEOUT = 45.0


class ModelConfig(BaseModel):
    """How the library's own agents (user simulator, judge) call a model.

    Any extra keyword is passed to ``litellm.acompletion`` untouched (``reasoning_effort``,
    ``extra_headers``, ...). Provider credentials follow litellm's usual environment variables
    (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...) when ``api_key`` is not given.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    api_base: str | None = None
    api_key: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = Field(DEFAULT_MODEL_TIMEOUT, gt=0, description="Seconds per model call attempt.")

    def merged(self, **overrides: Any) -> ModelConfig:
        """A copy with the non-None overrides applied (agent arguments win over configure())."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return ModelConfig(**data)


class Settings(BaseModel):
    """The current global configuration (see :func:`configure`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    default_model: ModelConfig | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    min_turns: int = 0
    verbose: bool = False
    cache_key: str | None = None
    cache_dir: str | None = None
    debug: bool = False
    retry: Any = None  # scenario.llm.retry.RetryPolicy; Any keeps this module free of that import
    max_workers: int | None = None
    tracing: str | None = None
    trace_content: bool = True
    batch_gc_freeze: bool = True

    @classmethod
    def configure(cls, **kwargs: Any) -> Settings:
        """``scenario.configure(...)`` under the name langwatch-scenario gives it
        (``ScenarioConfig.configure``)."""
        return configure(**kwargs)


ScenarioConfig = Settings
"""langwatch-scenario's name for the settings object (``from scenario.config import ScenarioConfig``)."""


class LangWatchSettings(BaseModel):
    """Accepted for compatibility with langwatch-scenario, whose hosted platform it configures.

    This library has no hosted platform, so these settings have no effect (docs/migrating.md).
    """

    model_config = ConfigDict(extra="allow")

    endpoint: str | None = None
    api_key: str | None = None


_lock = threading.Lock()
_settings = Settings()

ConfigureHook = Callable[[Settings, Mapping[str, Any]], None]
"""Called as ``hook(settings, given)`` after :func:`configure` applied its arguments: ``given``
holds the keywords given explicitly (not None), ``rate_limits`` included."""

_hooks: list[ConfigureHook] = []
# Every keyword given explicitly since the last reset (latest value wins): what a hook
# registered late is told, so it sees the same values it would have seen registered early.
_given: dict[str, Any] = {}


def settings() -> Settings:
    """The configuration in force now (a snapshot: treat it as read-only)."""
    return _settings


def configure(
    default_model: str | ModelConfig | None = None,
    max_turns: int | None = None,
    verbose: bool | None = None,
    cache_key: str | None = None,
    min_turns: int | None = None,
    cache_dir: str | None = None,
    debug: bool | None = None,
    retry: Any = None,
    max_workers: int | None = None,
    rate_limits: dict[str, Any] | None = None,
    tracing: str | None = None,
    trace_content: bool | None = None,
    batch_gc_freeze: bool | None = None,
    **extra: Any,
) -> Settings:
    """Set process-wide defaults. Arguments left as ``None`` keep their current value.

    Args:
        default_model: ``"provider/model"`` or a :class:`ModelConfig` used by the user simulator and
            judge when they are not given a model.
        max_turns: default turn limit for autopilot (10).
        min_turns: default for ``run(min_turns=...)``: turns before the judge may end a run (0).
        verbose: print each conversation as it happens.
        cache_key: replay model calls deterministically across runs (see docs/caching.md).
        cache_dir: where the replay cache lives (default ``.scenario-cache`` in the working dir).
        debug: print every model request the library makes (simulator, judge,
            ``scenario.acompletion``) and its response to standard error, API keys and other
            credentials redacted; also prints conversations like ``verbose``.
        retry: a :class:`scenario.RetryPolicy` for the library's own model calls.
        max_workers: cap on worker threads used by :func:`scenario.run`.
        rate_limits: ``{"model or pattern": scenario.RateLimit(...)}`` shared by all runs.
        tracing: ``"otlp"`` to export spans over OTLP/HTTP when the app installed no tracer
            provider; ``"off"`` to create no spans at all.
        trace_content: put message content on spans (default True).
        batch_gc_freeze: while a batch runs, leave the objects that were alive when it started out
            of Python's cyclic garbage collector (``gc.freeze()``, undone with ``gc.unfreeze()`` when
            the last batch in flight ends). Default True: each full collection then walks what the
            batch made instead of litellm's ~300k import-time objects too, 15-25% of a batch's CPU
            (docs/performance.md). Cyclic garbage from before the batch is reclaimed after it.

    Raises:
        scenario.ScenarioConfigError: an unknown keyword (``configure(max_turn=5)`` would
            otherwise be silently ignored), with the closest known name.
    """
    if extra:
        raise ScenarioConfigError(_unknown_keys_message(extra))
    global _settings
    if rate_limits is not None:
        _check_rate_limits(rate_limits)
    with _lock:
        data = _settings.model_dump()
        data["retry"] = _settings.retry
        if default_model is not None:
            if isinstance(default_model, str):
                default_model = ModelConfig(model=default_model)
            elif not isinstance(default_model, ModelConfig):
                raise ScenarioConfigError(
                    "configure(default_model=...): expected a 'provider/model' string or "
                    f"scenario.ModelConfig, got {type(default_model).__name__}."
                )
            data["default_model"] = default_model
        if max_turns is not None:
            data["max_turns"] = check_max_turns(max_turns, "configure(max_turns=...)")
        if min_turns is not None:
            if not is_whole_number(min_turns) or min_turns < 0:
                raise ScenarioConfigError(f"configure(min_turns={min_turns!r}): must be an integer >= 0.")
            data["min_turns"] = min_turns
        if max_workers is not None:
            check_positive_int(max_workers, f"configure(max_workers={max_workers})", "at least 1")
        if tracing is not None:
            check_choice(tracing, ("otlp", "off", "auto"),
                         f"configure(tracing={tracing!r}): use 'otlp' (export over OTLP/HTTP), 'off' or 'auto'.")
        if batch_gc_freeze is not None and not isinstance(batch_gc_freeze, bool):
            raise ScenarioConfigError(f"configure(batch_gc_freeze={batch_gc_freeze!r}): must be True or False.")
        if verbose is not None and not isinstance(verbose, bool):
            verbose = bool(verbose)  # langwatch-scenario also takes a verbosity level
        for key, value in (
            ("verbose", verbose),
            ("cache_key", cache_key),
            ("cache_dir", cache_dir),
            ("debug", debug),
            ("retry", retry),
            ("max_workers", max_workers),
            ("tracing", tracing),
            ("trace_content", trace_content),
            ("batch_gc_freeze", batch_gc_freeze),
        ):
            if value is not None:
                data[key] = value
        _settings = Settings(**data)
        new = _settings
        given = {key: value for key, value in (
            ("default_model", default_model), ("max_turns", max_turns), ("verbose", verbose),
            ("cache_key", cache_key), ("min_turns", min_turns), ("cache_dir", cache_dir), ("debug", debug),
            ("retry", retry), ("max_workers", max_workers), ("rate_limits", rate_limits), ("tracing", tracing),
            ("trace_content", trace_content), ("batch_gc_freeze", batch_gc_freeze),
        ) if value is not None}
        _given.update(given)
        hooks = list(_hooks)
    if given:  # configure() with no arguments only reads the settings
        for hook in hooks:
            hook(new, given)
    return new


def on_configure(hook: ConfigureHook) -> ConfigureHook:
    """Call ``hook(settings, given)`` after every :func:`configure` (see the module docstring).

    If ``configure`` already ran, the hook is called once now with everything given so far. The
    owner of a setting registers here at import; returns the hook, so it works as a decorator.
    """
    with _lock:
        _hooks.append(hook)
        given, current = dict(_given), _settings
    if given:
        hook(current, given)
    return hook


def _check_rate_limits(rate_limits: Any) -> None:
    where = "configure(rate_limits=...)"
    if not isinstance(rate_limits, Mapping):
        raise ScenarioConfigError(
            f"{where}: expected a dict of 'model or pattern' -> scenario.RateLimit(...), got {type(rate_limits).__name__}."
        )
    for key, limit in rate_limits.items():
        if not isinstance(key, str) or not key:
            raise ScenarioConfigError(f"{where}: model key {key!r} is not allowed; it must be a non-empty string.")
        if not all(hasattr(limit, name) for name in ("requests_per_minute", "tokens_per_minute")):
            raise ScenarioConfigError(
                f"{where}: the value for {key!r} must be a scenario.RateLimit(requests_per_minute=..., "
                f"tokens_per_minute=...), got {type(limit).__name__}."
            )


def _unknown_keys_message(extra: dict[str, Any]) -> str:
    known = [name for name, p in inspect.signature(configure).parameters.items() if p.kind is p.KEYWORD_ONLY
             or p.kind is p.POSITIONAL_OR_KEYWORD]
    parts = []
    for key in extra:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"configure(): unknown setting{'s' if len(parts) > 1 else ''} {', '.join(parts)}. Known settings: "
        f"{', '.join(known)}. Model parameters (temperature, api_base, extra litellm arguments) go in "
        "scenario.ModelConfig(...) passed as default_model."
    )


def reset_configuration() -> None:
    """Back to defaults (tests use this)."""
    global _settings
    with _lock:
        _settings = Settings()
        _given.clear()


def resolve_model(
    model: str | None,
    *,
    agent_name: str,
    **overrides: Any,
) -> ModelConfig:
    """The model an agent should call: its own arguments over configure()'s default_model."""
    base = _settings.default_model
    if model is None and base is None:
        raise ScenarioConfigError(
            f"{agent_name}: no model given. Pass model='provider/name' to {agent_name}(...) or call "
            "scenario.configure(default_model='openai/gpt-4o-mini') once before running."
        )
    if base is None:
        return ModelConfig(model=model, **{k: v for k, v in overrides.items() if v is not None})
    return base.merged(model=model, **overrides)
