"""OpenTelemetry: where spans come from, what they are called, and what they carry.

Policy:

* Use the tracer provider the application installed (``opentelemetry.trace.set_tracer_provider``);
  install none globally, ever.
* With no provider installed, ``configure(tracing="otlp")`` or the standard
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables give a private
  provider (ours alone, never made global) exporting over OTLP/HTTP.
* Otherwise — nothing installed, or ``configure(tracing="off")`` — no span objects are created at
  all: every helper here takes and returns ``None``, so tracing costs nothing when nobody looks.
* Telemetry never fails a scenario: a span processor or exporter that raises, or an exporter that
  is missing or cannot reach its endpoint, drops spans with one warning per process.

Span names and the shared attribute keys are spelled in :mod:`scenario.telemetry.spans` and
documented in docs/observability.md; the names used by callers of this module are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from scenario import fork
from scenario.settings import on_configure, settings
from scenario.telemetry.once import _warned, warn_once  # noqa: F401 - _warned: tests reset it
from scenario.telemetry.spans import (  # noqa: F401 - re-exported: the engine and model path name spans through here
    ATTR_COST,
    ATTR_ROLLUP_COST,
    ATTR_ROLLUP_INPUT_TOKENS,
    ATTR_ROLLUP_OUTPUT_TOKENS,
    SPAN_RUN,
    SPAN_TURN,
    TRACER_NAME,
    agent_span,
    model_span,
)
from scenario.telemetry.usage_processor import attach_usage_processor
from scenario.version import __version__

logger = logging.getLogger(__name__)

# Variables that, with no provider installed, switch on our private OTLP/HTTP export.
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_lock = threading.Lock()
_private_provider: Any = None
_private_provider_failed = False
_cached_provider: Any = None
_cached_tracer: Any = None


@fork.register
def reset_after_fork() -> None:
    """In a forked child: a fresh lock (a parent thread may have held it at fork; see
    :mod:`scenario.fork`). The provider is kept: the SDK's batch processor restarts its own export
    thread in a child."""
    global _lock
    _lock = threading.Lock()


# -- which provider ----------------------------------------------------------------------------
def apply_tracing_setting(mode: str) -> None:
    """Called by ``configure(tracing=...)``: set up the private exporter early, so a missing
    package is reported when configuring rather than at the first run."""
    global _cached_provider, _cached_tracer
    with _lock:
        _cached_provider = _cached_tracer = None
    if mode == "otlp" and _app_provider() is None:
        _get_private_provider()


def _apply_configured_tracing(_settings: Any, given: Mapping[str, Any]) -> None:
    # configure(tracing=...) is read from the settings on every get_tracer(); the hook only
    # drops the cached tracer and builds the private exporter early (see apply_tracing_setting).
    if "tracing" in given:
        apply_tracing_setting(given["tracing"])


on_configure(_apply_configured_tracing)


def _mode() -> str:
    return settings().tracing or "auto"


def _app_provider() -> Any:
    """The provider the application installed, or None if it installed none."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    # The API's defaults: a proxy waiting for set_tracer_provider, or an explicit no-op.
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return provider


def _otlp_requested_by_environment() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES)


def get_tracer() -> Any:
    """The tracer to use now, or None when spans would go nowhere (then create none)."""
    global _cached_provider, _cached_tracer
    mode = _mode()
    if mode == "off":
        return None
    provider = _app_provider()
    if provider is None:
        if mode == "otlp" or _otlp_requested_by_environment():
            provider = _get_private_provider()
        if provider is None:
            return None
    if provider is _cached_provider:
        return _cached_tracer
    try:
        tracer = provider.get_tracer(TRACER_NAME, __version__)
    except Exception as exc:  # a third-party provider misbehaving must not fail a run
        warn_once("get_tracer", f"scenario: the tracer provider failed ({type(exc).__name__}: {exc}); no spans.")
        return None
    attach_usage_processor(provider)
    with _lock:
        _cached_provider, _cached_tracer = provider, tracer
    return tracer


