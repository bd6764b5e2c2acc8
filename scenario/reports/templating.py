"""The one Jinja2 environment that the static HTML report and the results viewer render through.

Policy: every page a person reads is a template in ``reports/templates`` (shared pieces: the
stylesheet, the transcript, the verdict, the error, the model calls) or, for the viewer's own
pages, in ``view/templates``; both load through :func:`environment`, so a run looks the same in a
report file and in ``scenario view`` and the two cannot drift apart.

Autoescaping is on for every template: transcripts, tool arguments, reasoning and error text are
untrusted model output and must never become markup. Values that are markup on purpose (the SVG
charts, built here with their own escaping) are wrapped in ``Markup`` by the Python code that
builds them, never marked safe inside a template.

Jinja2 is imported on first use: ``import scenario`` stays light.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")


@lru_cache(maxsize=4)
def environment(extra_dirs: tuple[str, ...] = ()) -> Any:
    """A Jinja2 environment over the shared templates (plus ``extra_dirs``, searched first)."""
    import jinja2

    loader = jinja2.FileSystemLoader([*extra_dirs, str(TEMPLATES)])
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,  # every template, whatever its file name
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,  # an older stored record without a newer field still renders
    )
    env.filters.update(
        cost=format_cost,
        signed_cost=lambda v: ("+" if v > 0 else "-" if v < 0 else "±") + format_cost(abs(v)),
        secs=format_seconds,
        when=format_when,
        pct=format_pct,
        tokens=lambda n: f"{int(n or 0):,}",
        slug=slug,
        group_label=group_label,
    )
    env.globals.update(chat=chat_items, STATUS_WORDS=STATUS_WORDS)
    return env


def render(template: str, **context: Any) -> str:
    """Render one shared template to a string."""
    return environment().get_template(template).render(**context)


STATUS_WORDS = {"passed": "passed", "failed": "failed", "error": "error", "timeout": "timed out",
                "cancelled": "cancelled", "running": "running", "finished": "finished",
                "interrupted": "interrupted"}


# -- value formatting -------------------------------------------------------------------------

def format_cost(value: float | None) -> str:
    """``$0.0045``: four decimals (two significant digits for tiny sums), cents for large ones."""
    value = float(value or 0.0)
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:.2f}"
    # Two significant digits, never an exponent: $0.0045, $0.0000075.
    digits = max(4, 1 - math.floor(math.log10(value)))
    return f"${value:.{digits}f}"


def format_seconds(value: float | None) -> str:
    value = float(value or 0.0)
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.2f}s"
    minutes, seconds = divmod(value, 60)
    return f"{int(minutes)}m{seconds:02.0f}s"


def format_when(timestamp: float | None) -> str:
    if not timestamp:
        return "?"
    return datetime.fromtimestamp(float(timestamp), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_pct(rate: float | None) -> str:
    return "–" if rate is None else f"{float(rate) * 100:.0f}%"


def slug(text: str) -> str:
    """An id-safe form of a name (``runs-my-suite``)."""
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-") or "suite"


def group_label(group: Any) -> str:
    """``scenario`` for the default variant, ``scenario [variant]`` otherwise."""
    return group.scenario if group.variant == "default" else f"{group.scenario} [{group.variant}]"


# -- the transcript as chat items -------------------------------------------------------------

def _pretty(text: Any) -> str:
    """Tool arguments and results: indented JSON when they parse as JSON, else as given."""
    if not isinstance(text, str):
        try:
            return json.dumps(text, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return str(text)
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, dict):
                parts.append(f"[{part.get('type', 'part')}]")
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return _pretty(content)


def chat_items(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Messages as what a chat view shows: who spoke, the text, each tool call with its arguments,
    and each tool result next to the name of the call it answers. Malformed messages (stored
    untrusted data) become a system item with their raw JSON instead of breaking the page."""
    names: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            items.append({"kind": "system", "role": "?", "text": _pretty(message), "calls": []})
            continue
        role = str(message.get("role", "?"))
        calls = []
        for call in message.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call.get("function") or {}
            name = str(function.get("name") or "?")
            if call.get("id"):
                names[str(call["id"])] = name
            calls.append({"id": str(call.get("id") or ""), "name": name, "arguments": _pretty(function.get("arguments", ""))})
        kind = {"user": "user", "assistant": "agent", "tool": "tool", "function": "tool"}.get(role, "system")
        text = _content_text(message.get("content"))
        item: dict[str, Any] = {"kind": kind, "role": role, "text": text, "calls": calls}
        if kind == "tool":
            call_id = str(message.get("tool_call_id") or "")
            item["tool_name"] = names.get(call_id) or message.get("name") or "tool"
            item["call_id"] = call_id
            item["text"] = _pretty(message.get("content"))
        items.append(item)
    return items
