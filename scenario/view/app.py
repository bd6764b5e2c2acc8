"""The viewer's HTTP side: routes, the read-only store, 404s, security headers.

Policy: every response is rendered from a template with autoescaping; every page carries a
Content-Security-Policy that allows scripts only from this server (no inline script, so text
that slipped into markup still could not run), and a Host check keeps other web pages from
reaching a loopback viewer through DNS rebinding. Unknown batches or runs get a 404 page with a
link back; a store that becomes unreadable gets a 500 page naming the store, not a traceback.
Endpoints are plain ``def`` functions: Starlette runs them on its thread pool, so a slow query
never blocks the event loop, and the store serialises its one connection with its own lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from scenario.reports.stats import wilson_interval
from scenario.reports.templating import environment
from scenario.store import ResultStore, StoreError
from scenario.view.pages import Pages

_HERE = Path(__file__).parent
_CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _env() -> Any:
    env = environment((str(_HERE / "templates"),))
    env.globals.update(wilson=wilson_interval, href=href)
    return env


def href(*parts: Any, **query: Any) -> str:
    """A site-relative URL with every path part quoted (ids come from the store: untrusted)."""
    path = "/" + "/".join(quote(str(p), safe="") for p in parts)
    wanted = {k: v for k, v in query.items() if v not in (None, "", False)}
    return path + ("?" + urlencode(wanted) if wanted else "")


def create_app(store_path: Any, *, allowed_hosts: Sequence[str] | None = None, live_interval: float = 1.5) -> Any:
    """The ASGI app. ``allowed_hosts``: Host header values accepted (default: loopback names).

    The store is opened read-only when the app starts and closed when it stops.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = _env()
    state: dict[str, Any] = {}

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(template).render(store_path=str(store_path), live_interval=live_interval, **context)
        return HTMLResponse(body, status_code=status, headers=_HEADERS)

    def not_found(what: str) -> HTMLResponse:
        return page("page_not_found.html", 404, what=what)

    def pages() -> Pages:
        return state["pages"]

    def batches(request: Request) -> Response:
        suite = request.query_params.get("suite") or None
        data = pages().batches(suite)
        if suite is not None and suite not in data["suites"]:
            return not_found(f"suite {suite!r}")
        # Always live: a batch started after this page was opened should appear on it.
        return page("page_batches.html", live=True, **data)

    def batch(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        data = pages().batch(batch_id, failures_only=request.query_params.get("failures") in ("1", "on", "true"))
        if data is None:
            return not_found(f"batch {batch_id!r}")
        return page("page_batch.html", live=data["batch"].status == "running", **data)

    def run(request: Request) -> Response:
        batch_id, run_id = request.path_params["batch_id"], request.path_params["run_id"]
        data = pages().run(batch_id, run_id)
        if data is None:
            live = pages().live_run(batch_id, run_id)
            if live is not None:  # still running: show its transcript so far
                return page("page_live_run.html", live=True, **live)
            return not_found(f"run {run_id!r} of batch {batch_id!r}")
        return page("page_run.html", live=data["batch"].status == "running", **data)

    def live_run(request: Request) -> Response:
        batch_id, run_id = request.path_params["batch_id"], request.path_params["run_id"]
        data = pages().live_run(batch_id, run_id)
        if data is None:
            return not_found(f"running run {run_id!r} of batch {batch_id!r}")
        return page("page_live_run.html", live=True, **data)

    def compare(request: Request) -> Response:
        params = request.query_params
        data = pages().comparison(params.get("base") or None, params.get("head") or None, params.get("suite") or None)
        if data is None:
            return not_found(f"batch {params.get('base') or params.get('head')!r}")
        return page("page_compare.html", **data)

    def stamp(request: Request) -> Response:
        return JSONResponse({"stamp": pages().stamp()}, headers=_HEADERS)

    def unknown(request: Request) -> Response:
        return not_found(f"page {request.url.path!r}")

    async def store_error(request: Request, exc: Exception) -> Response:
        return page("page_error.html", 500, message=str(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        store = ResultStore(store_path, readonly=True)
        state["pages"] = Pages(store)
        try:
            yield
        finally:
            store.close()

    routes = [
        Route("/", batches),
        Route("/batch/{batch_id}", batch),
        Route("/batch/{batch_id}/run/{run_id}", run),
        Route("/batch/{batch_id}/live/{run_id}", live_run),
        Route("/compare", compare),
        Route("/api/stamp", stamp),
        Mount("/static", app=StaticFiles(directory=str(_HERE / "static")), name="static"),
        Route("/{path:path}", unknown),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else list(LOOPBACK_HOSTS)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)] if "*" not in hosts else []
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={StoreError: store_error})
