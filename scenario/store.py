"""The result store: one SQLite row per run, written the moment the run finishes.

Why SQLite: it is in the standard library, a committed row survives the process being killed
(WAL mode writes it to the log before ``put`` returns), and several processes (pytest-xdist
workers, parallel CI jobs) can write one file at once; SQLite serialises their writers and
``busy_timeout`` makes them wait instead of failing.

Rows are keyed by :func:`scenario.records.run_id` (suite, scenario, variant, run index), so a
second batch over the same store finds what is already done: ``finished_ids`` is what resume
skips. A finished verdict (passed/failed) is never replaced by a later error or cancellation
of the same run, so two jobs racing on one run still leave its best outcome.

A file that is not ours (another SQLite database, or not SQLite at all) is refused with a
:class:`StoreError` before anything is written to it.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Union

from .errors import ScenarioError
from .records import RunRecord

STORE_FORMAT = "scenario-results"
STORE_VERSION = 1
DEFAULT_STORE_PATH = ".scenario/results.db"
VERDICT_STATUSES = ("passed", "failed")  # what resume skips; errors and timeouts run again

_SQLITE_HEADER = b"SQLite format 3\x00"
_META_TABLE = "scenario_store"
_BUSY_TIMEOUT_SECONDS = 60.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_META_TABLE} (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
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
    record TEXT NOT NULL,
    written_at REAL NOT NULL,
    writer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, scenario, variant);
CREATE TABLE IF NOT EXISTS suites (
    name TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

# A finished verdict wins over a later error/cancellation of the same run (racing writers, or a
# retried run that then failed to even start); anything else is replaced by the newer row.
_UPSERT = """
INSERT INTO runs (id, suite, scenario, variant, run_index, status, started_at, duration, attempts, calls,
                  input_tokens, output_tokens, cost_usd, error_type, error_message, record, written_at, writer)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    suite = excluded.suite, scenario = excluded.scenario, variant = excluded.variant,
    run_index = excluded.run_index, status = excluded.status, started_at = excluded.started_at,
    duration = excluded.duration, attempts = excluded.attempts, calls = excluded.calls,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    cost_usd = excluded.cost_usd, error_type = excluded.error_type, error_message = excluded.error_message,
    record = excluded.record, written_at = excluded.written_at, writer = excluded.writer
WHERE excluded.status IN ('passed', 'failed') OR runs.status NOT IN ('passed', 'failed')
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


