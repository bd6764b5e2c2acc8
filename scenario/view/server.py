"""Run the viewer: bind, print the URL, open a browser, serve until Ctrl-C.

Policy: the socket is bound here before uvicorn starts, so a busy ``--port`` is a clear error
(and without ``--port`` a busy default port falls back to any free one) instead of a log line
from deep inside the server. Binding to anything but loopback needs ``--host`` and prints a
warning: the viewer has no authentication and shows every transcript in the store. A browser is
opened only where one can be (a desktop session), never a text browser inside this terminal.
uvicorn owns the event loop and handles Ctrl-C/SIGTERM with a graceful shutdown; nothing here
starts a thread.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import webbrowser
from typing import Any, TextIO

from scenario.store import ResultStore
from scenario.view.app import create_app

DEFAULT_PORT = 8420
DEFAULT_HOST = "127.0.0.1"


class ViewError(Exception):
    """The viewer cannot start (port busy, bad host); the message says what to do."""


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on (host, port); port None tries the default, then any free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    candidates = [port] if port is not None else [DEFAULT_PORT, 0]
    last: OSError | None = None
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), candidate))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    assert last is not None
    if last.errno == errno.EADDRINUSE:
        raise ViewError(f"port {port} on {host} is in use; pass another --port, or omit --port to pick a free one")
    raise ViewError(f"cannot listen on {host}:{port}: {last.strerror or last}; check --host and --port")


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = host if not (":" in host and not host.startswith("[")) else f"[{host}]"
    if shown in ("0.0.0.0", "[::]"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}/"


def can_open_browser() -> bool:
    """A graphical browser can be opened: macOS, Windows, or a desktop session on Linux/BSD."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def serve(
    store_path: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    open_browser: bool = True,
    out: TextIO | None = None,
    live_interval: float = 1.5,
) -> int:
    """Serve the viewer over ``store_path`` until interrupted; returns the exit code (0).
    Messages go to ``out`` (default: standard error at call time)."""
    import uvicorn

    out = out if out is not None else sys.stderr
    ResultStore(store_path, readonly=True).close()  # a missing or corrupt store fails here, clearly
    allowed = None
    if not is_loopback(host):
        print(f"WARNING: serving on {host}, reachable from other machines. The viewer has no login and shows "
              "every transcript in the store; use it only on a network you trust.", file=out)
        allowed = ["*"]

    sock = bind(host, port)
    url = url_of(sock, host)
    app = create_app(store_path, allowed_hosts=allowed, live_interval=live_interval)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    print(f"scenario view: serving {store_path} at {url} (Ctrl-C to stop)", file=out, flush=True)
    if open_browser:
        if can_open_browser():
            webbrowser.open(url)
        else:
            print("No desktop session here: open the URL in a browser yourself (--no-browser silences this).",
                  file=out, flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        pass
    finally:
        sock.close()
    print("scenario view: stopped.", file=out, flush=True)
    return 0
