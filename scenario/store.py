"""The result store: every batch kept, one SQLite row per run, written the moment the run finishes.

Why SQLite: it is in the standard library, a committed row survives the process being killed
(WAL mode writes it to the log before ``put`` returns), and several processes (pytest-xdist
workers, parallel CI jobs) can write one file at once; SQLite serialises their writers and
``busy_timeout`` makes them wait instead of failing.

History, not a cache: every ``scenario run`` (and every ``run_batch(store=...)``) is a *batch*
with its own row in ``batches``; its runs are keyed by (batch id, run id), so running a suite
again never reuses an older verdict. A batch is ``running`` while its process writes it,
``finished`` when it ran to its end, and ``interrupted`` when it was stopped (Ctrl-C, SIGTERM, a
failed write) or its process died without saying so (a ``running`` batch whose writer process on
this host is gone reads as ``interrupted``). Resuming continues a batch in place; within a batch
a finished verdict (passed/failed) is never replaced by a later error of the same run with the
same fingerprint, so two jobs racing on one run still leave its best outcome.

A file that is not ours (another SQLite database, or not SQLite at all) is refused with a
:class:`StoreError` before anything is written to it. A store written by an older version
(format 1: one row per run, no batches) is migrated in place when opened for writing, and read
through a migrated in-memory copy when opened read-only, so old results stay readable.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from scenario.errors import ScenarioError
from scenario.records import RunRecord

STORE_FORMAT = "scenario-results"
STORE_VERSION = 2
DEFAULT_STORE_PATH = ".scenario/results.db"
VERDICT_STATUSES = ("passed", "failed")  # what resume keeps; errors and timeouts run again
BATCH_STATUSES = ("running", "finished", "interrupted")

_SQLITE_HEADER = b"SQLite format 3\x00"
_META_TABLE = "scenario_store"
_BUSY_TIMEOUT_SECONDS = 60.0
_GIT_TIMEOUT_SECONDS = 5.0

_BATCHES_TABLE = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    suite TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    planned INTEGER NOT NULL DEFAULT 0,
    git_commit TEXT,
    git_branch TEXT,
    git_dirty INTEGER,
    reason TEXT,
    command TEXT,
    resumes INTEGER NOT NULL DEFAULT 0,
    info TEXT NOT NULL DEFAULT '{}',
    writer TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_by_suite ON batches (suite, started_at);
"""

# Transcripts of runs still in flight, for the viewer's live pages (created on first use).
_LIVE_TABLE = """
CREATE TABLE IF NOT EXISTS live_runs (
    batch_id TEXT NOT NULL,
    id TEXT NOT NULL,
    suite TEXT NOT NULL,
    scenario TEXT NOT NULL,
    variant TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    messages TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (batch_id, id)
)
"""

# Covers the per-batch counts (the batches list, the viewer's verdicts) so they read this index,
# not the runs' rows with their transcripts: a 100,000-run store lists its batches in milliseconds.
_BATCH_INDEX = "CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch_id, scenario, variant, status, cost_usd)"

# Covers outcomes(batch_id=...) in its order: a resume's plan and the run's summary read a batch's
# statuses and fingerprints from here instead of walking rows that carry whole transcripts (10,000
# runs: ~0.3 s per read without it).
_OUTCOMES_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_outcomes ON runs (batch_id, suite, scenario, variant, run_index, started_at, id, "
    "status, duration, cost_usd, attempts, input_tokens, output_tokens, fingerprint)"
)

_RUNS_TABLE = f"""
CREATE TABLE IF NOT EXISTS runs (
    batch_id TEXT NOT NULL,
    id TEXT NOT NULL,
    suite TEXT NOT NULL,
    scenario TEXT NOT NULL,
    variant TEXT NOT NULL,
    run_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    error_type TEXT,
    error_message TEXT,
    fingerprint TEXT,
    record TEXT NOT NULL,
    written_at REAL NOT NULL,
    writer TEXT NOT NULL,
    PRIMARY KEY (batch_id, id)
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, scenario, variant);
{_BATCH_INDEX};
{_OUTCOMES_INDEX};
"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_META_TABLE} (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
{_RUNS_TABLE}
CREATE TABLE IF NOT EXISTS suites (
    name TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    parts TEXT NOT NULL
);
{_BATCHES_TABLE}
"""

