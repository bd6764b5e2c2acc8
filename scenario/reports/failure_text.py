"""The one plain-text explanation of a run that did not pass.

pytest's failure output, JUnit ``<failure>`` text (ours and pytest's), the CLI's failure section
and the HTML report's collapsed traceback all answer the same question — why did this run fail? —
so they read this one text: the verdict, each failed (and inconclusive) criterion with the
judge's reasoning, the error with its traceback, and the last turns of the conversation.

Policy: nothing here is cut. A failure message that loses the part with the answer is worse than
a long one; callers that show a live one-line status shorten their own copy and print this in
full at the end.
"""

from __future__ import annotations

from typing import Any

from scenario.engine.state import message_text

#: Turns of the conversation shown (a turn is one message; tool results included).
LAST_TURNS = 6


def explain(
    result: Any = None,
    *,
    title: str | None = None,
    error_type: str | None = None,
    error_message: str | None = None,
    error_where: str | None = None,
    traceback: str | None = None,
    last_turns: int = LAST_TURNS,
) -> str:
    """Why a run did not pass, from its :class:`scenario.ScenarioResult` (and/or error fields).

    Args:
        result: the run's result (None when the run never produced one).
        title: a first line such as ``scenario 'refund' run 3 failed``.
        error_type, error_message, error_where, traceback: the error when ``result`` lacks it
            (a record whose run raised before producing a result).
        last_turns: how many of the conversation's last messages to show.
    """
    lines: list[str] = []
    if title:
        lines.append(title)
    reasoning = getattr(result, "reasoning", None)
    if reasoning:
        lines.append(f"Verdict: {reasoning}")
    for criterion in getattr(result, "criteria", None) or []:
        if criterion.status == "passed":
            continue
        mark = "FAILED" if criterion.status == "failed" else criterion.status.upper()
        lines.append(f"  {mark}: {criterion.requirement}")
        if criterion.reasoning:
            lines.append(f"      judge: {criterion.reasoning}")
    if not getattr(result, "criteria", None):
        for requirement in getattr(result, "failed_criteria", None) or []:
            lines.append(f"  FAILED: {requirement}")
    info = getattr(result, "error", None)
    if info is not None:
        error_type = error_type or info.type
        error_message = error_message if error_message is not None else info.message
        error_where = error_where or info.where
        traceback = traceback or info.traceback
    if error_type:
        where = f" at {error_where}" if error_where else ""
        lines.append(f"Error{where}: {error_type}: {error_message or ''}".rstrip())
        if traceback:
            lines.extend("    " + line for line in traceback.splitlines())
    messages = list(getattr(result, "messages", None) or [])
    if messages and last_turns > 0:
        shown = messages[-last_turns:]
        skipped = len(messages) - len(shown)
        lines.append(f"Last {len(shown)} of {len(messages)} messages:" if skipped else "Conversation:")
        for message in shown:
            lines.extend(_message_lines(message))
    return "\n".join(lines)


def explain_record(record: Any, *, last_turns: int = LAST_TURNS) -> str:
    """:func:`explain` for a stored :class:`scenario.RunRecord`."""
    word = {"failed": "failed", "error": "errored", "timeout": "timed out"}.get(record.status, record.status)
    variant = f" [{record.variant}]" if record.variant and record.variant != "default" else ""
    retry = f" after {record.attempts} attempts" if record.attempts > 1 else ""
    return explain(
        record.result,
        title=f"{record.scenario}{variant} run {record.index + 1} {word}{retry}",
        error_type=record.error_type,
        error_message=record.error_message,
        error_where=record.error_where,
        traceback=record.error_traceback,
        last_turns=last_turns,
    )


def _message_lines(message: dict[str, Any]) -> list[str]:
    role = str(message.get("role", "?"))
    try:
        text = message_text(message)
    except Exception:  # a malformed message is still worth showing
        text = repr(message)
    label = {"assistant": "agent"}.get(role, role)
    body = (text or "").splitlines() or [""]
    lines = [f"  {label}: {body[0]}"]
    lines.extend(f"  {' ' * len(label)}  {line}" for line in body[1:])
    return lines
