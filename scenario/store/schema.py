"""The store's file format: tables, indexes, the upsert rule, and migration from older versions.

Policy: a store is created whole or not at all (one IMMEDIATE transaction), its format and version
are checked before anything else reads it, and a version-1 store (one row per run, no batches) is
migrated in place inside one transaction, so a second process that opens it meanwhile waits and
then finds it migrated. Nothing here changes without a new ``STORE_VERSION`` and a migration.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Literal

from scenario.store.batches import StoreError, new_batch_id

STORE_FORMAT = "scenario-results"
STORE_VERSION = 2
DEFAULT_STORE_PATH = ".scenario/results.db"
VERDICT_STATUSES = ("passed", "failed")  # what resume keeps; errors and timeouts run again
BATCH_STATUSES = ("running", "finished", "interrupted")

SQLITE_HEADER = b"SQLite format 3\x00"
META_TABLE = "scenario_store"

BATCHES_TABLE = """
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
LIVE_TABLE = """
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
BATCH_INDEX = "CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch_id, scenario, variant, status, cost_usd)"

# Covers outcomes(batch_id=...) in its order: a resume's plan and the run's summary read a batch's
# statuses and fingerprints from here instead of walking rows that carry whole transcripts (10,000
# runs: ~0.3 s per read without it).
OUTCOMES_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_outcomes ON runs (batch_id, suite, scenario, variant, run_index, started_at, id, "
    "status, duration, cost_usd, attempts, input_tokens, output_tokens, fingerprint)"
)

RUNS_TABLE = f"""
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
{BATCH_INDEX};
{OUTCOMES_INDEX};
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {META_TABLE} (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
{RUNS_TABLE}
CREATE TABLE IF NOT EXISTS suites (
    name TEXT PRIMARY KEY,
    info TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    parts TEXT NOT NULL
);
{BATCHES_TABLE}
"""

RUN_COLUMNS = ("batch_id, id, suite, scenario, variant, run_index, status, started_at, duration, attempts, calls, "
                "input_tokens, output_tokens, cost_usd, error_type, error_message, fingerprint, record, written_at, "
                "writer")

# Within a batch, a finished verdict wins over a later error/cancellation of the same run with the
# same fingerprint (racing writers, or a retried run that then failed to even start); anything
# else, a re-run because the fingerprint changed included, is replaced by the newer row.
UPSERT = f"""
INSERT INTO runs ({RUN_COLUMNS})
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
BATCH_SELECT = """
SELECT b.id, b.suite, b.status, b.started_at, b.finished_at, b.planned, b.git_commit, b.git_branch, b.git_dirty,
       b.reason, b.command, b.resumes, b.info, b.writer
FROM batches b
"""
BATCH_COUNTS = """
SELECT batch_id, SUM(status IN ('passed', 'failed', 'error', 'timeout')), SUM(status = 'passed'),
       SUM(status = 'failed'), SUM(status IN ('error', 'timeout')), SUM(cost_usd)
FROM runs WHERE batch_id IN (SELECT value FROM json_each(?)) GROUP BY batch_id
"""


def create(conn: sqlite3.Connection) -> None:
    """Make a new, empty store (idempotent: another process may have made it meanwhile)."""
    with immediate(conn):
        # Statement by statement: executescript() would commit our IMMEDIATE transaction first.
        execute_script(conn, SCHEMA)
        conn.execute(f"INSERT OR IGNORE INTO {META_TABLE} VALUES ('format', ?)", (STORE_FORMAT,))
        conn.execute(f"INSERT OR IGNORE INTO {META_TABLE} VALUES ('version', ?)", (str(STORE_VERSION),))
        conn.execute(f"INSERT OR IGNORE INTO {META_TABLE} VALUES ('created_at', ?)", (str(time.time()),))


def read_version(conn: sqlite3.Connection, path: object) -> int:
    """The store's format version; a file of another format or an unknown version is refused."""
    meta = dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
    if meta.get("format") != STORE_FORMAT:
        raise StoreError(f"{path} is not a scenario result store (format {meta.get('format')!r}); left untouched")
    try:
        version = int(meta.get("version", "0"))
    except ValueError:
        version = -1
    if version not in (1, STORE_VERSION):
        raise StoreError(
            f"result store {path} has format version {meta.get('version')}, this scenario version reads "
            f"versions 1 to {STORE_VERSION}; use a matching scenario version or a new --store path"
        )
    return version


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Version 1 -> 2: each suite's runs become one finished batch, started when its first
    run started (version 1 kept one row per run and no history, so there is one to make)."""
    with immediate(conn):
        current = int(dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall()).get("version", "0"))
        if current >= STORE_VERSION:  # another process migrated it while we waited for the lock
            return
        conn.execute("DROP INDEX IF EXISTS runs_by_suite")
        conn.execute("ALTER TABLE runs RENAME TO runs_v1")
        execute_script(conn, SCHEMA)
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
                f"INSERT INTO runs ({RUN_COLUMNS}) SELECT ?, id, suite, scenario, variant, run_index, status, "
                "started_at, duration, attempts, calls, input_tokens, output_tokens, cost_usd, error_type, "
                "error_message, NULL, record, written_at, writer FROM runs_v1 WHERE suite = ?",
                (batch_id, suite),
            )
        conn.execute("DROP TABLE runs_v1")
        conn.execute(f"UPDATE {META_TABLE} SET value = ? WHERE key = 'version'", (str(STORE_VERSION),))
        conn.execute(f"INSERT OR REPLACE INTO {META_TABLE} VALUES ('migrated_from_1_at', ?)", (str(now),))


class immediate:
    """An IMMEDIATE transaction (takes the write lock at once), rolled back on any error."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc_type is None:
            self.conn.execute("COMMIT")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        return False


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _suite_info(conn: sqlite3.Connection, suite: str) -> dict[str, Any]:
    row = conn.execute("SELECT info FROM suites WHERE name = ?", (suite,)).fetchone()
    try:
        return json.loads(row[0]) if row else {}
    except ValueError:
        return {}