_RUN_COLUMNS = ("batch_id, id, suite, scenario, variant, run_index, status, started_at, duration, attempts, calls, "
                "input_tokens, output_tokens, cost_usd, error_type, error_message, fingerprint, record, written_at, "
                "writer")

# Within a batch, a finished verdict wins over a later error/cancellation of the same run with the
# same fingerprint (racing writers, or a retried run that then failed to even start); anything
# else, a re-run because the fingerprint changed included, is replaced by the newer row.
_UPSERT = f"""
INSERT INTO runs ({_RUN_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(batch_id, id) DO UPDATE SET
    suite = excluded.suite, scenario = excluded.scenario, variant = excluded.variant,
    run_index = excluded.run_index, status = excluded.status, started_at = excluded.started_at,
    duration = excluded.duration, attempts = excluded.attempts, calls = excluded.calls,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    cost_usd = excluded.cost_usd, error_type = excluded.error_type, error_message = excluded.error_message,
    fingerprint = excluded.fingerprint, record = excluded.record, written_at = excluded.written_at,
    writer = excluded.writer
WHERE excluded.status IN ('passed', 'failed') OR runs.status NOT IN ('passed', 'failed')
   OR excluded.fingerprint IS NOT runs.fingerprint
"""

# Batches are read in two steps: their rows, then one grouped count over the runs of exactly those
# batches (from the covering index runs_by_batch). One LEFT JOIN ... GROUP BY b.id made SQLite sort
# every joined run in a temporary B-tree when filtering by suite: ~0.5 s on a 100,000-run store.
_BATCH_SELECT = """
SELECT b.id, b.suite, b.status, b.started_at, b.finished_at, b.planned, b.git_commit, b.git_branch, b.git_dirty,
       b.reason, b.command, b.resumes, b.info, b.writer
FROM batches b
"""
_BATCH_COUNTS = """
SELECT batch_id, SUM(status IN ('passed', 'failed', 'error', 'timeout')), SUM(status = 'passed'),
       SUM(status = 'failed'), SUM(status IN ('error', 'timeout')), SUM(cost_usd)
FROM runs WHERE batch_id IN (SELECT value FROM json_each(?)) GROUP BY batch_id
"""


class StoreError(ScenarioError):
    """The store file cannot be used (not ours, corrupted, unreadable). It was left untouched."""


class RunOutcome(NamedTuple):
    """The columns of one stored run that verdicts and progress need (no transcript)."""

    id: str
    suite: str
    scenario: str
    variant: str
    index: int
    status: str
    duration: float
    cost_usd: float
    attempts: int
    tokens: int
    batch_id: str = ""
    fingerprint: str | None = None


@dataclass(frozen=True)
class BatchInfo:
    """One batch of a store: when and where it ran, how far it got, and its counts.

    ``status`` is ``"running"``, ``"finished"`` (ran to its end) or ``"interrupted"`` (stopped
    early, or its process died: see the module docstring). Counts are of stored runs: ``finished``
    runs reached an end of their own (``passed + failed + errors``); ``planned`` is what the batch
    set out to run, so ``planned - finished`` runs are missing from an interrupted batch.
    """

    id: str
    suite: str
    status: str
    started_at: float
    finished_at: float | None
    planned: int
    finished: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0  # errors and timeouts
    cost_usd: float = 0.0
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    reason: str | None = None  # why it stopped early (or was marked interrupted)
    command: str | None = None  # the command line that started (or last resumed) it
    resumes: int = 0
    writer: str = ""  # host:pid of the process that last ran it
    info: dict[str, Any] = field(default_factory=dict, repr=False)  # suite snapshot: thresholds, criteria

    @property
    def pass_rate(self) -> float:
        """Passed runs over finished runs (0 when none finished)."""
        return self.passed / self.finished if self.finished else 0.0

    @property
    def missing(self) -> int:
        """Planned runs with no finished record yet."""
        return max(0, self.planned - self.finished)

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else max(0.0, self.finished_at - self.started_at)


