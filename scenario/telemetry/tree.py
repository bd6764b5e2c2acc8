"""Span trees as plain data, and an ASCII rendering of them.

Used by the tests (to compare the trees ``run`` and ``arun`` produce) and by
``python -m scenario.trace_demo`` to render a real exported trace for docs/observability.md.
Works on OpenTelemetry SDK spans and on the JSON span records trace back-ends return (Phoenix's
REST API shape: ``context.trace_id``, ``context.span_id``, ``parent_id``, ``attributes``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scenario.telemetry.spans import (
    ATTR_COST,
    ATTR_INPUT_TOKENS,
    ATTR_OUTPUT_TOKENS,
    ATTR_REQUEST_MODEL,
    ATTR_ROLE,
    ATTR_ROLLUP_COST,
    ATTR_ROLLUP_INPUT_TOKENS,
    ATTR_ROLLUP_OUTPUT_TOKENS,
    ATTR_VERDICT,
)


@dataclass
class SpanNode:
    """One span, with its children in start order."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    status: str = "UNSET"
    status_message: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    start: float = 0.0  # seconds, any origin
    end: float = 0.0
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def walk(self) -> Iterable[SpanNode]:
        """This span and all below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def node_from_sdk_span(span: Any) -> SpanNode:
    """A :class:`SpanNode` from an OpenTelemetry SDK ``ReadableSpan``."""
    context = span.get_span_context()
    parent = span.parent
    return SpanNode(
        name=span.name,
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        attributes=dict(span.attributes or {}),
        status=span.status.status_code.name,
        status_message=span.status.description or "",
        events=[{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        start=(span.start_time or 0) / 1e9,
        end=(span.end_time or 0) / 1e9,
    )


def node_from_json(record: Mapping[str, Any]) -> SpanNode:
    """A :class:`SpanNode` from a back-end's JSON span record (Phoenix's ``/v1/.../spans`` shape)."""
    context = record.get("context") or {}
    return SpanNode(
        name=record["name"],
        trace_id=context.get("trace_id") or record.get("trace_id", ""),
        span_id=context.get("span_id") or record.get("span_id", ""),
        parent_id=record.get("parent_id") or None,
        attributes=dict(record.get("attributes") or {}),
        status=str(record.get("status_code") or "UNSET"),
        status_message=str(record.get("status_message") or ""),
        events=[{"name": e.get("name"), "attributes": dict(e.get("attributes") or {})} for e in record.get("events") or []],
        start=_seconds(record.get("start_time")),
        end=_seconds(record.get("end_time")),
    )


def _seconds(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def build_forest(spans: Sequence[Any]) -> list[SpanNode]:
    """Link spans into trees. Roots are spans whose parent is not among ``spans`` (a caller's
    span that was not exported with them, or none)."""
    nodes = [s if isinstance(s, SpanNode) else node_from_sdk_span(s) if hasattr(s, "get_span_context") else node_from_json(s)
             for s in spans]
    by_id = {(n.trace_id, n.span_id): n for n in nodes}
    roots: list[SpanNode] = []
    for node in nodes:
        parent = by_id.get((node.trace_id, node.parent_id)) if node.parent_id else None
        (parent.children if parent is not None else roots).append(node)
    for node in nodes:
        node.children.sort(key=lambda n: (n.start, n.name))
    roots.sort(key=lambda n: (n.start, n.name))
    return roots


DEFAULT_SHOWN = (
    ATTR_VERDICT,
    ATTR_ROLE,
    ATTR_REQUEST_MODEL,
    ATTR_INPUT_TOKENS,
    ATTR_OUTPUT_TOKENS,
    ATTR_COST,
    ATTR_ROLLUP_INPUT_TOKENS,
    ATTR_ROLLUP_OUTPUT_TOKENS,
    ATTR_ROLLUP_COST,
)


def render_tree(roots: Sequence[SpanNode], shown: Sequence[str] = DEFAULT_SHOWN, durations: bool = True) -> str:
    """ASCII tree, one span a line: name, duration, status if not OK/UNSET, chosen attributes."""
    lines: list[str] = []

    def describe(node: SpanNode) -> str:
        parts = [node.name]
        if durations:
            parts.append(f"{node.duration * 1000:.0f} ms")
        if node.status == "ERROR":
            parts.append(f"ERROR {node.status_message}".strip())
        details = []
        for key in shown:
            if key in node.attributes:
                value = node.attributes[key]
                if isinstance(value, float):
                    value = f"{value:.8f}".rstrip("0").rstrip(".") if value else "0"
                short = key.startswith(("gen_ai.usage.", "scenario.usage."))
                details.append(f"{key.rsplit('.', 1)[-1] if short else key}={value}")
        if details:
            parts.append("[" + ", ".join(details) + "]")
        return "  ".join(parts)

    def walk(node: SpanNode, prefix: str, last: bool, top: bool) -> None:
        connector = "" if top else ("└─ " if last else "├─ ")
        lines.append(prefix + connector + describe(node))
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        for index, child in enumerate(node.children):
            walk(child, child_prefix, index == len(node.children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return "\n".join(lines)


def read_phoenix_spans(base_url: str, project: str = "default") -> list[dict[str, Any]]:
    """Every span Phoenix stores for ``project``, following its REST API's pagination."""
    import json
    import urllib.request

    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"{base_url}/v1/projects/{project}/spans?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            page = json.load(response)
        records.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return records