def _get_private_provider() -> Any:
    global _private_provider, _private_provider_failed
    if _private_provider is not None or _private_provider_failed:
        return _private_provider
    with _lock:
        if _private_provider is None and not _private_provider_failed:
            try:
                _private_provider = _build_otlp_provider()
            except ImportError:
                _private_provider_failed = True
                warn_once(
                    "otlp-missing",
                    "scenario: OTLP export was asked for (configure(tracing='otlp') or OTEL_EXPORTER_OTLP_* "
                    "variables) but opentelemetry-exporter-otlp-proto-http is not installed; spans are dropped. "
                    "Install it with: pip install 'scenario[otlp]'.",
                )
    return _private_provider


def _build_otlp_provider() -> Any:
    """A provider of our own exporting over OTLP/HTTP, honouring the standard OTEL_EXPORTER_OTLP_*
    variables. Not installed globally: an application provider installed later takes over."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes[SERVICE_NAME] = "scenario"
    provider = TracerProvider(resource=Resource.create(attributes))
    # DroppingExporter is an exporter by shape (it wraps one), not by class: the SDK loads lazily.
    provider.add_span_processor(BatchSpanProcessor(cast(Any, DroppingExporter(OTLPSpanExporter()))))
    return provider


def shutdown_private_provider() -> None:
    """Flush and close the private OTLP provider, if one was made (tests, and long-lived apps
    that want to flush before the interpreter exits; it is also flushed at exit)."""
    global _private_provider, _private_provider_failed, _cached_provider, _cached_tracer
    with _lock:
        provider, _private_provider = _private_provider, None
        _private_provider_failed = False
        if provider is not None and provider is _cached_provider:
            _cached_provider = _cached_tracer = None
    if provider is not None:
        provider.shutdown()


def force_flush(timeout_millis: int = 30000) -> bool:
    """Export the spans buffered by the provider in use (ours or the application's)."""
    provider = _app_provider() or _private_provider
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        return True
    try:
        return bool(flush(timeout_millis))
    except Exception as exc:
        warn_once("flush", f"scenario: flushing spans failed ({type(exc).__name__}: {exc}).")
        return False


# -- exporting without failing or flooding the log ---------------------------------------------
_quiet = threading.local()
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.common.http",
)


class _QuietDuringOurExport(logging.Filter):
    """Drops the exporter's own per-attempt log lines while *our* exporter runs on this thread
    (we report failures ourselves, once); other exporters' lines pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


_filter = _QuietDuringOurExport()


def _install_log_filter() -> None:
    for name in _EXPORTER_LOGGERS:
        log = logging.getLogger(name)
        if _filter not in log.filters:
            log.addFilter(_filter)


class DroppingExporter:
    """Wraps a span exporter so failures drop spans with one warning instead of raising or logging
    every batch. Before exporting to an endpoint not known to be up, it tries a plain TCP connect
    (1 s): an endpoint nobody listens on fails at once instead of after the exporter's retries.
    After a failure, batches are dropped at once for ``cooldown`` seconds (no network wait), so a
    dead endpoint neither fills the queue nor delays interpreter exit."""

    def __init__(self, inner: Any, cooldown: float = 30.0) -> None:
        self._inner = inner
        self._cooldown = cooldown
        self._failed_at: float | None = None
        self._ok_at: float | None = None
        self.dropped = 0
        _install_log_filter()

    def _unreachable(self) -> str | None:
        import socket
        from urllib.parse import urlsplit

        endpoint = getattr(self._inner, "_endpoint", None)
        if not endpoint:
            return None
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname or "localhost", port), timeout=1.0).close()
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def export(self, spans: Sequence[Any]) -> Any:
        import time

        from opentelemetry.sdk.trace.export import SpanExportResult

        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < self._cooldown:
            self.dropped += len(spans)
            return SpanExportResult.FAILURE
        error = None if self._ok_at is not None and now - self._ok_at < self._cooldown else self._unreachable()
        if error is None:
            _quiet.active = True
            try:
                result = self._inner.export(spans)
            except Exception as exc:
                result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
            finally:
                _quiet.active = False
        else:
            result = SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self._failed_at, self._ok_at = None, time.monotonic()
            return result
        self._failed_at, self._ok_at = time.monotonic(), None
        self.dropped += len(spans)
        endpoint = getattr(self._inner, "_endpoint", None) or "the configured endpoint"
        warn_once(
            "export",
            f"scenario: could not export spans over OTLP/HTTP to {endpoint}"
            f"{' (' + error + ')' if error else ''}; spans are being dropped. Scenarios are not affected. "
            "Check OTEL_EXPORTER_OTLP_ENDPOINT and that the collector is running.",
        )
        return result

    def shutdown(self) -> None:
        _quiet.active = True
        try:
            self._inner.shutdown()
        except Exception:
            pass
        finally:
            _quiet.active = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:
            return False


# -- spans ---------------------------------------------------------------------------------------
def start_span(tracer: Any, name: str, attributes: Mapping[str, Any] | None = None, parent: Any = None) -> Any:
    """Start a span (not made current). ``parent`` is a span to nest under, else the current context.

    Returns None when ``tracer`` is None, or when the provider raised (warned once).
    """
    if tracer is None:
        return None
    from opentelemetry import trace

    try:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context=context, attributes=clean_attributes(attributes or {}))
    except Exception as exc:
        _span_failure(exc)
        return None


@contextlib.contextmanager
def use_span(span: Any) -> Iterator[Any]:
    """Make ``span`` current for the block without ending it (no-op for None)."""
    if span is None:
        yield None
        return
    from opentelemetry import trace

    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield span


def propagation_headers(span: Any) -> dict[str, str]:
    """W3C trace-context headers (``traceparent``, ``tracestate``) naming ``span`` as the parent,
    for an adapter to forward to a remote agent. Empty when there is no span (tracing off)."""
    if span is None:
        return {}
    from opentelemetry import propagate, trace

    headers: dict[str, str] = {}
    try:
        propagate.inject(headers, context=trace.set_span_in_context(span))
    except Exception as exc:  # a misbehaving propagator must not fail the run
        _span_failure(exc)
    return headers


def end_span(span: Any, error: BaseException | None = None, attributes: Mapping[str, Any] | None = None) -> None:
    """Set final attributes, mark errors, end. Safe on None; never raises."""
    if span is None:
        return
    try:
        if attributes:
            span.set_attributes(clean_attributes(attributes))
        if error is not None:
            record_error(span, error)
        span.end()
    except Exception as exc:
        _span_failure(exc)


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Add attributes to a live span. Safe on None; never raises."""
    if span is None:
        return
    try:
        span.set_attributes(clean_attributes(attributes))
    except Exception as exc:
        _span_failure(exc)


