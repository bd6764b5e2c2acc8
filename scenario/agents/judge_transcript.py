"""What the judge reads when a conversation is too long to hand over whole.

Policy: below the judge's ``token_threshold`` (default 8192 estimated tokens) the judge reads
the full transcript, as always. Above it, it reads a condensed transcript that fits in about
three quarters of the threshold: every message keeps its index, role and length and the start
of its text; when even that is too long, the oldest-but-first messages are replaced by one
"omitted" line. The judge then gets two lookup tools to read what it needs in full:

- ``read_messages(indices)``: the full text of chosen messages;
- ``search_messages(query)``: the indices and a snippet of every message containing ``query``
  (case-insensitive).

Each lookup answer is capped at a quarter of the threshold, and the judge may make at most
``max_discovery_steps`` lookup rounds before it must rule, so the judge's context stays bounded
(roughly threshold x (0.75 + steps / 4) tokens, plus the prompt) however long the conversation.
Tokens are estimated as characters / 4: cheap, provider-independent, and close enough for a
budget (the threshold is a budget, not a hard model limit).
"""

from __future__ import annotations

import json
from typing import Any

from scenario.engine.state import message_text

CHARS_PER_TOKEN = 4
DEFAULT_TOKEN_THRESHOLD = 8192
DEFAULT_MAX_DISCOVERY_STEPS = 10
_MIN_PREVIEW = 60
_MAX_PREVIEW = 400

LOOKUP_NAMES = ("read_messages", "search_messages")

LOOKUP_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "read_messages",
            "description": "Read the full text of transcript messages by their index.",
            "parameters": {
                "type": "object",
                "properties": {"indices": {"type": "array", "items": {"type": "integer"},
                                           "description": "Message indices, as shown in the transcript."}},
                "required": ["indices"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_messages",
            "description": "Find the messages whose text contains a phrase (case-insensitive).",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Text to look for."}},
                "required": ["query"],
            },
        },
    },
]

CONDENSED_NOTE = (
    "The conversation is long, so the transcript above is condensed: each message shows its index, role, "
    "length in characters and the start of its text, and some messages may be omitted. Before you rule on a "
    "criterion that depends on details you cannot see, call read_messages or search_messages."
)


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


def condensed_transcript(messages: list[dict[str, Any]], token_threshold: int) -> str:
    """The transcript cut to about three quarters of ``token_threshold`` (see module doc)."""
    budget = token_threshold * CHARS_PER_TOKEN * 3 // 4
    texts = [message_text(m) for m in messages]
    preview = max(_MIN_PREVIEW, min(_MAX_PREVIEW, budget // max(len(messages), 1)))
    lines = [_preview_line(i, m, t, preview) for i, (m, t) in enumerate(zip(messages, texts))]
    if sum(len(line) + 1 for line in lines) <= budget:
        return "\n".join(lines)
    # Too many messages even as previews: keep the opening exchange and as much of the end as fits.
    head = lines[:2]
    room = budget - sum(len(line) + 1 for line in head) - 80
    tail: list[str] = []
    for line in reversed(lines[2:]):
        if room - len(line) - 1 < 0:
            break
        tail.insert(0, line)
        room -= len(line) + 1
    first_omitted, last_omitted = len(head), len(lines) - len(tail) - 1
    omitted = f'<omitted from="{first_omitted}" to="{last_omitted}" count="{last_omitted - first_omitted + 1}"/>'
    return "\n".join([*head, omitted, *tail])


def _preview_line(index: int, message: dict[str, Any], text: str, preview: int) -> str:
    role = message.get("role", "unknown")
    shown = text if len(text) <= preview else text[:preview] + "..."
    # role stays the first attribute: tools that scan transcripts match <message role="...">.
    return f'<message role="{role}" index="{index}" chars="{len(text)}">{shown}</message>'


def answer_lookup(call: dict[str, Any], messages: list[dict[str, Any]], token_threshold: int) -> str:
    """The tool result for one lookup call (always a string; bad arguments get an explanation)."""
    function = call.get("function") or {}
    limit = token_threshold * CHARS_PER_TOKEN // 4
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        return "The arguments were not valid JSON; call the tool again with JSON arguments."
    if not isinstance(arguments, dict):
        return "The arguments must be a JSON object."
    if function.get("name") == "read_messages":
        return _read(arguments.get("indices"), messages, limit)
    return _search(arguments.get("query"), messages, limit)


def _read(indices: Any, messages: list[dict[str, Any]], limit: int) -> str:
    if not isinstance(indices, list) or not all(isinstance(i, int) for i in indices):
        return f"indices must be a list of integers between 0 and {len(messages) - 1}."
    parts: list[str] = []
    used = 0
    for index in indices:
        if not 0 <= index < len(messages):
            parts.append(f"[{index}] no such message (indices run from 0 to {len(messages) - 1})")
            continue
        entry = f"[{index}] {messages[index].get('role', 'unknown')}: {message_text(messages[index])}"
        if used + len(entry) > limit:
            entry = entry[: max(0, limit - used)] + f"... (cut: answer limit reached; read [{index}] again alone)"
        parts.append(entry)
        used += len(entry)
        if used >= limit:
            break
    return "\n\n".join(parts)


def _search(query: Any, messages: list[dict[str, Any]], limit: int) -> str:
    if not isinstance(query, str) or not query.strip():
        return "query must be a non-empty string."
    needle = query.lower()
    hits: list[tuple[int, str]] = []
    for index, message in enumerate(messages):
        text = message_text(message)
        at = text.lower().find(needle)
        if at >= 0:
            start = max(0, at - 80)
            hits.append((index, f"[{index}] {message.get('role', 'unknown')}: ...{text[start:at + len(query) + 80]}..."))
    if not hits:
        return f"No message contains {query!r}."
    out: list[str] = []
    used = 0
    for _index, line in hits:
        if used + len(line) > limit:
            out.append(f"... and {len(hits) - len(out)} more matches; search for something more specific.")
            break
        out.append(line)
        used += len(line)
    return "\n".join(out)
