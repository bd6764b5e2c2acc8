"""``scenario view``: a local web app over a result store (batches, a batch, a run, compare, live).

Policy: the viewer only reads. It opens the store read-only (SQLite WAL lets it read while a batch
writes), binds to 127.0.0.1 unless told otherwise, and renders every page on the server from the
templates the static HTML report uses (``scenario.reports.templating``), with autoescaping on:
transcripts are untrusted model output. Pages that can change (a running batch) poll a cheap
"has anything changed" endpoint and swap their content in place; no page needs scripting to read.

The web stack (Starlette, uvicorn) is the optional ``scenario[view]`` extra, imported only here
and only when the viewer starts: ``import scenario`` never loads it.
"""

from __future__ import annotations

import importlib.util

from scenario.view.app import create_app
from scenario.view.server import serve

__all__ = ["create_app", "serve", "missing_extra"]

VIEW_EXTRA_HINT = "pip install 'scenario[view]'"


def missing_extra() -> str | None:
    """The name of a web-stack package that is not installed, or None when the viewer can run."""
    for module in ("starlette", "uvicorn", "jinja2"):
        if importlib.util.find_spec(module) is None:
            return module
    return None
