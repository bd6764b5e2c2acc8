"""Retry policy: classification of litellm / openai / builtin errors, Retry-After,
backoff, attempt counting and re-raising the original exception."""

from __future__ import annotations

import asyncio
import email.utils
import errno
import os
import subprocess
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network on import

import httpx
import pytest
import tenacity

from scenario.llm.retry import (
    RetryEvent,
    RetryPolicy,
    call_with_retries,
    classify_error,
    is_retryable,
    retry_after_seconds,
)

litellm = pytest.importorskip("litellm")
openai = pytest.importorskip("openai")

_REQ = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def _resp(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=_REQ)


class _Sleeps:
    """Injected sleep: records the requested waits, spends none."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _fast(sleeps: _Sleeps | None = None, **overrides) -> RetryPolicy:
    params = dict(max_attempts=4, initial_backoff=0.001, max_backoff=0.004, jitter=0.0)
    params.update(overrides)
    return RetryPolicy(sleep=sleeps, **params)


class _Flaky:
    def __init__(self, failures: list[BaseException], value: str = "ok") -> None:
        self.failures = list(failures)
        self.value = value
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.value


def _rate_limit(headers: dict[str, str] | None = None) -> Exception:
    return litellm.RateLimitError(
        message="slow down", llm_provider="openai", model="m", response=_resp(429, headers) if headers else None
    )


# ---------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------

LITELLM_CASES = [
    (lambda: litellm.RateLimitError(message="x", llm_provider="openai", model="m"), "rate_limit"),
    (lambda: litellm.Timeout(message="x", model="m", llm_provider="openai"), "timeout"),
    (lambda: litellm.APIConnectionError(message="x", llm_provider="openai", model="m"), "connection"),
    (lambda: litellm.InternalServerError(message="x", llm_provider="openai", model="m"), "server"),
    (lambda: litellm.ServiceUnavailableError(message="x", llm_provider="openai", model="m"), "server"),
    (lambda: litellm.BadGatewayError(message="x", llm_provider="openai", model="m"), "server"),
    (lambda: litellm.APIError(status_code=529, message="overloaded", llm_provider="anthropic", model="m"), "server"),
    (lambda: litellm.APIError(status_code=503, message="x", llm_provider="openai", model="m"), "server"),
    (lambda: litellm.APIError(status_code=429, message="x", llm_provider="openai", model="m"), "rate_limit"),
    (lambda: litellm.APIError(status_code=400, message="x", llm_provider="openai", model="m"), "client"),
    (lambda: litellm.BadRequestError(message="x", model="m", llm_provider="openai"), "client"),
    (lambda: litellm.AuthenticationError(message="x", llm_provider="openai", model="m"), "client"),
    (lambda: litellm.NotFoundError(message="x", model="m", llm_provider="openai"), "client"),
    (
        lambda: litellm.PermissionDeniedError(message="x", llm_provider="openai", model="m", response=_resp(403)),
        "client",
    ),
    (
        lambda: litellm.UnprocessableEntityError(message="x", model="m", llm_provider="openai", response=_resp(422)),
        "client",
    ),
    (lambda: litellm.ContextWindowExceededError(message="x", model="m", llm_provider="openai"), "client"),
    (lambda: litellm.ContentPolicyViolationError(message="x", model="m", llm_provider="openai"), "client"),
]


@pytest.mark.parametrize(("factory", "expected"), LITELLM_CASES)
def test_classify_litellm_exceptions(factory, expected):
    exc = factory()
    assert classify_error(exc) == expected
    assert is_retryable(exc) == (expected in {"rate_limit", "timeout", "connection", "server"})


@pytest.mark.parametrize(("factory", "expected"), LITELLM_CASES)
def test_classify_litellm_exceptions_by_duck_typing_when_litellm_is_not_imported(factory, expected, monkeypatch):
    exc = factory()
    monkeypatch.delitem(sys.modules, "litellm")  # as if nobody had imported it
    assert classify_error(exc) == expected


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (lambda: openai.RateLimitError("x", response=_resp(429), body=None), "rate_limit"),
        (lambda: openai.APITimeoutError(request=_REQ), "timeout"),
        (lambda: openai.APIConnectionError(request=_REQ), "connection"),
        (lambda: openai.InternalServerError("x", response=_resp(500), body=None), "server"),
        (lambda: openai.APIStatusError("x", response=_resp(529), body=None), "server"),
        (lambda: openai.ConflictError("x", response=_resp(409), body=None), "server"),
        (lambda: openai.BadRequestError("x", response=_resp(400), body=None), "client"),
        (lambda: openai.AuthenticationError("x", response=_resp(401), body=None), "client"),
        (lambda: openai.PermissionDeniedError("x", response=_resp(403), body=None), "client"),
        (lambda: openai.NotFoundError("x", response=_resp(404), body=None), "client"),
        (lambda: openai.UnprocessableEntityError("x", response=_resp(422), body=None), "client"),
        (lambda: httpx.ConnectError("refused", request=_REQ), "connection"),
        (lambda: httpx.ReadTimeout("slow", request=_REQ), "timeout"),
        (lambda: httpx.HTTPStatusError("x", request=_REQ, response=_resp(502)), "server"),
        (lambda: httpx.HTTPStatusError("x", request=_REQ, response=_resp(408)), "timeout"),
        (lambda: asyncio.TimeoutError(), "timeout"),
        (lambda: TimeoutError(), "timeout"),
        (lambda: ConnectionResetError(), "connection"),
        (lambda: BrokenPipeError(), "connection"),
        (lambda: OSError(errno.ECONNREFUSED, "refused"), "connection"),
        (lambda: FileNotFoundError(2, "nope"), "other"),
        (lambda: ValueError("bad"), "other"),
        (lambda: asyncio.CancelledError(), "other"),
    ],
)
def test_classify_other_exceptions(factory, expected):
    assert classify_error(factory()) == expected


def test_duck_typed_status_codes_and_wrapped_causes():
    class ProviderError(Exception):
        def __init__(self, status_code):
            super().__init__(status_code)
            self.status_code = status_code

    assert classify_error(ProviderError(429)) == "rate_limit"
    assert classify_error(ProviderError("503")) == "server"
    assert classify_error(ProviderError(418)) == "client"
    try:
        try:
            raise _rate_limit()
        except Exception as inner:
            raise RuntimeError("adapter failed") from inner
    except RuntimeError as outer:
        assert classify_error(outer) == "rate_limit"


def test_cancellation_and_client_errors_are_never_retryable():
    assert not is_retryable(asyncio.CancelledError())
    assert not is_retryable(KeyboardInterrupt())
    for status in (400, 401, 403, 404, 422):
        assert not is_retryable(openai.APIStatusError("x", response=_resp(status), body=None)), status
    for status in (408, 429, 500, 502, 503, 504, 529):
        assert is_retryable(openai.APIStatusError("x", response=_resp(status), body=None)), status


def test_import_does_not_pull_in_litellm():
    code = (
        "import sys; import scenario.llm.retry, scenario.concurrency.strategies, scenario.concurrency.rate_limits, scenario.concurrency.resources; "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------
# Retry-After
# ---------------------------------------------------------------------------


def test_retry_after_from_response_headers():
    assert retry_after_seconds(_rate_limit({"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(_rate_limit({"retry-after-ms": "1500"})) == 1.5
    assert retry_after_seconds(_rate_limit()) is None
    assert retry_after_seconds(_rate_limit({"Retry-After": "soon-ish"})) is None
    assert retry_after_seconds(ValueError()) is None


def test_retry_after_from_litellm_response_headers_and_http_date():
    exc = litellm.InternalServerError(message="x", llm_provider="openai", model="m")
    exc.litellm_response_headers = httpx.Headers({"retry-after": "3"})
    assert retry_after_seconds(exc) == 3.0
    plain = litellm.ServiceUnavailableError(message="x", llm_provider="openai", model="m")
    plain.litellm_response_headers = {"Retry-After": "4"}  # plain dict, odd case
    assert retry_after_seconds(plain) == 4.0
    dated = _rate_limit({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert 25 <= retry_after_seconds(dated) <= 31
    past = _rate_limit({"retry-after": email.utils.formatdate(time.time() - 30, usegmt=True)})
    assert retry_after_seconds(past) == 0.0
    proxy = litellm.RateLimitError(message="x", llm_provider="openai", model="m", headers={"retry-after": "2"})
    assert retry_after_seconds(proxy) == 2.0


# ---------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------


def test_policy_defaults_and_validation():
    p = RetryPolicy()
    assert (p.max_attempts, p.initial_backoff, p.max_backoff, p.multiplier, p.jitter) == (4, 0.5, 30.0, 2.0, 0.5)
    assert p.respect_retry_after is True and p.max_retry_after == 60.0
    with pytest.raises(ValueError, match="max_attempts=0"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter=1.5"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="initial_backoff=-1"):
        RetryPolicy(initial_backoff=-1)
    with pytest.raises(ValueError, match="multiplier=0.5"):
        RetryPolicy(multiplier=0.5)


def test_backoff_is_exponential_capped_and_jittered():
    p = RetryPolicy(initial_backoff=1.0, max_backoff=5.0, multiplier=2.0, jitter=0.5)
    assert p.backoff_bounds(1) == (0.5, 1.0)
    assert p.backoff_bounds(2) == (1.0, 2.0)
    assert p.backoff_bounds(4) == (2.5, 5.0)  # capped
    samples = [p.compute_sleep(2) for _ in range(200)]
    assert all(1.0 <= s <= 2.0 for s in samples)
    assert len(set(samples)) > 1  # jittered
    # Retry-After wins over a shorter backoff, never under the lower bound, capped.
    assert p.compute_sleep(1, retry_after=3.0) == 3.0
    assert p.compute_sleep(2, retry_after=0.1) == 1.0
    assert RetryPolicy(max_retry_after=10).compute_sleep(1, retry_after=500) == 10
    assert RetryPolicy(respect_retry_after=False, jitter=0, initial_backoff=0.5).compute_sleep(1, 9.0) == 0.5


# ---------------------------------------------------------------------------
# call_with_retries
# ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_retries_then_succeeds_counting_attempts():
    sleeps = _Sleeps()
    events: list[RetryEvent] = []
    fn = _Flaky([_rate_limit(), litellm.Timeout(message="t", model="m", llm_provider="openai")])
    value, attempts = await call_with_retries(fn, _fast(sleeps), on_retry=events.append)
    assert (value, attempts, fn.calls) == ("ok", 3, 3)
    assert [e.attempt for e in events] == [1, 2]
    assert [e.classification for e in events] == ["rate_limit", "timeout"]
    assert [e.sleep for e in events] == sleeps.calls == [0.001, 0.002]


@pytest.mark.asyncio
async def test_gives_up_with_the_original_exception_and_attempt_count():
    original = litellm.ServiceUnavailableError(message="down", llm_provider="openai", model="m")
    fn = _Flaky([original] * 10)
    with pytest.raises(litellm.ServiceUnavailableError) as info:
        await call_with_retries(fn, _fast(_Sleeps(), max_attempts=3))
    assert info.value is original
    assert not isinstance(info.value, tenacity.RetryError)
    assert info.value.scenario_attempts == 3
    assert fn.calls == 3


@pytest.mark.asyncio
async def test_exception_refusing_attributes_is_still_reraised():
    class Frozen(ConnectionError):
        def __setattr__(self, name, value):
            raise AttributeError(name)

    fn = _Flaky([Frozen()] * 5)
    with pytest.raises(Frozen):
        await call_with_retries(fn, _fast(_Sleeps(), max_attempts=2))
    assert fn.calls == 2


@pytest.mark.asyncio
async def test_never_retries_bad_request():
    sleeps = _Sleeps()
    fn = _Flaky([litellm.BadRequestError(message="bad", model="m", llm_provider="openai")])
    with pytest.raises(litellm.BadRequestError) as info:
        await call_with_retries(fn, _fast(sleeps))
    assert fn.calls == 1 and sleeps.calls == []
    assert info.value.scenario_attempts == 1


@pytest.mark.asyncio
async def test_never_retries_cancellation():
    fn = _Flaky([asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(fn, _fast(_Sleeps()))
    assert fn.calls == 1


@pytest.mark.asyncio
async def test_cancelling_the_caller_during_backoff_stops_retrying():
    fn = _Flaky([ConnectionResetError()] * 10)
    task = asyncio.create_task(call_with_retries(fn, RetryPolicy(initial_backoff=5, max_backoff=5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fn.calls == 1


@pytest.mark.asyncio
async def test_honours_retry_after():
    sleeps = _Sleeps()
    events: list[RetryEvent] = []
    fn = _Flaky([_rate_limit({"retry-after": "2"}), _rate_limit({"retry-after-ms": "250"})])
    _, attempts = await call_with_retries(fn, _fast(sleeps), on_retry=events.append)
    assert attempts == 3
    assert sleeps.calls == [2.0, 0.25]
    assert [e.retry_after for e in events] == [2.0, 0.25]
    # ... but not beyond max_retry_after, and not at all when disabled.
    sleeps = _Sleeps()
    await call_with_retries(_Flaky([_rate_limit({"retry-after": "120"})]), _fast(sleeps, max_retry_after=1.5))
    assert sleeps.calls == [1.5]
    sleeps = _Sleeps()
    await call_with_retries(_Flaky([_rate_limit({"retry-after": "120"})]), _fast(sleeps, respect_retry_after=False))
    assert sleeps.calls == [0.001]


@pytest.mark.asyncio
async def test_real_sleep_is_used_by_default():
    fn = _Flaky([ConnectionResetError()])
    start = time.perf_counter()
    _, attempts = await call_with_retries(fn, RetryPolicy(initial_backoff=0.05, max_backoff=0.05, jitter=0))
    assert attempts == 2
    assert time.perf_counter() - start >= 0.045


@pytest.mark.asyncio
async def test_failing_on_retry_callback_does_not_change_the_outcome():
    def boom(_: RetryEvent) -> None:
        raise RuntimeError("observer bug")

    value, attempts = await call_with_retries(_Flaky([TimeoutError()]), _fast(_Sleeps()), on_retry=boom)
    assert (value, attempts) == ("ok", 2)
