"""Counting the agent under test's own model calls from its OpenTelemetry spans.

The library's simulator and judge record their usage directly (scenario/models.py). The agent under
test is opaque to us, but if it is instrumented (litellm's ``otel`` callback, OpenInference,
OpenLLMetry, the OpenAI SDK instrumentors, hand-made spans...), each of its model calls ends as a
span carrying ``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens``. A span processor
added to the provider the library traces with (the application's, or our private OTLP one) adds
those spans to the scenario they belong to.

Which scenario a span belongs to: its parent chain. Every span started under a scenario's
``scenario.run`` span (directly or through any number of descendants) inherits that run; a span
with no known parent but started while a run is current (``current_run``) belongs to that run.
Spans under the library's own ``chat`` spans are skipped (litellm's own spans for our calls: those
calls are already counted), and when GenAI spans nest, only the innermost one with usage counts
(frameworks often repeat their children's totals on a wrapping span).

Limits, also in docs/observability.md: the processor sees only spans of the provider we trace
with; spans ending after their scenario's root span has ended are not counted; a span with token
counts but no cost attribute is priced with litellm's price table when litellm is already
imported, else counted as unpriced.

The OpenTelemetry SDK loads only when a provider is in use: the span-processor class (the
tracking logic plus the SDK's ``SpanProcessor`` base) is made on the first attach, so importing
this module (and the tracer, and ``scenario``) does not import the SDK.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from scenario import fork
from scenario.run_context import RunContext, current_run
from scenario.telemetry.once import warn_once
from scenario.telemetry.spans import (
    AGENT_SPAN_PREFIX,
    ATTR_COST,
    ATTR_INPUT_TOKENS,
    ATTR_OPERATION,
    ATTR_OUTPUT_TOKENS,
    ATTR_PROVIDER,
    ATTR_REQUEST_MODEL,
    ATTR_RESPONSE_MODEL,
    ATTR_ROLE,
    SPAN_RUN,
    TRACER_NAME,
)

_Key = tuple[int, int]  # (trace_id, span_id)

# Token attributes: current GenAI conventions first, then the older names still emitted by
# several instrumentations.
_INPUT_TOKEN_KEYS = (ATTR_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
_OUTPUT_TOKEN_KEYS = (ATTR_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion")
_COST_KEYS = (ATTR_COST, "gen_ai.usage.cost", "llm.cost.total")
_MODEL_KEYS = (ATTR_RESPONSE_MODEL, ATTR_REQUEST_MODEL, "llm.model_name")
_PROVIDER_KEYS = (ATTR_PROVIDER, "gen_ai.system", "llm.provider")


@dataclass
class _RunTrace:
    """One live scenario as seen from its spans."""

    run: RunContext
    keys: set[_Key] = field(default_factory=set)


@dataclass
class _Entry:
    run: _RunTrace
    parent: _Key | None
    role: str
    inside_library_call: bool
    counted_below: bool = False


class AgentUsageTracker:
    """The tracking logic of the span processor adding agent-side GenAI spans to their run's
    usage (the processor itself: :func:`processor_class`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[_Key, _Entry] = {}
        self._roots: dict[_Key, _RunTrace] = {}
        self._live: dict[int, _RunTrace] = {}  # id(RunContext) -> its live trace

    # -- SpanProcessor interface -------------------------------------------------------------
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            self._on_start(span)
        except Exception as exc:  # pragma: no cover - defensive: never break the app's tracing
            warn_once("usage-processor", f"scenario: usage span processor failed ({type(exc).__name__}: {exc}).")

    def on_end(self, span: Any) -> None:
        try:
            self._on_end_span(span)
        except Exception as exc:  # pragma: no cover - defensive
            warn_once("usage-processor", f"scenario: usage span processor failed ({type(exc).__name__}: {exc}).")

    def shutdown(self) -> None:
        with self._lock:
            self._entries.clear()
            self._roots.clear()
            self._live.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- internals -----------------------------------------------------------------------------
    def _on_start(self, span: Any) -> None:
        context = span.get_span_context()
        key = (context.trace_id, context.span_id)
        ours = _scope_name(span) == TRACER_NAME
        name = span.name or ""
        attributes = span.attributes or {}
        parent_key = (span.parent.trace_id, span.parent.span_id) if span.parent is not None else None
        if not (ours and name == SPAN_RUN) and parent_key not in self._entries and current_run.get() is None:
            return  # not in any scenario (most of an application's spans): no lock taken
        with self._lock:
            if ours and name == SPAN_RUN:
                run = current_run.get()
                if run is None:
                    return
                run_trace = _RunTrace(run)
                self._roots[key] = run_trace
                self._live[id(run)] = run_trace
                entry = _Entry(run_trace, None, "agent", False)
            else:
                parent = self._entries.get(parent_key) if parent_key is not None else None
                if parent is not None:
                    entry = _Entry(parent.run, parent_key, parent.role, parent.inside_library_call)
                else:
                    # No known parent (a fresh trace, or context lost on the way): the run current
                    # where the span starts, if any, is the one it works for.
                    run = current_run.get()
                    found = self._live.get(id(run)) if run is not None else None
                    if found is None or found.run is not run:
                        return
                    entry = _Entry(found, None, "agent", False)
                if ours and name.startswith(AGENT_SPAN_PREFIX):
                    entry.role = str(attributes.get(ATTR_ROLE, entry.role))
                elif ours and attributes.get(ATTR_OPERATION) == "chat":
                    entry.inside_library_call = True
            self._entries[key] = entry
            entry.run.keys.add(key)

    def _on_end_span(self, span: Any) -> None:
        context = span.get_span_context()
        key = (context.trace_id, context.span_id)
        with self._lock:
            root = self._roots.pop(key, None)
            if root is not None:  # the scenario is over: forget its spans
                if self._live.get(id(root.run)) is root:
                    del self._live[id(root.run)]
                for child in root.keys:
                    self._entries.pop(child, None)
                return
            entry = self._entries.get(key)
            if entry is None or entry.inside_library_call or _scope_name(span) == TRACER_NAME:
                return
            attributes = span.attributes or {}
            input_tokens = _first_int(attributes, _INPUT_TOKEN_KEYS)
            output_tokens = _first_int(attributes, _OUTPUT_TOKEN_KEYS)
            if input_tokens is None and output_tokens is None:
                return
            if entry.counted_below:
                return  # a nested model-call span already counted this call
            parent = entry.parent
            while parent is not None:
                ancestor = self._entries.get(parent)
                if ancestor is None or ancestor.counted_below:
                    break
                ancestor.counted_below = True
                parent = ancestor.parent
            run = entry.run.run
            role = entry.role
        model = _first_str(attributes, _MODEL_KEYS) or "unknown"
        cost = _first_float(attributes, _COST_KEYS)
        if cost is None:
            cost = _price(model, _first_str(attributes, _PROVIDER_KEYS), input_tokens or 0, output_tokens or 0)
        run.record_usage(
            role=role, model=model, input_tokens=input_tokens or 0, output_tokens=output_tokens or 0, cost_usd=cost
        )


def _scope_name(span: Any) -> str | None:
    scope = getattr(span, "instrumentation_scope", None)
    return getattr(scope, "name", None)


def _first_int(attributes: Any, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def _first_float(attributes: Any, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _first_str(attributes: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _price(model: str, provider: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """Cost from litellm's price table, only if litellm is already loaded (importing it here
    would cost seconds inside someone's span processor)."""
    litellm = sys.modules.get("litellm")
    if litellm is None or model == "unknown":
        return None
    candidates = [model]
    if provider and "/" not in model:
        candidates.append(f"{provider}/{model}")
    for candidate in candidates:
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=candidate, prompt_tokens=input_tokens, completion_tokens=output_tokens
            )
            return float(prompt_cost) + float(completion_cost)
        except Exception:
            continue
    return None


_attach_lock = threading.Lock()
_attached: weakref.WeakKeyDictionary[Any, AgentUsageTracker] = weakref.WeakKeyDictionary()
_attached_ids: dict[int, AgentUsageTracker] = {}


@functools.cache
def processor_class() -> type[AgentUsageTracker]:
    """``AgentUsageProcessor``: the tracker as an OpenTelemetry SDK ``SpanProcessor`` (the SDK
    base supplies the hooks the tracker does not need)."""
    from opentelemetry.sdk.trace import SpanProcessor

    return type("AgentUsageProcessor", (AgentUsageTracker, SpanProcessor), {"__module__": __name__})


def attach_usage_processor(provider: Any) -> AgentUsageTracker | None:
    """Add our processor to ``provider`` once. Providers without ``add_span_processor`` (not the
    SDK's) are left alone: agent usage then comes only from ``scenario.report_usage``."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return None
    with _attach_lock:
        try:
            existing = _attached.get(provider)
        except TypeError:  # not weak-referenceable
            existing = _attached_ids.get(id(provider))
        if existing is not None:
            return existing
        processor = processor_class()()
        try:
            add(processor)
        except Exception as exc:
            warn_once("usage-attach", f"scenario: could not add the usage span processor ({type(exc).__name__}: {exc}).")
            return None
        try:
            _attached[provider] = processor
        except TypeError:
            _attached_ids[id(provider)] = processor
        return processor


@fork.register
def reset_after_fork() -> None:
    """In a forked child: fresh locks for the attach registry and every attached tracker (a
    parent thread may have held one at fork; see :mod:`scenario.fork`)."""
    global _attach_lock
    _attach_lock = threading.Lock()
    for tracker in [*_attached.values(), *_attached_ids.values()]:
        tracker._lock = threading.Lock()