def new_batch_id(at: float | None = None) -> str:
    """``20261202-134501-3fa9c1``: sorts by start time (UTC), readable in a terminal, unique."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if at is None else at))
    return f"{stamp}-{secrets.token_hex(3)}"


def git_state(directory: str | os.PathLike[str] | None = None) -> tuple[str | None, str | None, bool | None]:
    """(commit, branch, dirty) of the git checkout holding ``directory``; Nones outside one.

    Each git call has a timeout: a batch never waits on a slow or hung repository for long.
    """
    cwd = str(directory) if directory is not None else None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                  timeout=_GIT_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None, None
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch == "HEAD":  # detached (as CI checkouts often are)
        branch = None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, branch, (bool(status) if status is not None else None)


class ResultStore:
    """An SQLite file of batches and their run records. Safe to share between threads and processes.

    ::

        with ResultStore("results.db") as store:
            batch = store.start_batch("my-suite", planned=10)
            store.put(record.model_copy(update={"batch_id": batch.id}))
            store.finish_batch(batch.id)
            print(store.batches("my-suite")[0].passed)

    ``run_batch(..., store=...)`` and ``scenario run`` do all of this for you.

    Args:
        path: the database file; created (with parent folders) unless ``readonly``.
        readonly: open an existing store for reading only (reports, the viewer).
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        self._writer = f"{self._host}:{os.getpid()}"
        self._check_file()
        self._conn = self._open()

    # -- opening ------------------------------------------------------------------------------
    def _check_file(self) -> None:
        shown = str(self.path)
        if self.path.is_dir():
            raise StoreError(f"result store {shown} is a directory; give a file path such as {shown}/results.db")
        if not self.path.exists():
            if self.readonly:
                raise StoreError(f"result store {shown} does not exist; run 'scenario run SUITE --store {shown}' first")
            return
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(len(_SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"cannot read result store {shown}: {exc}") from None
        if header and header != _SQLITE_HEADER:
            raise StoreError(
                f"{shown} is not a scenario result store (it is not an SQLite database). It was left untouched: "
                "pass another --store path, or move the file away"
            )
        if not header and self.readonly:
            raise StoreError(f"result store {shown} is empty; no runs were stored in it")

    def _open(self) -> sqlite3.Connection:
        """Connect and check the file; a lock held by another process is waited out, not mistaken
        for corruption (two jobs starting on one new store race to create it and switch it to WAL,
        and SQLite answers "database is locked" to the loser of that race at once)."""
        shown = str(self.path)
        deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
        while True:
            conn = self._connect()
            try:
                return self._prepare(conn)
            except StoreError:
                conn.close()
                raise
            except sqlite3.OperationalError as exc:
                conn.close()
                if not _is_lock_error(exc):
                    raise self._unreadable(exc) from None
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"result store {shown} stayed locked by another process for {_BUSY_TIMEOUT_SECONDS:.0f}s "
                        f"({exc}); wait for the other job to finish or pass another --store path"
                    ) from None
                time.sleep(0.02 + random.random() * 0.08)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise self._unreadable(exc) from None

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                                       isolation_level=None)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_SECONDS, check_same_thread=False,
                                   isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open result store {self.path}: {exc}") from None

    def _prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """Check the file and bring it to this version; returns the connection to use (a
        migrated in-memory copy for a read-only version-1 store)."""
        shown = str(self.path)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and _META_TABLE not in tables:
            raise StoreError(
                f"{shown} is an SQLite database but not a scenario result store (tables: "
                f"{', '.join(sorted(tables)[:5])}). It was left untouched: pass another --store path"
            )
        version = self._check_version(conn) if _META_TABLE in tables else STORE_VERSION
        if self.readonly:
            if version < STORE_VERSION:
                copy = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                conn.backup(copy)
                conn.close()
                self._migrate(copy, version)
                return copy
            return conn
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit is in the log (the OS's page cache) when put() returns,
        # which survives a killed process; only a power cut can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        if not tables:
            self._create(conn)  # idempotent: another process may have created it meanwhile
        elif version < STORE_VERSION:
            self._migrate(conn, version)
        else:
            conn.execute(_BATCH_INDEX)  # a store made before these indexes gets them once (no-op after)
            conn.execute(_OUTCOMES_INDEX)
        return conn

    def _unreadable(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"result store {self.path} is corrupted or unreadable ({exc}). It was left untouched: pass another "
            "--store path; 'sqlite3 FILE .recover' may rescue its rows"
        )

    def _create(self, conn: sqlite3.Connection) -> None:
        with _immediate(conn):
            # Statement by statement: executescript() would commit our IMMEDIATE transaction first.
            _execute_script(conn, _SCHEMA)
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('format', ?)", (STORE_FORMAT,))
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('version', ?)", (str(STORE_VERSION),))
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('created_at', ?)", (str(time.time()),))

    def _check_version(self, conn: sqlite3.Connection) -> int:
        meta = dict(conn.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall())
        if meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.path} is not a scenario result store (format {meta.get('format')!r}); left untouched")
        try:
            version = int(meta.get("version", "0"))
        except ValueError:
            version = -1
        if version not in (1, STORE_VERSION):
            raise StoreError(
                f"result store {self.path} has format version {meta.get('version')}, this scenario version reads "
                f"versions 1 to {STORE_VERSION}; use a matching scenario version or a new --store path"
            )
        return version

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Version 1 -> 2: each suite's runs become one finished batch, started when its first
        run started (version 1 kept one row per run and no history, so there is one to make)."""
        with _immediate(conn):
            current = int(dict(conn.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall()).get("version", "0"))
            if current >= STORE_VERSION:  # another process migrated it while we waited for the lock
                return
            conn.execute("DROP INDEX IF EXISTS runs_by_suite")
            conn.execute("ALTER TABLE runs RENAME TO runs_v1")
            _execute_script(conn, _SCHEMA)
            suites = conn.execute(
                "SELECT suite, MIN(started_at), MAX(started_at + duration), COUNT(*), MAX(writer) FROM runs_v1 "
                "GROUP BY suite"
            ).fetchall()
            now = time.time()
            for suite, first, last, count, writer in suites:
                batch_id = new_batch_id(first)
                conn.execute(
                    "INSERT INTO batches (id, suite, status, started_at, finished_at, planned, reason, info, writer, "
                    "updated_at) VALUES (?, ?, 'finished', ?, ?, ?, ?, ?, ?, ?)",
                    (batch_id, suite, first, last, count, "migrated from a version-1 store (no batch history)",
                     json.dumps(_suite_info(conn, suite)), writer or "", now),
                )
                conn.execute(
                    f"INSERT INTO runs ({_RUN_COLUMNS}) SELECT ?, id, suite, scenario, variant, run_index, status, "
                    "started_at, duration, attempts, calls, input_tokens, output_tokens, cost_usd, error_type, "
                    "error_message, NULL, record, written_at, writer FROM runs_v1 WHERE suite = ?",
                    (batch_id, suite),
                )
            conn.execute("DROP TABLE runs_v1")
            conn.execute(f"UPDATE {_META_TABLE} SET value = ? WHERE key = 'version'", (str(STORE_VERSION),))
            conn.execute(f"INSERT OR REPLACE INTO {_META_TABLE} VALUES ('migrated_from_1_at', ?)", (str(now),))

    # -- batches ------------------------------------------------------------------------------
    def start_batch(
        self,
        suite: str,
        *,
        planned: int = 0,
        info: dict[str, Any] | None = None,
        command: str | None = None,
        git_dir: str | os.PathLike[str] | None = None,
        batch_id: str | None = None,
    ) -> BatchInfo:
        """Open a new ``running`` batch of ``suite`` (git commit and branch read from ``git_dir``,
        default the working directory) and return it."""
        self._require_writable()
        now = time.time()
        batch_id = batch_id or new_batch_id(now)
        commit, branch, dirty = git_state(git_dir)
        with self._write("starting a batch"):
            self._conn.execute(
                "INSERT INTO batches (id, suite, status, started_at, planned, git_commit, git_branch, git_dirty, "
                "command, info, writer, updated_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, suite, now, int(planned), commit, branch, None if dirty is None else int(dirty), command,
                 json.dumps(info or {}, default=str), self._writer, now),
            )
        found = self.batch(batch_id)
        assert found is not None
        return found

    def resume_batch(self, batch_id: str, *, planned: int | None = None, command: str | None = None,
                     info: dict[str, Any] | None = None) -> BatchInfo:
        """Mark a batch ``running`` again in this process (its runs so far are kept)."""
        self._require_writable()
        if self.batch(batch_id) is None:
            raise StoreError(f"result store {self.path} has no batch {batch_id!r}")
        sets = ["status = 'running'", "finished_at = NULL", "reason = NULL", "resumes = resumes + 1", "writer = ?",
                "updated_at = ?"]
        params: list[Any] = [self._writer, time.time()]
        for column, value in (("planned", planned), ("command", command),
                              ("info", None if info is None else json.dumps(info, default=str))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        with self._write("resuming a batch"):
            self._conn.execute(f"UPDATE batches SET {', '.join(sets)} WHERE id = ?", (*params, batch_id))
        found = self.batch(batch_id)
        assert found is not None
        return found

    def finish_batch(self, batch_id: str, status: str = "finished", reason: str | None = None) -> None:
        """Close a batch as ``finished`` or ``interrupted`` (with why)."""
        self._require_writable()
        if status not in ("finished", "interrupted"):
            raise ValueError(f"finish_batch(status={status!r}): use 'finished' or 'interrupted'")
        now = time.time()
        with self._write("closing a batch"):
            self._conn.execute(
                "UPDATE batches SET status = ?, finished_at = ?, reason = ?, updated_at = ? WHERE id = ?",
                (status, now, reason, now, batch_id),
            )

    def batches(self, suite: str | None = None) -> list[BatchInfo]:
        """Every batch (of one suite), newest first, with its run counts."""
        where, params = ("WHERE b.suite = ? ", (suite,)) if suite is not None else ("", ())
        rows = self._query(f"{_BATCH_SELECT} {where}ORDER BY b.started_at DESC, b.id DESC", params)
        return self._with_counts(rows)

    def batch(self, batch_id: str) -> BatchInfo | None:
        """One batch by id (None if the store has no such batch)."""
        rows = self._query(f"{_BATCH_SELECT} WHERE b.id = ?", (batch_id,))
        return self._with_counts(rows)[0] if rows else None

    def _with_counts(self, rows: list[tuple]) -> list[BatchInfo]:
        counts = {row[0]: row[1:] for row in self._query(_BATCH_COUNTS, (json.dumps([r[0] for r in rows]),))} \
            if rows else {}
        return [self._batch_info(row + tuple(c or 0 for c in counts.get(row[0], (0, 0, 0, 0, 0.0))))
                for row in rows]

    def latest_batch(self, suite: str, status: str | None = None) -> BatchInfo | None:
        """The newest batch of ``suite`` (with that status, if given), or None."""
        for info in self.batches(suite):
            if status is None or info.status == status:
                return info
        return None

    def _batch_info(self, row: tuple) -> BatchInfo:
        (batch_id, suite, status, started, finished_at, planned, commit, branch, dirty, reason, command, resumes,
         info, writer, finished, passed, failed, errors, cost) = row
        if status == "running" and self._writer_gone(writer):
            status, reason = "interrupted", reason or f"its process ({writer}) ended without closing it"
        try:
            info_dict = json.loads(info) if info else {}
        except ValueError:
            info_dict = {}
        return BatchInfo(
            id=batch_id, suite=suite, status=status, started_at=started, finished_at=finished_at, planned=planned,
            finished=int(finished), passed=int(passed), failed=int(failed), errors=int(errors), cost_usd=float(cost),
            git_commit=commit, git_branch=branch, git_dirty=None if dirty is None else bool(dirty), reason=reason,
            command=command, resumes=resumes, writer=writer, info=info_dict,
        )

    def _writer_gone(self, writer: str) -> bool:
        """A writer process on this host that no longer exists (killed, crashed) left its batch behind."""
        host, _, pid_text = (writer or "").rpartition(":")
        if host != self._host or not pid_text.isdigit():
            return False  # another machine's batch: we cannot tell, so trust its status
        pid = int(pid_text)
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False
        return False

    # -- writing ------------------------------------------------------------------------------
    def put(self, record: RunRecord) -> None:
        """Store one finished run of its batch (``record.batch_id``), committed before this returns."""
        self.put_many([record])

    def put_many(self, records: Iterable[RunRecord]) -> None:
        """Store several runs in one transaction."""
        rows = [self._row(record) for record in records]
        if not rows:
            return
        self._require_writable()
        with self._lock:
            try:
                if len(rows) == 1:
                    self._conn.execute(_UPSERT, rows[0])
                else:
                    with _immediate(self._conn):
                        self._conn.executemany(_UPSERT, rows)
            except sqlite3.Error as exc:
                raise StoreError(f"writing to result store {self.path} failed: {exc}") from exc

    def _row(self, record: RunRecord) -> tuple:
        if not record.batch_id:
            raise StoreError(
                f"cannot store {record!r}: it has no batch_id. Open a batch first (batch = store.start_batch(suite)) "
                "and set record.batch_id = batch.id, or let run_batch(..., store=store) do it"
            )
        usage = record.usage
        try:
            payload = record.model_dump_json(fallback=str)
        except Exception:  # an agent put something exotic in a message: keep the run, stringify
            payload = json.dumps(record.model_dump(mode="python"), default=str)
        return (
            record.batch_id, record.id, record.suite, record.scenario, record.variant, record.index, record.status,
            record.started_at, record.duration, record.attempts, usage.calls, usage.input_tokens,
            usage.output_tokens, usage.cost_usd, record.error_type, record.error_message, record.fingerprint,
            payload, time.time(), self._writer,
        )

    def save_fingerprint_parts(self, parts: dict[str, dict[str, str]]) -> None:
        """Remember what each fingerprint was made of (``{fingerprint: {part: digest}}``), so a
        resume can say which part changed."""
        if not parts:
            return
        self._require_writable()
        with self._write("saving fingerprints"):
            self._conn.executemany(
                "INSERT OR IGNORE INTO fingerprints (fingerprint, parts) VALUES (?, ?)",
                [(fp, json.dumps(p, sort_keys=True)) for fp, p in parts.items()],
            )

    def fingerprint_parts(self, fingerprints: Iterable[str]) -> dict[str, dict[str, str]]:
        wanted = sorted({fp for fp in fingerprints if fp})
        if not wanted:
            return {}
        rows = self._query("SELECT fingerprint, parts FROM fingerprints WHERE fingerprint IN "
                           "(SELECT value FROM json_each(?))", (json.dumps(wanted),))
        return {fp: json.loads(parts) for fp, parts in rows}

    def save_suite_info(self, name: str, info: dict[str, Any]) -> None:
        """Remember what reports need about a suite (thresholds, descriptions, criteria); the
        latest wins here, and each batch keeps its own copy (``BatchInfo.info``)."""
        self._require_writable()
        with self._write("saving suite info"):
            self._conn.execute(
                "INSERT INTO suites (name, info, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET info = excluded.info, updated_at = excluded.updated_at",
                (name, json.dumps(info, default=str), time.time()),
            )

    def delete_batch(self, batch_id: str) -> int:
        """Forget one batch and its runs; returns how many runs went."""
        self._require_writable()
        with self._write("deleting a batch"), _immediate(self._conn):
            count = self._conn.execute("DELETE FROM runs WHERE batch_id = ?", (batch_id,)).rowcount
            self._conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        return count

    def delete_suite(self, suite: str) -> int:
        """Forget every batch and run of ``suite``; returns how many runs went."""
        self._require_writable()
        with self._write("deleting a suite"), _immediate(self._conn):
            count = self._conn.execute("DELETE FROM runs WHERE suite = ?", (suite,)).rowcount
            self._conn.execute("DELETE FROM batches WHERE suite = ?", (suite,))
        return count

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"result store {self.path} was opened read-only")

    def _write(self, what: str) -> _Writing:
        return _Writing(self, what)

    # -- reading ------------------------------------------------------------------------------
    def finished_ids(self, suite: str | None = None, batch_id: str | None = None) -> set[str]:
        """Ids of runs with a verdict (passed or failed), across batches unless ``batch_id`` is given.

        Errored, timed-out and cancelled runs are not in it: a resume runs them again.
        """
        where, params = _filters(suite=suite, batch_id=batch_id)
        where = f"{where} AND" if where else " WHERE"
        return {row[0] for row in self._query(f"SELECT id FROM runs{where} status IN ('passed', 'failed')", params)}

    def outcomes(self, suite: str | None = None, batch_id: str | None = None) -> list[RunOutcome]:
        """Status, timing and cost of stored runs (no transcripts: cheap for big stores)."""
        where, params = _filters(suite=suite, batch_id=batch_id)
        sql = ("SELECT id, suite, scenario, variant, run_index, status, duration, cost_usd, attempts, "
               f"input_tokens + output_tokens, batch_id, fingerprint FROM runs{where} "
               "ORDER BY suite, scenario, variant, run_index, started_at")
        return [RunOutcome(*row) for row in self._query(sql, params)]

    def records(self, suite: str | None = None, ids: Sequence[str] | None = None, *,
                batch_id: str | None = None) -> list[RunRecord]:
        """Full records (transcripts included), ordered by suite, scenario, variant, run index.

        Without ``batch_id`` every batch's records are returned (a run id then appears once per
        batch that ran it); reports pass the batch they show.
        """
        return list(self.iter_records(suite, ids, batch_id=batch_id))

    def iter_records(self, suite: str | None = None, ids: Sequence[str] | None = None, *,
                     batch_id: str | None = None) -> Iterator[RunRecord]:
        """As :meth:`records`, one at a time (for stores too big to hold in memory)."""
        where, params = _filters(suite=suite, batch_id=batch_id, ids=ids)
        rows = self._query(f"SELECT batch_id, record FROM runs{where} "
                           "ORDER BY suite, scenario, variant, run_index, started_at", params)
        for batch, payload in rows:
            yield _load_record(batch, payload)

    def record(self, batch_id: str, run_id: str) -> RunRecord | None:
        """One run of one batch, by its run id (None if not stored)."""
        rows = self._query("SELECT batch_id, record FROM runs WHERE batch_id = ? AND id = ?", (batch_id, run_id))
        return _load_record(*rows[0]) if rows else None

    def suites(self) -> list[str]:
        """Names of the suites with stored batches, runs or suite info."""
        rows = self._query("SELECT suite FROM batches UNION SELECT suite FROM runs UNION SELECT name FROM suites "
                           "ORDER BY 1", ())
        return [row[0] for row in rows]

    def suite_info(self, name: str) -> dict[str, Any]:
        rows = self._query("SELECT info FROM suites WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else {}

    def count(self, suite: str | None = None, batch_id: str | None = None) -> int:
        """Stored runs (of one suite, of one batch)."""
        where, params = _filters(suite=suite, batch_id=batch_id)
        return self._query(f"SELECT COUNT(*) FROM runs{where}", params)[0][0]

    # -- for the viewer: cheap summaries and the live transcripts of running runs ---------------
    def group_counts(self, batch_ids: Sequence[str]) -> dict[str, list[tuple[str, str, int, int]]]:
        """Per batch, (scenario, variant, passed runs, stored runs) for each pair: enough to say
        whether every threshold was met, without loading a record. One query for all batches."""
        if not batch_ids:
            return {}
        rows = self._query(
            "SELECT batch_id, scenario, variant, SUM(status = 'passed'), COUNT(*) FROM runs "
            "WHERE batch_id IN (SELECT value FROM json_each(?)) GROUP BY batch_id, scenario, variant",
            (json.dumps(list(batch_ids)),),
        )
        found: dict[str, list[tuple[str, str, int, int]]] = {}
        for batch_id, scenario, variant, passed, runs in rows:
            found.setdefault(batch_id, []).append((scenario, variant, int(passed or 0), int(runs)))
        return found

    def run_verdicts(self, batch_id: str) -> dict[str, str]:
        """Run id -> the judge's reasoning or the error, for every run of a batch that did not pass
        (read inside SQLite: no record is loaded into Python)."""
        rows = self._query(
            "SELECT id, COALESCE(json_extract(record, '$.result.reasoning'), error_type || ': ' || error_message, '') "
            "FROM runs WHERE batch_id = ? AND status != 'passed'",
            (batch_id,),
        )
        return {run_id: text for run_id, text in rows}

    def previous_batch(self, batch: BatchInfo) -> BatchInfo | None:
        """The batch of the same suite started just before ``batch`` (None for the first)."""
        rows = self._query(
            "SELECT id FROM batches WHERE suite = ? AND (started_at < ? OR (started_at = ? AND id < ?)) "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (batch.suite, batch.started_at, batch.started_at, batch.id),
        )
        return self.batch(rows[0][0]) if rows else None

    def change_stamp(self) -> str:
        """A value that changes whenever any connection commits to the store (what live pages
        poll: one PRAGMA, no table read)."""
        (version,) = self._query("PRAGMA data_version", ())[0]
        (count,) = self._query("SELECT COUNT(*) FROM batches", ())[0]
        return f"{version}.{count}.{self._conn.total_changes}"

    def put_live(self, batch_id: str, run_id: str, *, suite: str, scenario: str, variant: str, index: int,
                 turn: int, messages: Sequence[dict[str, Any]]) -> None:
        """The transcript so far of a run still in flight (replaced by each call; removed by
        :meth:`drop_live` when the run's record is stored). Only viewers read it."""
        self._require_writable()
        payload = json.dumps(list(messages), default=str)
        with self._write("storing a live transcript"):
            self._conn.execute(_LIVE_TABLE)
            self._conn.execute(
                "INSERT INTO live_runs (batch_id, id, suite, scenario, variant, run_index, turn, messages, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(batch_id, id) DO UPDATE SET turn = excluded.turn, "
                "messages = excluded.messages, updated_at = excluded.updated_at",
                (batch_id, run_id, suite, scenario, variant, int(index), int(turn), payload, time.time()),
            )

    def drop_live(self, batch_id: str, run_id: str | None = None) -> None:
        """Forget the live transcript of one run (or of every run of the batch)."""
        self._require_writable()
        with self._write("removing a live transcript"):
            self._conn.execute(_LIVE_TABLE)
            if run_id is None:
                self._conn.execute("DELETE FROM live_runs WHERE batch_id = ?", (batch_id,))
            else:
                self._conn.execute("DELETE FROM live_runs WHERE batch_id = ? AND id = ?", (batch_id, run_id))

    def live_runs(self, batch_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """Runs of a batch in flight with their transcript so far (oldest update first)."""
        sql = ("SELECT id, suite, scenario, variant, run_index, turn, messages, updated_at FROM live_runs "
               "WHERE batch_id = ?")
        params: tuple = (batch_id,)
        if run_id is not None:
            sql += " AND id = ?"
            params = (batch_id, run_id)
        try:
            rows = self._query(sql + " ORDER BY updated_at", params)
        except StoreError as exc:
            if "no such table" in str(exc):
                return []  # nothing was ever live in this store
            raise
        runs = []
        for run_id_, suite, scenario, variant, index, turn, messages, updated in rows:
            try:
                parsed = json.loads(messages)
            except ValueError:
                parsed = []
            runs.append({"id": run_id_, "suite": suite, "scenario": scenario, "variant": variant, "index": index,
                         "turn": turn, "messages": parsed, "updated_at": updated})
        return runs

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading result store {self.path} failed: {exc}") from exc

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"


class _Writing:
    """``with store._write(what):`` one locked write; SQLite errors become a StoreError saying what failed."""

    __slots__ = ("store", "what")

    def __init__(self, store: ResultStore, what: str):
        self.store = store
        self.what = what

    def __enter__(self) -> None:
        self.store._lock.acquire()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"writing to result store {self.store.path} failed ({self.what}): {exc}") from exc
        return False


class _immediate:
    """An IMMEDIATE transaction (takes the write lock at once), rolled back on any error."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        return False


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _filters(*, suite: str | None = None, batch_id: str | None = None,
             ids: Sequence[str] | None = None) -> tuple[str, tuple]:
    clauses: list[str] = []
    params: list[Any] = []
    if batch_id is not None:
        clauses.append("batch_id = ?")
        params.append(batch_id)
    if suite is not None:
        clauses.append("suite = ?")
        params.append(suite)
    if ids is not None:
        clauses.append("id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(ids)))
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)


def _load_record(batch_id: str, payload: str) -> RunRecord:
    record = RunRecord.model_validate_json(payload)
    record.batch_id = batch_id  # the column is the truth (version-1 payloads have no batch_id)
    return record


def _suite_info(conn: sqlite3.Connection, suite: str) -> dict[str, Any]:
    row = conn.execute("SELECT info FROM suites WHERE name = ?", (suite,)).fetchone()
    try:
        return json.loads(row[0]) if row else {}
    except ValueError:
        return {}


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
