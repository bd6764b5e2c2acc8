"""Live progress: counters, plain lines for CI and pipes, the rich display on a terminal."""

from __future__ import annotations

import io

import pytest

from scenario.batch.progress import BatchProgress, format_duration, use_rich
from scenario.concurrency.strategies import SlidingWindow
from scenario.records import RunRecord
from scenario.types import Usage


def rec(index: int, status: str, attempts: int = 1, cost: float = 0.001) -> RunRecord:
    usage = Usage()
    usage.record(role="judge", model="m", input_tokens=10, output_tokens=5, cost_usd=cost)
    return RunRecord(id=str(index), scenario="refund", variant="terse", index=index, status=status, attempts=attempts,
                     usage=usage, error_type="RateLimitError" if status == "error" else None,
                     error_message="429" if status == "error" else None)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_pass_rate_retries_cost_and_eta():
    stream = io.StringIO()
    progress = BatchProgress(10, skipped=4, skipped_passed=3, mode="plain", stream=stream, title="shop", interval=0)
    progress.start()
    assert progress.pass_rate == pytest.approx(3 / 4)  # stored runs count from the start
    assert progress.eta is None
    progress.run_started()
    progress.run_finished(rec(0, "passed"))
    progress.run_finished(rec(1, "error", attempts=3))
    progress.run_finished(rec(2, "failed"))
    assert (progress.done, progress.passed, progress.failed, progress.errors) == (7, 4, 1, 1)
    assert progress.retries == 2
    assert progress.cost_usd == pytest.approx(0.003)
    assert progress.pass_rate == pytest.approx(4 / 7)
    assert progress.eta is not None and progress.eta >= 0
    progress.stop()
    text = stream.getvalue()
    assert text.splitlines()[0] == "shop: 10 runs, 4 already in the store"
    assert "  ERROR: refund [terse] #2: RateLimitError: 429" in text
    assert "[7/10 70%] in flight" in text and "retries 2" in text and "cost $0.0030" in text and "ETA" in text


def test_plain_lines_are_throttled_but_the_last_one_always_prints():
    stream = io.StringIO()
    progress = BatchProgress(3, mode="plain", stream=stream, interval=3600)
    progress.start()
    for i in range(3):
        progress.run_finished(rec(i, "passed"))
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("[")]
    assert lines == [lines[0], lines[-1]] and lines[-1].startswith("[3/3 100%]")


def test_in_flight_and_429s_come_from_the_strategy():
    strategy = SlidingWindow(4)
    progress = BatchProgress(5, mode="off", strategy=strategy)
    strategy.on_rate_limited(1.0)
    strategy.on_rate_limited(None)
    assert progress.rate_limited_total == 2
    assert progress.in_flight == 0
    without = BatchProgress(5, mode="off")
    without.run_started()
    without.run_started()
    without.run_finished(rec(0, "passed"))
    assert without.in_flight == 1


def test_rich_display_renders_on_a_terminal(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = Tty()
    assert use_rich(stream)
    progress = BatchProgress(2, mode="auto", stream=stream, title="shop")
    assert progress.mode == "rich"
    progress.start()
    progress.run_finished(rec(0, "passed"))
    progress.run_finished(rec(1, "failed"))
    progress.stop()
    out = stream.getvalue()
    assert "shop" in out and "2/2" in out and "pass 50%" in out
    assert "FAILED" in out and "refund [terse] #2" in out  # printed above the live display


def test_plain_in_ci_or_when_not_a_terminal(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not use_rich(Tty())
    monkeypatch.delenv("CI")
    assert not use_rich(io.StringIO())
    assert BatchProgress(1, stream=io.StringIO()).mode == "plain"


def test_bad_mode_and_closed_stream():
    with pytest.raises(ValueError, match="progress mode"):
        BatchProgress(1, mode="fancy")
    stream = io.StringIO()
    progress = BatchProgress(1, mode="plain", stream=stream)
    stream.close()
    progress.start()  # a closed pipe never fails the batch
    progress.run_finished(rec(0, "passed"))


def test_format_duration():
    assert format_duration(None) == "--:--"
    assert format_duration(65) == "01:05"
    assert format_duration(3725) == "1:02:05"


def test_plain_mode_shows_calls_waiting_to_retry_as_they_happen(monkeypatch):
    """No run finishes while calls sleep before retrying: the ticker still says what is going on."""
    import time

    from scenario.batch import progress as progress_module
    from scenario.llm.retry import retry_board

    monkeypatch.setattr(progress_module, "MIN_TICK", 0.05)
    stream = io.StringIO()
    progress = BatchProgress(3, mode="plain", stream=stream, title="shop", interval=0.05)
    progress.start()
    tokens = [retry_board.add(4.0, "rate_limit"), retry_board.add(9.0, "server"), retry_board.add(6.0, "timeout")]
    try:
        deadline = time.monotonic() + 10
        while "retrying" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for token in tokens:
            retry_board.remove(token)
        progress.stop()
    line = next(line for line in stream.getvalue().splitlines() if "retrying" in line)
    assert "| 3 calls retrying, next in 4 s; 1 rate-limited |" in line or \
        "| 3 calls retrying, next in 3 s; 1 rate-limited |" in line
    assert progress._ticker is not None and not progress._ticker.is_alive()  # stop() ends its thread


def test_messages_are_whole_when_output_is_not_a_terminal():
    long_reason = "The agent never asked for the order number. " * 40 + "THE END"
    record = rec(5, "failed")
    record.error_type, record.error_message = None, None
    from scenario.types import ScenarioResult

    record.result = ScenarioResult(success=False, reasoning=long_reason)
    stream = io.StringIO()
    progress = BatchProgress(1, mode="plain", stream=stream, title="shop", interval=0)
    progress.start()
    progress.run_finished(record)
    progress.stop()
    assert long_reason.strip() in stream.getvalue()

    from scenario.records import BatchResult

    summary = BatchResult.from_records([record]).summary()
    assert " ".join(long_reason.split()) in summary and "…" not in summary
