"""What a failed model call means, said so a user can act on it.

A model call fails for a handful of reasons, and each has one fix. This module says which kind a
failure is, in two vocabularies: :func:`classify_error` (and :func:`retry_after_seconds`) tell the
retry layer (:mod:`scenario.llm.retry`) *whether* and *when* to try again, and :func:`explain`
names the failure and the fix for the user, with the model, the endpoint (credentials removed) and
the setting to change:

============== ================================= =========================================
kind           recognised by                     retried?
============== ================================= =========================================
missing_key    "missing credentials"/"api_key"   no: set the provider's key variable
auth           401, 403                          no: the key is wrong or lacks access
unknown_model  404, "LLM Provider NOT provided"  no: spell it provider/model
context_window ContextWindowExceededError        no: bigger model, or a shorter conversation
bad_request    400, 422                          no: the request's parameters are wrong
timeout        litellm.Timeout, 408              yes, ``max_timeout_attempts`` times
connection     connection refused/reset          yes, with backoff
rate_limit     429                               yes, honouring Retry-After
server         5xx                               yes, with backoff
============== ================================= =========================================

The defaults bound a silent endpoint (accepts the connection, never answers): each attempt
waits ``DEFAULT_MODEL_TIMEOUT`` (45 s) and a timeout is tried ``max_timeout_attempts`` (2)
times, so such a call fails after about 90 s, naming the URL and the timeout setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import io
import re
import socket
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scenario.llm.model_loop import litellm_module

ErrorKind = Literal["rate_limit", "timeout", "connection", "server", "client", "other"]

RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limit", "timeout", "connection", "server"})


#: Failures that no retry can fix (the same request fails the same way).
PERMANENT_KINDS = ("missing_key", "auth", "unknown_model", "context_window", "bad_request")

_MISSING_KEY_RE = re.compile(
    r"missing credentials|api_key client option must be set|no api key|api key (?:is )?(?:not found|missing|required)"
    r"|set the `?\w*_API_KEY`? environment variable|must provide an api key",
    re.IGNORECASE,
)
_UNKNOWN_MODEL_RE = re.compile(
    r"LLM Provider NOT provided|model_not_found|does not exist|unknown model|invalid model", re.IGNORECASE
)
_CONTEXT_RE = re.compile(r"context length|context window|maximum context|too many tokens|context_length_exceeded",
                         re.IGNORECASE)
_CONNECTION_RE = re.compile(r"connection error|connection refused|cannot connect|name or service not known",
                            re.IGNORECASE)
_SECRET_PARAM_RE = re.compile(r"key|token|secret|sig|password|auth", re.IGNORECASE)


def looks_like_missing_key(exc: BaseException) -> bool:
    """litellm reports a missing key as a 500 "internal server error": recognise it by its text."""
    return bool(_MISSING_KEY_RE.search(str(exc)))


def model_error_kind(exc: BaseException) -> str:
    """One of the kinds in the module docstring (``"other"`` when none fits)."""
    names = _mro_names(exc)
    if looks_like_missing_key(exc):
        return "missing_key"
    if "ContextWindowExceededError" in names or (_status_code(exc) in (400, 413) and _CONTEXT_RE.search(str(exc))):
        return "context_window"
    code = _status_code(exc)
    if code in (401, 403) or names & {"AuthenticationError", "PermissionDeniedError"}:
        return "auth"
    if code == 404 or "NotFoundError" in names or (code == 400 and _UNKNOWN_MODEL_RE.search(str(exc))):
        return "unknown_model"
    if code in (400, 422) or names & {"BadRequestError", "UnprocessableEntityError"}:
        return "bad_request"
    kind = classify_error(exc)
    if kind == "server" and _CONNECTION_RE.search(str(exc)):
        return "connection"  # litellm reports a refused connection as a 500 "Connection error."
    return kind if kind in ("timeout", "connection", "rate_limit", "server") else "other"


def redact_url(url: str | None) -> str | None:
    """The URL without user:password and without query parameters that look like credentials."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable api_base>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{k}=***" if _SECRET_PARAM_RE.search(k) else urlencode([(k, v)])
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def key_variable(model: str) -> str | None:
    """The environment variable litellm reads the key from for ``model`` (None if unknown)."""
    try:
        litellm = litellm_module()
        with contextlib.redirect_stdout(io.StringIO()):  # litellm prints a banner for unknown providers
            missing = litellm.validate_environment(model).get("missing_keys") or []
    except Exception:
        return None
    return missing[0] if missing else None


