"""Stores for the viewer's tests: batches with passing, failing and errored runs, and hostile text.

Records are built directly (not run) so each page test knows exactly what it should show; the
browser tests add stores filled by real runs on the mock model.
"""

from __future__ import annotations

from pathlib import Path

from scenario.records import AttemptInfo, RunRecord, run_id
from scenario.store import ResultStore
from scenario.types import CriterionResult, ModelCall, ScenarioResult, Usage

XSS_SCRIPT = "<script>window.__xss = 'script'</script>"
XSS_IMG = '<img src=x onerror="window.__xss = \'img\'">'
XSS_LINK = "javascript:window.__xss='link'"
XSS_TOOL_ARGS = '{"html": "<iframe src=\\"javascript:window.__xss=1\\"></iframe><b onmouseover=alert(1)>x</b>"}'
LONG = "long-" + "x" * 120_000 + " the end"

SUITE = "shop"
INFO = {
    "description": "Shop support bot",
    "thresholds": {"refund": 0.75, "outage": 0.5, "greeting": 1.0},
    "scenario_order": ["refund", "greeting", "outage"],
    "scenarios": [
        {"name": "refund", "description": "A customer wants a refund " + XSS_SCRIPT, "criteria": ["offers a refund"]},
        {"name": "greeting", "description": "Says hello", "criteria": ["greets"]},
        {"name": "outage", "description": "The provider is down", "criteria": []},
    ],
}


def _usage() -> Usage:
    usage = Usage()
    usage.record(role="user", model="openai/gpt-4o-mini", input_tokens=300, output_tokens=40, cost_usd=0.00007)
    usage.record(role="judge", model="openai/gpt-4o-mini", input_tokens=900, output_tokens=120, cost_usd=0.0002)
    return usage


def make_record(scenario: str, index: int, status: str, *, batch_id: str, hostile: bool = False,
                duration: float = 1.0) -> RunRecord:
    user_text = f"I want a refund for order {index}"
    if hostile:
        user_text += f" {XSS_SCRIPT} {XSS_IMG} [click me]({XSS_LINK})"
    messages: list[dict] = [
        {"role": "user", "content": user_text},
        {"role": "assistant", "content": "Let me look that up." + (f" {XSS_IMG}" if hostile else ""),
         "tool_calls": [{"id": "call_1", "type": "function",
                         "function": {"name": "lookup_order", "arguments": XSS_TOOL_ARGS if hostile else '{"order": 7}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "delivered"}'},
        {"role": "assistant", "content": LONG if hostile else "Your refund has been started."},
    ]
    failed = status == "failed"
    result = None
    if status in ("passed", "failed"):
        result = ScenarioResult(
            success=not failed,
            messages=messages,
            reasoning=("The agent never offered a refund." if failed else "The agent offered a refund.")
            + (f" {XSS_SCRIPT}" if hostile else ""),
            criteria=[CriterionResult(requirement="offers a refund", status="failed" if failed else "passed",
                                      reasoning="It said it would look, then stopped." if failed else "Turn 2.")],
            usage=_usage(),
            model_calls=[
                ModelCall(role="user", model="openai/gpt-4o-mini", input_tokens=300, output_tokens=40,
                          cost_usd=0.00007, latency=0.21),
                ModelCall(role="judge", model="openai/gpt-4o-mini", input_tokens=900, output_tokens=120,
                          cost_usd=0.0002, latency=0.48, attempts=2, rate_limited=1, waited=1.5),
            ],
        )
    record = RunRecord(
        id=run_id(SUITE, scenario, "default", index), suite=SUITE, scenario=scenario, index=index, status=status,
        result=result, started_at=1_764_680_000.0 + index, duration=duration,
        usage=result.usage if result is not None else Usage(), batch_id=batch_id,
    )
    if status == "error":
        record.error_type = "KeyError"
        record.error_message = "'choices'" + (f" {XSS_SCRIPT}" if hostile else "")
        record.error_where = "agent adapter Broken"
        record.error_traceback = ('Traceback (most recent call last):\n  File "my_agent.py", line 12, in call\n'
                                  '    return reply["choices"][0]\nKeyError: \'choices\'')
        record.attempts = 2
        record.attempt_history = [AttemptInfo(status="error", duration=0.1, waited=0.5, error="RateLimitError: 429"),
                                  AttemptInfo(status="error", duration=0.1, error="KeyError: 'choices'")]
    return record


def fill_store(path: Path, *, batches: int = 2, regress: bool = True, hostile: bool = True) -> list[str]:
    """``batches`` finished batches of the shop suite, oldest first; returns their ids.

    The first batch passes everything; in later ones (with ``regress``) "refund" fails 8 of 10
    (a regression beyond chance), "greeting" keeps passing and "outage" errors.
    """
    ids: list[str] = []
    with ResultStore(path) as store:
        for number in range(batches):
            batch = store.start_batch(SUITE, planned=22, info=INFO, batch_id=f"b{number + 1}-{SUITE}")
            later = regress and number > 0
            records = [make_record("refund", i, "failed" if later and i < 8 else "passed", batch_id=batch.id,
                                   hostile=hostile and i == 0, duration=1.0 + i / 10) for i in range(10)]
            records += [make_record("greeting", i, "passed", batch_id=batch.id) for i in range(10)]
            records += [make_record("outage", i, "error" if later else "passed", batch_id=batch.id, hostile=hostile)
                        for i in range(2)]
            store.put_many(records)
            store.finish_batch(batch.id)
            ids.append(batch.id)
    return ids


def refund_run_id(index: int = 0) -> str:
    return run_id(SUITE, "refund", "default", index)


def outage_run_id(index: int = 0) -> str:
    return run_id(SUITE, "outage", "default", index)

