"""OpenTelemetry: where spans come from, what they are called, and what they carry.

Policy: use the tracer provider the application installed; install none globally. With no SDK
provider installed (or ``configure(tracing="off")``) no span objects are created at all, so
tracing costs nothing when nobody is looking. ``configure(tracing="otlp")`` builds a private
provider exporting over OTLP/HTTP for users with no set-up of their own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Dict, Iterator, Mapping, Optional

logger = logging.getLogger("scenario.telemetry")

TRACER_NAME = "scenario"

# Span names: low-cardinality, stable, documented in docs/observability.md.
SPAN_RUN = "scenario.run"
SPAN_TURN = "scenario.turn"
SPAN_AGENT = "scenario.agent"
SPAN_STEP = "scenario.step"

# Attribute for the money a model call cost: GenAI conventions define no cost attribute yet.
ATTR_COST = "gen_ai.usage.cost_usd"

_lock = threading.Lock()
_mode = "auto"
_private_provider: Any = None
_cached_provider: Any = None
_cached_tracer: Any = None


def apply_tracing_setting(mode: str) -> None:
    """Switch tracing mode (called by ``configure(tracing=...)``)."""
    global _mode, _private_provider, _cached_provider, _cached_tracer
    with _lock:
        _mode = mode
        _cached_provider = _cached_tracer = None
        if mode == "otlp" and _private_provider is None:
            _private_provider = _build_otlp_provider()


def _build_otlp_provider() -> Any:
    """A provider of our own exporting over OTLP/HTTP, honouring the standard OTEL_EXPORTER_OTLP_*
    variables. Not installed globally: the application's own provider, if any, stays in charge."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError(
            "configure(tracing='otlp') needs the OTLP exporter: pip install 'scenario[otlp]' "
            "(opentelemetry-exporter-otlp-proto-http)."
        ) from exc
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "scenario"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def get_tracer() -> Any:
    """The tracer to use now, or None when spans would go nowhere (then create none)."""
    global _cached_provider, _cached_tracer
    if _mode == "off":
        return None
    if _mode == "otlp" and _private_provider is not None:
        provider = _private_provider
    else:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        # The API's default is a proxy/no-op provider: nobody installed an SDK, nothing records.
        if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            return None
    if provider is _cached_provider:
        return _cached_tracer
    from . import __version__

    tracer = provider.get_tracer(TRACER_NAME, __version__)
    with _lock:
        _cached_provider, _cached_tracer = provider, tracer
    return tracer


def start_span(tracer: Any, name: str, attributes: Optional[Mapping[str, Any]] = None, parent: Any = None) -> Any:
    """Start a span (not made current). ``parent`` is a span to nest under, else the current context."""
    if tracer is None:
        return None
    from opentelemetry import trace

    context = trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(name, context=context, attributes=clean_attributes(attributes or {}))


@contextlib.contextmanager
def use_span(span: Any) -> Iterator[Any]:
    """Make ``span`` current for the block without ending it (no-op for None)."""
    if span is None:
        yield None
        return
    from opentelemetry import trace

    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield span


def end_span(span: Any, error: Optional[BaseException] = None, attributes: Optional[Mapping[str, Any]] = None) -> None:
    """Set final attributes, mark errors, end. Safe on None."""
    if span is None:
        return
    if attributes:
        span.set_attributes(clean_attributes(attributes))
    if error is not None:
        record_error(span, error)
    span.end()


def record_error(span: Any, error: BaseException) -> None:
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def clean_attributes(attributes: Mapping[str, Any]) -> Dict[str, Any]:
    """OTel accepts only primitives and lists of them; drop None and stringify the rest."""
    cleaned: Dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (bool, int, float, str)):
            cleaned[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            cleaned[key] = list(value)
        else:
            cleaned[key] = str(value)
    return cleaned


def provider_name(model: str) -> str:
    """``gen_ai.provider.name`` from a litellm model string ("openai/gpt-4o" -> "openai")."""
    if "/" in model:
        return model.split("/", 1)[0]
    return "openai" if model.startswith(("gpt-", "o1", "o3", "o4")) else "unknown"


def usage_attributes(usage: Any) -> Dict[str, Any]:
    """Flatten a :class:`scenario.types.Usage` rollup onto a span."""
    attrs: Dict[str, Any] = {
        "scenario.usage.calls": usage.calls,
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        ATTR_COST: round(usage.cost_usd, 12),
        "scenario.usage.unpriced_calls": usage.unpriced_calls,
    }
    for role, totals in usage.by_role.items():
        attrs[f"scenario.usage.{role}.calls"] = totals.calls
        attrs[f"scenario.usage.{role}.cost_usd"] = round(totals.cost_usd, 12)
    return attrs
