"""Live progress of a batch: a rich display on a terminal, plain lines elsewhere.

Plain lines are for CI logs and pipes, where cursor tricks turn into garbage: a status line at
most every few seconds, plus one line per run that did not pass, so a log shows what failed
without scrolling through every success.

Counters come from the records the batch hands over as runs finish; "in flight" and 429s are also
read from the concurrency strategy when one is given, because they happen before any run ends.
Calls waiting to retry are read from :data:`scenario.llm.retry.retry_board` as they happen ("3 calls
retrying, next in 4 s; 1 rate-limited"), so a stuck endpoint never looks like a quiet one: in plain
mode a ticker thread (owned here, stopped by :meth:`BatchProgress.stop`) writes the status line
when it changes, and at least every ``HEARTBEAT`` seconds while runs are in flight.
rich is imported only when the rich display is used.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

from scenario.llm.retry import retry_board
from scenario.records import RunRecord
from scenario.rollup import pass_rate

PLAIN_INTERVAL = 5.0
HEARTBEAT = 30.0
MIN_TICK = 1.0  # the ticker never wakes more often than this, whatever ``interval`` is


def use_rich(stream: TextIO) -> bool:
    """Whether a live display makes sense: a real terminal, not CI, not a dumb terminal."""
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb" or os.environ.get("NO_COLOR") == "force-plain":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class BatchProgress:
    """Counts what finished and shows it; feed it with :meth:`run_finished`.

    Args:
        total: runs in the batch, including ``skipped`` ones already in the store.
        skipped: runs found finished in the store (counted as done, not timed).
        mode: ``"auto"`` (rich on a terminal, plain otherwise), ``"rich"``, ``"plain"`` or ``"off"``.
        stream: where to write (standard error by default, so standard output stays for reports).
        strategy: the batch's concurrency strategy, read for in-flight runs and 429s.
        title: shown before the counters (the suite name).
        interval: seconds between plain status lines.
    """

    def __init__(
        self,
        total: int,
        *,
        skipped: int = 0,
        skipped_passed: int = 0,
        mode: str = "auto",
        stream: TextIO | None = None,
        strategy: Any = None,
        title: str = "",
        interval: float = PLAIN_INTERVAL,
    ):
        self.total = total
        self.skipped = skipped
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "rich" if use_rich(self.stream) else "plain"
        if mode not in ("rich", "plain", "off"):
            raise ValueError(f"progress mode must be auto, rich, plain or off, got {mode!r}")
        self.mode = mode
        self.strategy = strategy
        self.title = title
        self.interval = interval
        self._lock = threading.Lock()
        self.done = skipped
        self.passed = skipped_passed
        self.failed = 0
        self.errors = 0
        self.retries = 0
        self.rate_limited = 0
        self.cost_usd = 0.0
        self.started_runs = 0
        self._finished_here = 0
        self._started_at: float | None = None
        self._last_line = float("-inf")
        self._live: Any = None
        self._stopped = False
        self._bar: Any = None
        self._task: Any = None
        self._ticker: threading.Thread | None = None
        self._ticking = threading.Event()
        self._last_text = ""

    # -- feeding -------------------------------------------------------------------------------
    def start(self) -> None:
        self._started_at = time.monotonic()
        if self.mode == "rich":
            self._start_rich()
        elif self.mode == "plain":
            already = f", {self.skipped} already in the store" if self.skipped else ""
            self._write(f"{self.title}: {self.total} runs{already}")
            self._ticker = threading.Thread(target=self._tick, name="scenario-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """Plain mode between finished runs: show retries and waits as they happen (a line when
        the status changed and nothing was written for a period; a heartbeat while runs hang)."""
        period = max(self.interval, MIN_TICK)
        while not self._ticking.wait(period):
            now = time.monotonic()
            if now - self._last_line < period:
                continue  # a finished run just wrote the status
            text = self.status_line()
            changed = _without_clock(text) != _without_clock(self._last_text)
            if changed or (now - self._last_line >= HEARTBEAT and self.in_flight):
                self._last_line = now
                self._write(text)

    def run_started(self, *_: Any) -> None:
        with self._lock:
            self.started_runs += 1

    def run_finished(self, record: RunRecord) -> None:
        """Count one finished run (safe from any thread)."""
        with self._lock:
            self.done += 1
            self._finished_here += 1
            if record.status == "passed":
                self.passed += 1
            elif record.status == "failed":
                self.failed += 1
            else:
                self.errors += 1
            self.retries += max(0, record.attempts - 1) + int(getattr(record, "retries", 0) or 0)
            self.rate_limited += int(getattr(record, "rate_limited", 0) or 0)
            self.cost_usd += record.usage.cost_usd
        if self.mode == "rich":
            if record.status != "passed" and self._live is not None:
                from rich.markup import escape

                colour = "red" if record.status == "failed" else "yellow"
                self._live.console.print(
                    f"[{colour}]{record.status.upper()}[/] {escape(_run_label(record))}: {escape(_short(record.reasoning))}",
                    highlight=False,
                )
            self._update_rich()
        elif self.mode == "plain":
            if record.status != "passed":
                # Not a terminal: whole messages (a log is read later, and nothing redraws it).
                self._write(f"  {record.status.upper()}: {_run_label(record)}: {_whole(record.reasoning)}")
            now = time.monotonic()
            if now - self._last_line >= self.interval or self.done >= self.total:
                self._last_line = now
                self._write(self.status_line())

    def stop(self) -> None:
        """End the display (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._ticking.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=5)
        if self._live is not None:
            self._update_rich()
            self._live.stop()
            self._live = None
        elif self.mode == "plain" and self._finished_here and self.done < self.total:
            self._write(self.status_line())

    # -- numbers -------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        if self.strategy is not None:
            try:
                return int(self.strategy.in_flight)
            except Exception:  # a strategy without the counter: fall back to our own count
                pass
        return max(0, self.started_runs - self._finished_here)

    @property
    def rate_limited_total(self) -> int:
        from_strategy = 0
        if self.strategy is not None:
            try:
                from_strategy = int(self.strategy.snapshot().get("rate_limited", 0))
            except Exception:
                from_strategy = 0
        return max(from_strategy, self.rate_limited)

    @property
    def pass_rate(self) -> float | None:
        """Passed / done, stored runs included (errors count as not passed)."""
        return pass_rate(self.passed, self.done) if self.done else None

    @property
    def eta(self) -> float | None:
        if self._started_at is None or not self._finished_here:
            return None
        remaining = self.total - self.done
        if remaining <= 0:
            return 0.0
        elapsed = time.monotonic() - self._started_at
        return elapsed / self._finished_here * remaining

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    @property
    def waits(self) -> str:
        """Calls sleeping before a retry right now, e.g. ``3 calls retrying, next in 4 s; 1 rate-limited``."""
        return retry_board.snapshot().describe()

    def status_line(self) -> str:
        rate = self.pass_rate
        percent = f"{self.done / self.total:.0%}" if self.total else "100%"
        waits = self.waits
        return (
            f"[{self.done}/{self.total} {percent}] in flight {self.in_flight} | "
            f"pass {'-' if rate is None else f'{rate:.1%}'} | errors {self.errors} | retries {self.retries} | "
            f"429s {self.rate_limited_total} | {waits + ' | ' if waits else ''}cost ${self.cost_usd:.4f} | "
            f"elapsed {format_duration(self.elapsed)} | ETA {format_duration(self.eta)}"
        )

    # -- output --------------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        if line.startswith("["):
            self._last_text = line
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # closed pipe: progress is never worth failing a batch
            pass

    def _start_rich(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=self.stream)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            expand=True,
        )
        self._task = self._bar.add_task(self.title or "runs", total=self.total, completed=self.done)
        # The counters go on their own line: on a narrow terminal they would squeeze the bar.
        self._live = Live(Group(self._bar, _Stats(self)), console=console, refresh_per_second=4, transient=False)
        self._live.start()
        self._update_rich()

    def rich_stats(self) -> str:
        rate = self.pass_rate
        waits = self.waits
        return (
            f"in flight {self.in_flight}  pass {'-' if rate is None else f'{rate:.0%}'}  "
            f"[red]errors {self.errors}[/]  retries {self.retries}  429s {self.rate_limited_total}  "
            f"{'[yellow]' + waits + '[/]  ' if waits else ''}cost ${self.cost_usd:.4f}  ETA {format_duration(self.eta)}"
        )

    def _update_rich(self) -> None:
        if self._bar is None:
            return
        self._bar.update(self._task, completed=self.done)
        if self._live is not None:
            self._live.refresh()


class _Stats:
    """The counter line under the bar, re-read on every refresh."""

    def __init__(self, progress: BatchProgress):
        self.progress = progress

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text.from_markup(self.progress.rich_stats())


def _without_clock(line: str) -> str:
    """A status line minus the parts that change every second (elapsed, ETA, "next in")."""
    import re

    return re.sub(r"elapsed \S+|ETA \S+|next in \d+ s", "", line)


def _run_label(record: RunRecord) -> str:
    variant = f" [{record.variant}]" if record.variant and record.variant != "default" else ""
    return f"{record.scenario}{variant} #{record.index + 1}"


def _whole(text: str | None) -> str:
    return text.strip() if text and text.strip() else "(no reasoning)"


def _short(text: str | None, limit: int = 160) -> str:
    """For the live area of a terminal only; the full text is printed in the failure section."""
    if not text:
        return "(no reasoning)"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