class ResultStore:
    """An SQLite file of run records. Safe to share between threads and between processes.

    ::

        with ResultStore("results.db") as store:
            done = store.finished_ids("my-suite")
            store.put(record)

    Args:
        path: the database file; created (with parent folders) unless ``readonly``.
        readonly: open an existing store for reading only (reports).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._writer = f"{os.uname().nodename if hasattr(os, 'uname') else 'host'}:{os.getpid()}"
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
                self._prepare(conn)
                return conn
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

    def _prepare(self, conn: sqlite3.Connection) -> None:
        shown = str(self.path)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and _META_TABLE not in tables:
            raise StoreError(
                f"{shown} is an SQLite database but not a scenario result store (tables: "
                f"{', '.join(sorted(tables)[:5])}). It was left untouched: pass another --store path"
            )
        if _META_TABLE in tables:
            self._check_version(conn)
        if not self.readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit is in the log (the OS's page cache) when put() returns,
            # which survives a killed process; only a power cut can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                self._create(conn)  # idempotent: another process may have created it meanwhile

    def _unreadable(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"result store {self.path} is corrupted or unreadable ({exc}). It was left untouched: pass another "
            "--store path; 'sqlite3 FILE .recover' may rescue its rows"
        )

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Statement by statement: executescript() would commit our IMMEDIATE transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('format', ?)", (STORE_FORMAT,))
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('version', ?)", (str(STORE_VERSION),))
            conn.execute(f"INSERT OR IGNORE INTO {_META_TABLE} VALUES ('created_at', ?)", (str(time.time()),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_version(self, conn: sqlite3.Connection) -> None:
        meta = dict(conn.execute(f"SELECT key, value FROM {_META_TABLE}").fetchall())
        if meta.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.path} is not a scenario result store (format {meta.get('format')!r}); left untouched")
        try:
            version = int(meta.get("version", "0"))
        except ValueError:
            version = -1
        if version != STORE_VERSION:
            raise StoreError(
                f"result store {self.path} has format version {meta.get('version')}, this scenario version reads "
                f"version {STORE_VERSION}; use a matching scenario version or a new --store path"
            )

    # -- writing ------------------------------------------------------------------------------
    def put(self, record: RunRecord) -> None:
        """Store one finished run (committed before this returns)."""
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
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        self._conn.executemany(_UPSERT, rows)
                        self._conn.execute("COMMIT")
                    except BaseException:
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                        raise
            except sqlite3.Error as exc:
                raise StoreError(f"writing to result store {self.path} failed: {exc}") from exc

    def _row(self, record: RunRecord) -> tuple:
        usage = record.usage
        try:
            payload = record.model_dump_json(fallback=str)
        except Exception:  # an agent put something exotic in a message: keep the run, stringify
            payload = json.dumps(record.model_dump(mode="python"), default=str)
        return (
            record.id, record.suite, record.scenario, record.variant, record.index, record.status,
            record.started_at, record.duration, record.attempts, usage.calls, usage.input_tokens,
            usage.output_tokens, usage.cost_usd, record.error_type, record.error_message, payload,
            time.time(), self._writer,
        )

    def save_suite_info(self, name: str, info: Dict[str, Any]) -> None:
        """Remember what reports need about a suite (thresholds, descriptions, criteria)."""
        self._require_writable()
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO suites (name, info, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET info = excluded.info, updated_at = excluded.updated_at",
                    (name, json.dumps(info, default=str), time.time()),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"writing to result store {self.path} failed: {exc}") from exc

    def delete_suite(self, suite: str) -> int:
        """Forget every run of ``suite`` (``--fresh``); returns how many rows went."""
        self._require_writable()
        with self._lock:
            cursor = self._conn.execute("DELETE FROM runs WHERE suite = ?", (suite,))
            return cursor.rowcount

    def _require_writable(self) -> None:
        if self.readonly:
            raise StoreError(f"result store {self.path} was opened read-only")

    # -- reading ------------------------------------------------------------------------------
    def finished_ids(self, suite: Optional[str] = None) -> Set[str]:
        """Ids of runs with a verdict (passed or failed): what a resumed batch skips.

        Errored, timed-out and cancelled runs are not in it, so they run again.
        """
        sql = "SELECT id FROM runs WHERE status IN ('passed', 'failed')"
        params: tuple = ()
        if suite is not None:
            sql += " AND suite = ?"
            params = (suite,)
        return {row[0] for row in self._query(sql, params)}

    def outcomes(self, suite: Optional[str] = None) -> List[RunOutcome]:
        """Status, timing and cost of every stored run (no transcripts: cheap for big stores)."""
        sql = ("SELECT id, suite, scenario, variant, run_index, status, duration, cost_usd, attempts, "
               "input_tokens + output_tokens FROM runs")
        params: tuple = ()
        if suite is not None:
            sql += " WHERE suite = ?"
            params = (suite,)
        return [RunOutcome(*row) for row in self._query(sql + " ORDER BY suite, scenario, variant, run_index", params)]

    def records(self, suite: Optional[str] = None, ids: Optional[Sequence[str]] = None) -> List[RunRecord]:
        """Full records (transcripts included), ordered by suite, scenario, variant, run index."""
        return list(self.iter_records(suite, ids))

    def iter_records(self, suite: Optional[str] = None, ids: Optional[Sequence[str]] = None) -> Iterator[RunRecord]:
        clauses, params = [], []  # type: ignore[var-annotated]
        if suite is not None:
            clauses.append("suite = ?")
            params.append(suite)
        if ids is not None:
            clauses.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(ids)))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT record FROM runs{where} ORDER BY suite, scenario, variant, run_index", tuple(params))
        for (payload,) in rows:
            yield RunRecord.model_validate_json(payload)

    def suites(self) -> List[str]:
        """Names of the suites with stored runs or stored suite info."""
        rows = self._query("SELECT suite FROM runs UNION SELECT name FROM suites ORDER BY 1", ())
        return [row[0] for row in rows]

    def suite_info(self, name: str) -> Dict[str, Any]:
        rows = self._query("SELECT info FROM suites WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else {}

    def count(self, suite: Optional[str] = None) -> int:
        if suite is None:
            return self._query("SELECT COUNT(*) FROM runs", ())[0][0]
        return self._query("SELECT COUNT(*) FROM runs WHERE suite = ?", (suite,))[0][0]

    def _query(self, sql: str, params: tuple) -> List[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading result store {self.path} failed: {exc}") from exc

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text