def explain(
    exc: BaseException,
    *,
    role: str,
    model: str,
    api_base: str | None,
    timeout: float | None,
    attempts: int,
    elapsed: float,
) -> str:
    """The message of the ModelCallError for ``exc`` (see the module docstring)."""
    kind = model_error_kind(exc)
    where = f"at {redact_url(api_base)}" if api_base else "at the provider's default endpoint"
    head = f"{role} model call to {model!r} {where}"
    detail = _detail(exc)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''} over {elapsed:.1f}s"
    if kind == "missing_key":
        variable = key_variable(model)
        what = f"set {variable} in the environment" if variable else "set the provider's API key variable"
        return (f"{head}: no API key ({detail}). Fix: {what}, or pass api_key= (scenario.ModelConfig(api_key=...); "
                "in a suite, model.api_key_env). Not retried.")
    if kind == "auth":
        return (f"{head}: the provider refused the credentials ({detail}). Fix: check that the API key is valid and "
                "allowed to use this model (and that api_base points at the provider the key belongs to). Not retried.")
    if kind == "unknown_model":
        return (f"{head}: unknown model or provider ({detail}). Fix: name it provider/model, e.g. "
                "'openai/gpt-4o-mini' or 'anthropic/claude-3-5-haiku-latest' (https://docs.litellm.ai/docs/providers), "
                "and check that the endpoint serves it. Not retried.")
    if kind == "context_window":
        return (f"{head}: the request does not fit the model's context window ({detail}). Fix: use a model with a "
                "larger context window, or shorten the conversation (lower max_turns, shorter agent replies). "
                "Not retried.")
    if kind == "bad_request":
        return (f"{head}: the provider rejected the request as invalid ({detail}). Fix: check the model's parameters "
                "(temperature, max_tokens, extra litellm parameters) for this provider. Not retried.")
    if kind == "timeout":
        per = f"{timeout:g}s" if timeout else "the timeout"
        return (f"{head}: no answer within {per} per attempt; gave up after {tries}. The endpoint may be down or "
                "overloaded. Fix: check the URL, or raise the per-call timeout (scenario.ModelConfig(timeout=...) / "
                "configure(default_model=ModelConfig(..., timeout=...)); in a suite, model.timeout) or "
                "RetryPolicy(max_timeout_attempts=...).")
    if kind == "connection":
        return (f"{head}: could not connect ({detail}); gave up after {tries}. Fix: check api_base and that the "
                "server is running and reachable.")
    if kind in ("rate_limit", "server"):
        what = "rate limited (429)" if kind == "rate_limit" else "failing on the provider's side (5xx)"
        return (f"{head}: still {what} after {tries} ({detail}). Transient errors are retried with backoff "
                "(Retry-After honoured); allow more with configure(retry=scenario.RetryPolicy(max_attempts=...)), "
                "or lower the concurrency / set configure(rate_limits=...).")
    return f"{head} failed after {tries}: {type(exc).__name__}: {detail}"


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------

# Class names (anywhere in the MRO) from litellm, openai, httpx, aiohttp,
# anthropic, ... Matching by name avoids importing any of them.
_TIMEOUT_NAMES = frozenset(
    {
        "Timeout",  # litellm.Timeout
        "APITimeoutError",  # openai
        "TimeoutException",  # httpx base
        "ReadTimeout",
        "ConnectTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ServerTimeoutError",  # aiohttp
        "ConnectionTimeoutError",
        "SocketTimeoutError",
    }
)
_CONNECTION_NAMES = frozenset(
    {
        "APIConnectionError",  # litellm / openai
        "ConnectError",  # httpx
        "NetworkError",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "ClientConnectionError",  # aiohttp
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientPayloadError",
    }
)
_RATE_LIMIT_NAMES = frozenset({"RateLimitError", "TooManyRequests", "ThrottlingException"})
_SERVER_NAMES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "OverloadedError",  # anthropic 529
        "GatewayTimeout",
    }
)
# OSError errnos that mean "the network hiccupped" rather than "this will never work".
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNRESET",
        "ECONNREFUSED",
        "ECONNABORTED",
        "EPIPE",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ETIMEDOUT",
        "EAGAIN",
    )
    if hasattr(errno, name)
)