def add_event(span: Any, name: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Add an event to a live span. Safe on None; never raises."""
    if span is None:
        return
    try:
        span.add_event(name, clean_attributes(attributes or {}))
    except Exception as exc:
        _span_failure(exc)


def record_error(span: Any, error: BaseException) -> None:
    """An ``exception`` event plus ERROR status with the exception's type and message."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1000]))


def _span_failure(exc: BaseException) -> None:
    warn_once(
        "span",
        f"scenario: the tracer provider raised while recording a span ({type(exc).__name__}: {exc}); "
        "the span is dropped and the scenario goes on. Check the application's span processors/exporters.",
    )


def trace_content() -> bool:
    """Whether message content may go on spans (``configure(trace_content=...)``)."""
    return settings().trace_content


# -- attribute helpers --------------------------------------------------------------------------
def clean_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OTel accepts only primitives and lists of them; drop None and stringify the rest."""
    cleaned: dict[str, Any] = {}
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


def usage_attributes(usage: Any) -> dict[str, Any]:
    """Flatten a :class:`scenario.types.Usage` rollup onto a span (see docs/observability.md).

    All under ``scenario.usage.*``, never ``gen_ai.usage.*`` (see ATTR_COST for why)."""
    attrs: dict[str, Any] = {
        "scenario.usage.calls": usage.calls,
        ATTR_ROLLUP_INPUT_TOKENS: usage.input_tokens,
        ATTR_ROLLUP_OUTPUT_TOKENS: usage.output_tokens,
        ATTR_ROLLUP_COST: round(usage.cost_usd, 12),
        "scenario.usage.unpriced_calls": usage.unpriced_calls,
        "scenario.usage.cached_calls": usage.cached_calls,
    }
    for role, totals in sorted(usage.by_role.items()):
        attrs[f"scenario.usage.{role}.calls"] = totals.calls
        attrs[f"scenario.usage.{role}.input_tokens"] = totals.input_tokens
        attrs[f"scenario.usage.{role}.output_tokens"] = totals.output_tokens
        attrs[f"scenario.usage.{role}.cost_usd"] = round(totals.cost_usd, 12)
    if usage.by_model:
        attrs["scenario.usage.models"] = sorted(usage.by_model)
    return attrs
