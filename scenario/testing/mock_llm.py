"""An offline, OpenAI-compatible chat-completions server for tests, demos and benchmarks.

``MockLLMServer`` listens on loopback and answers ``POST /v1/chat/completions``
the way a real provider would (same JSON shape, SSE streaming, usage blocks,
OpenAI-style error bodies), but deterministically and without network access:
who is asking (judge, user simulator or agent) decides what it answers, see
:mod:`scenario.testing.mock_behavior`. Faults (429 with ``Retry-After``,
500/503, hangs, malformed bodies, slow answers) can be queued with
:meth:`MockLLMServer.fail_next`, configured in :class:`MockBehavior`, or asked
for per request with ``[mock:...]`` markers in the message text, so tests that
share one server can still inject faults without interfering.

The server runs its own event loop on a daemon thread. That way it works the
same from synchronous code, from pytest-asyncio tests and from benchmarks, and
a test's own event loop is never blocked by server work.

aiohttp is imported only when a server starts: importing this module is cheap.

This module is the plumbing: the socket, the server thread and its loop, and one request
handler that decides, in a fixed order, which fault (if any) a request gets. What the answer
says comes from :mod:`scenario.testing.mock_behavior`, how it is spelled on the wire from
:mod:`scenario.testing.mock_wire`, and what is counted lives in :mod:`scenario.testing.mock_stats`.

Command line (prints one ``listening on http://HOST:PORT/v1`` line when ready)::

    python -m scenario.testing.mock_llm --port 0 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scenario.runtime.event_loops import drain
from scenario.testing import mock_wire
from scenario.testing.mock_behavior import (
    BadRequest,
    ChatRequest,
    MockBehavior,
    MockReply,
    build_reply,
    estimate_tokens,
    parse_request,
)
from scenario.testing.mock_stats import FAULT_KINDS, Fault, MockStats

if TYPE_CHECKING:  # pragma: no cover
    from aiohttp import web

__all__ = ["MockLLMServer", "MockBehavior", "MockStats", "Fault", "main"]

logger = logging.getLogger(__name__)

class MockLLMServer:
    """OpenAI-compatible mock chat-completions server on a background thread.

    ::

        with MockLLMServer(latency=0.0) as server:
            litellm.completion(model="openai/gpt-4o-mini", api_base=server.base_url,
                               api_key="mock", messages=[...])

    Also an async context manager (start/stop run in a worker thread so the
    caller's event loop is not blocked), or call :meth:`start` / :meth:`stop`.

    Args:
        latency: seconds each successful answer waits; overrides ``behavior.latency``.
        behavior: how the server answers, see :class:`MockBehavior`.
        host: interface to bind, loopback by default.
        port: TCP port, ``0`` picks a free one (read it back from :attr:`port`).
    """

    def __init__(
        self,
        latency: float | None = None,
        behavior: MockBehavior | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        behavior = behavior if behavior is not None else MockBehavior()
        if latency is not None:
            behavior = behavior.with_changes(latency=latency)
        self._behavior = behavior
        self._rng = random.Random(behavior.seed)
        self.host = host
        self._requested_port = port
        self._port: int | None = None

        # One lock guards counters and the fault queue: they are touched from
        # the server thread and read/filled from the test thread.
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._stats = MockStats()
        self._faults: collections.deque[Fault] = collections.deque()
        self._ids = itertools.count(1)

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._stopping: asyncio.Event | None = None
        self._web: Any = None

    # ------------------------------------------------------------------ public API

    @property
    def behavior(self) -> MockBehavior:
        return self._behavior

    @behavior.setter
    def behavior(self, behavior: MockBehavior) -> None:
        """Swap the behaviour; the next request uses it (and a fresh ``error_rate`` generator)."""
        with self._lock:
            self._behavior = behavior
            self._rng = random.Random(behavior.seed)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MockLLMServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: pass it as ``api_base`` / ``base_url`` to OpenAI clients."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def stats(self) -> MockStats:
        """A snapshot of the counters (safe to read from any thread)."""
        with self._lock:
            return self._stats.copy()

    def reset_stats(self) -> None:
        """Zero all counters except ``in_flight`` (requests still being handled)."""
        with self._lock:
            in_flight = self._stats.in_flight
            self._stats = MockStats(in_flight=in_flight, max_in_flight=in_flight)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        kind: str = "error",
        retry_after: float | None = None,
        delay: float = 1.0,
    ) -> None:
        """Make the next ``n`` chat-completion requests fail, whoever sends them.

        ``kind="error"`` answers ``status`` (429 answers carry ``Retry-After``:
        ``retry_after`` or ``behavior.retry_after``); ``"hang"`` never answers
        until the client gives up or the server stops; ``"malformed"`` answers
        200 with a non-JSON body; ``"slow"`` adds ``delay`` seconds and then
        answers normally. Calls queue up in order.

        The queue is server-wide: tests sharing a server should prefer
        ``[mock:...]`` markers, which only affect the request that carries them.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if kind == "error" and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if delay < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("delay and retry_after must be >= 0")
        fault = Fault(kind=kind, status=status, retry_after=retry_after, delay=delay)
        with self._lock:
            self._faults.extend([fault] * n)

    def clear_faults(self) -> None:
        """Drop faults queued by :meth:`fail_next` that were not used yet."""
        with self._lock:
            self._faults.clear()

    def start(self, timeout: float = 10.0) -> MockLLMServer:
        """Bind the port and start serving on a daemon thread; returns once ready.

        Binding happens here, in the caller's thread, so "address in use"
        surfaces as an ``OSError`` from ``start()`` rather than from a thread.
        Calling ``start()`` on a running server does nothing.
        """
        with self._lifecycle:
            if self._thread is not None:
                return self
            sock = self._bind()
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._serve,
                args=(sock, ready, failure),
                name=f"scenario-mock-llm-{sock.getsockname()[1]}",
                daemon=True,
            )
            thread.start()
            if not ready.wait(timeout):
                sock.close()
                raise RuntimeError(f"mock LLM server did not start within {timeout}s")
            if failure:
                thread.join(timeout)
                sock.close()
                raise RuntimeError("mock LLM server failed to start") from failure[0]
            self._thread = thread
            return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread. Idempotent.

        Hung requests (``kind="hang"`` / ``[mock:hang]``) are released first and
        their connections closed without an answer, so they never delay shutdown.
        """
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is None:
                return
            if threading.current_thread() is thread:
                raise RuntimeError("MockLLMServer.stop() cannot be called from the server's own thread")
            self._thread = None
            if loop is not None and loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
                try:
                    future.result(timeout)
                except Exception:  # a slow or failed cleanup must not hang the caller
                    logger.warning("mock LLM server did not shut down cleanly", exc_info=True)
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._port = None

    def __enter__(self) -> MockLLMServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> MockLLMServer:
        # start()/stop() wait on a thread; run them off the caller's loop.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"MockLLMServer({where})"

    # ------------------------------------------------------------------ lifecycle internals

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # A large backlog: benchmarks open 200+ connections at once, and an
        # overflowing accept queue turns into 1 s SYN retransmit stalls.
        sock = socket.create_server((self.host, self._requested_port), family=family, backlog=1024)
        self._port = sock.getsockname()[1]
        return sock

    def _serve(self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._setup(sock))
            except BaseException as exc:  # reported to start() in the caller's thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
        finally:
            try:
                drain(loop)
            finally:
                self._loop = None
                loop.close()

    async def _setup(self, sock: socket.socket) -> None:
        from aiohttp import web  # lazy: keeps `import scenario.testing` cheap

        self._web = web
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/models", self._handle_models)
        app.router.add_get("/health", self._handle_health)
        # access_log=None: logging every request would cost more than answering it.
        # handler_cancellation=True: a client that disconnects (e.g. times out on
        # a hung request) cancels its handler, so in_flight stays truthful.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # releases hung handlers
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ request handling

    async def _handle_health(self, request: web.Request) -> web.Response:
        return self._web.json_response({"status": "ok"})

    async def _handle_models(self, request: web.Request) -> web.Response:
        return self._web.json_response(mock_wire.models_body())

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        with self._lock:
            busy = stats.in_flight  # requests already in flight when this one arrived
            stats.requests += 1
            stats.request_times.append(time.monotonic())
            stats.in_flight += 1
            if stats.in_flight > stats.max_in_flight:
                stats.max_in_flight = stats.in_flight
            queued = self._faults.popleft() if self._faults else None
            behavior = self._behavior
        try:
            return await self._answer(request, busy, queued, behavior)
        finally:
            with self._lock:
                self._stats.in_flight -= 1

    async def _answer(
        self,
        request: web.Request,
        busy: int,
        fault: Fault | None,
        behavior: MockBehavior,
    ) -> web.StreamResponse:
        body = await request.read()
        parsed: ChatRequest | None = None
        bad: str | None = None
        try:
            parsed = parse_request(body)
        except BadRequest as exc:
            bad = str(exc)
        if parsed is not None:
            with self._lock:
                self._stats.by_role[parsed.role] += 1

        # Fault precedence: explicit queue, then per-request markers, then the
        # server-wide rate limit, then random errors. The queue applies even to
        # unparseable bodies because "the next n requests" means any request.
        if fault is None and parsed is not None:
            fault = self._marker_fault(parsed, behavior)
        if fault is None and behavior.rate_limit_above is not None and busy >= behavior.rate_limit_above:
            self._count_fault("rate_limit")
            return self._error(429, behavior.retry_after, "Rate limit reached for mock model (too many requests in flight).")
        if fault is None and behavior.error_rate > 0:
            with self._lock:
                draw = self._rng.random()
            if draw < behavior.error_rate:
                self._count_fault("error_rate")
                return self._error(500, None, "The server had an error while processing your request (mock error_rate).")

        if fault is not None:
            self._count_fault(fault.kind)
            if fault.kind == "error":
                retry_after = fault.retry_after
                if retry_after is None and fault.status == 429:
                    retry_after = behavior.retry_after
                return self._error(fault.status, retry_after, f"Mock injected error {fault.status}.")
            if fault.kind == "hang":
                return await self._hang(request)
            if fault.kind == "malformed":
                return self._web.Response(body=mock_wire.MALFORMED_BODY, content_type="application/json")
            # "slow": extra wait, then a normal answer below.

        if parsed is None:
            return self._error(400, None, bad or "Invalid request.")
        if behavior.context_window is not None:
            prompt_tokens = estimate_tokens(parsed.prompt_chars)
            if prompt_tokens > behavior.context_window:
                self._count_fault("context_window")
                return self._error(
                    400, None,
                    f"This model's maximum context length is {behavior.context_window} tokens. However, your "
                    f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                    code="context_length_exceeded",
                )

        delay = behavior.latency + parsed.markers.delay
        if fault is not None and fault.kind == "slow":
            delay += fault.delay
        if delay > 0:
            await asyncio.sleep(delay)  # never time.sleep: other requests keep flowing

        try:
            reply = build_reply(parsed, behavior)
        except Exception as exc:  # a bug here must show up as a clear 500, not a dropped connection
            logger.exception("mock LLM server failed to build a reply")
            return self._error(500, None, f"Mock server bug while building the reply: {exc!r}")
        if parsed.stream:
            return await self._stream(request, parsed, reply)
        return self._web.Response(body=self._completion_body(parsed, reply), content_type="application/json")

    def _marker_fault(self, parsed: ChatRequest, behavior: MockBehavior) -> Fault | None:
        markers = parsed.markers
        if markers.hang:
            return Fault(kind="hang")
        if markers.malformed:
            return Fault(kind="malformed")
        if markers.error_status is not None:
            retry_after = behavior.retry_after if markers.error_status == 429 else None
            return Fault(kind="error", status=markers.error_status, retry_after=retry_after)
        return None

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self._stats.faults[kind] = self._stats.faults.get(kind, 0) + 1

    def _error(
        self, status: int, retry_after: float | None, message: str, code: str | None = None
    ) -> web.Response:
        with self._lock:
            self._stats.errors_served[status] = self._stats.errors_served.get(status, 0) + 1
        body, headers = mock_wire.error_body(status, retry_after, message, code)
        return self._web.Response(status=status, body=body, content_type="application/json", headers=headers)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        """Never answer. Ends when the client disconnects (aiohttp cancels this
        handler) or when the server stops (the connection is closed unanswered)."""
        assert self._stopping is not None
        await self._stopping.wait()
        if request.transport is not None:
            request.transport.close()
        # The connection is gone; aiohttp discards whatever is returned.
        return self._web.Response(status=503)

    # ------------------------------------------------------------------ response bodies
    # ``_usage`` and ``_completion_body`` are hooks: a test's subclass overrides them to record what
    # the server reported or to alter an answer (drop its usage block, say). Every answer goes
    # through them; the spelling itself is :mod:`scenario.testing.mock_wire`'s.

    def _usage(self, parsed: ChatRequest, reply: MockReply) -> dict[str, int]:
        return mock_wire.usage(parsed, reply)

    def _completion_body(self, parsed: ChatRequest, reply: MockReply) -> bytes:
        return mock_wire.completion_body(next(self._ids), parsed, reply, self._usage(parsed, reply))

    async def _stream(self, request: web.Request, parsed: ChatRequest, reply: MockReply) -> web.StreamResponse:
        usage = self._usage(parsed, reply) if parsed.include_usage else None
        events = mock_wire.stream_events(next(self._ids), parsed, reply, usage)
        response = self._web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for data in events:
            await response.write(data)
        await response.write_eof()
        return response


# ---------------------------------------------------------------------- command line


def _build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m scenario.testing.mock_llm",
        description="Offline OpenAI-compatible mock model server for scenario tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default: 0)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer (default: 0)")
    parser.add_argument("--judge-turns", type=int, default=2, help="agent replies before the judge finishes (default: 2)")
    parser.add_argument("--rate-limit-above", type=int, default=None, help="answer 429 when this many requests are in flight")
    parser.add_argument("--retry-after", type=float, default=0.5, help="Retry-After seconds on 429 answers (default: 0.5)")
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of requests answered 500 (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --error-rate (default: 0)")
    parser.add_argument(
        "--failing-criterion",
        action="append",
        default=[],
        metavar="TEXT",
        help="criteria containing TEXT are judged failed (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the mock server until SIGINT/SIGTERM; returns the exit code.

    Prints exactly one line, ``listening on http://HOST:PORT/v1``, once the
    server accepts connections, so scripts can wait for it and read the port.
    ``argv`` defaults to ``sys.argv[1:]``; ``prog`` names the command in
    ``--help`` (e.g. ``"scenario mock-llm"`` when wired into another CLI).
    """
    args = _build_parser(prog).parse_args(argv)
    try:
        behavior = MockBehavior(
            latency=args.latency,
            judge_turns=args.judge_turns,
            rate_limit_above=args.rate_limit_above,
            retry_after=args.retry_after,
            error_rate=args.error_rate,
            seed=args.seed,
            failing_criteria=args.failing_criterion,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())

    server = MockLLMServer(behavior=behavior, host=args.host, port=args.port)
    try:
        try:
            server.start()
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"listening on {server.base_url}", flush=True)
        try:
            # Short waits keep the main thread responsive to signals everywhere.
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:  # when called from a non-main thread setup
            pass
        return 0
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