def _mro_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status_code(exc: BaseException) -> int | None:
    for candidate in (
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
        # aiohttp.ClientResponseError and similar use `.status`.
        getattr(exc, "status", None) if "ClientResponseError" in _mro_names(exc) else None,
    ):
        try:
            code = int(candidate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 100 <= code <= 599:
            return code
    return None


def _classify_status(code: int) -> ErrorKind:
    if code == 429:
        return "rate_limit"
    if code == 408:
        return "timeout"
    # 409: providers use it for transient conflicts (e.g. OpenAI's lock timeouts;
    # its own SDK retries it). 5xx (incl. Anthropic's 529 "overloaded"): server side.
    if code == 409 or code >= 500:
        return "server"
    if 400 <= code < 500:
        return "client"
    return "other"


def _classify_litellm(exc: BaseException) -> ErrorKind | None:
    litellm = sys.modules.get("litellm")  # never import it ourselves
    if litellm is None:
        return None
    checks: tuple[tuple[str, ErrorKind], ...] = (
        ("Timeout", "timeout"),
        ("RateLimitError", "rate_limit"),
        ("APIConnectionError", "connection"),
        ("ContextWindowExceededError", "client"),
        ("ContentPolicyViolationError", "client"),
        ("BadRequestError", "client"),
        ("AuthenticationError", "client"),
        ("PermissionDeniedError", "client"),
        ("NotFoundError", "client"),
        ("UnprocessableEntityError", "client"),
        ("ServiceUnavailableError", "server"),
        ("BadGatewayError", "server"),
        ("InternalServerError", "server"),
    )
    for name, kind in checks:
        cls = getattr(litellm, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return kind
    return None


def _classify_one(exc: BaseException) -> ErrorKind:
    if isinstance(exc, asyncio.CancelledError):
        return "other"
    if looks_like_missing_key(exc):
        return "client"  # litellm wraps "no API key" in a 500: retrying cannot conjure a key
    kind = _classify_litellm(exc)
    if kind is not None:
        return kind
    names = _mro_names(exc)
    # Class checks come before status codes on purpose: litellm gives
    # APIConnectionError status_code=500 and Timeout 408, which would otherwise
    # be mislabelled.
    if names & _TIMEOUT_NAMES or isinstance(exc, (TimeoutError, asyncio.TimeoutError, socket.timeout)):
        return "timeout"
    if names & _CONNECTION_NAMES:
        return "connection"
    if names & _RATE_LIMIT_NAMES:
        return "rate_limit"
    code = _status_code(exc)
    if code is not None:
        return _classify_status(code)
    if names & _SERVER_NAMES:
        return "server"
    if isinstance(exc, (ConnectionError, socket.gaierror)):
        return "connection"
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return "connection"
    # Other OSErrors (FileNotFoundError, PermissionError, ...) are not transient.
    return "other"


def classify_error(exc: BaseException) -> ErrorKind:
    """One of ``rate_limit``, ``timeout``, ``connection``, ``server``, ``client``, ``other``.

    If the exception itself says nothing, its explicit cause (``raise X from Y``)
    is examined, so an agent adapter that wraps a 429 in its own error is still
    seen as rate limited.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        kind = _classify_one(current)
        if kind != "other" or isinstance(current, asyncio.CancelledError):
            return kind
        current = current.__cause__
    return "other"


def is_retryable(exc: BaseException) -> bool:
    """True for rate limits, timeouts, connection failures and server errors; never
    for client errors (4xx other than 408/409/429) or cancellation."""
    if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
        return False  # CancelledError, KeyboardInterrupt, SystemExit: propagate at once
    return classify_error(exc) in RETRYABLE_KINDS


# ---------------------------------------------------------------------------
# Retry-After
# ---------------------------------------------------------------------------


def _header_lookup(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)  # httpx.Headers is case-insensitive
        if value is not None:
            return str(value)
        if isinstance(headers, Mapping) or hasattr(headers, "items"):
            for key, val in headers.items():  # plain dicts are not
                if isinstance(key, str) and key.lower() == name:
                    return str(val)
    except Exception:  # odd header containers: ignore rather than fail the retry
        return None
    return None


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return None
    return max(0.0, seconds)


def _retry_after_one(exc: BaseException) -> float | None:
    sources = (
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    )
    for headers in sources:
        ms = _header_lookup(headers, "retry-after-ms")
        if ms is not None:
            parsed = _parse_retry_after(ms)
            if parsed is not None:
                return parsed / 1000.0
        raw = _header_lookup(headers, "retry-after")
        if raw is not None:
            parsed = _parse_retry_after(raw)
            if parsed is not None:
                return parsed
    return None


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``
    as seconds or an HTTP date), looking at litellm's ``litellm_response_headers``,
    an exception's ``headers`` and ``response.headers``; ``None`` when absent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        value = _retry_after_one(current)
        if value is not None:
            return value
        current = current.__cause__
    return None
