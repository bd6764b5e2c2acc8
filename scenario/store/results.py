"""ResultStore: one SQLite file of batches and their runs, shared by threads and processes.

Opening checks the file before anything is written (see :mod:`scenario.store.schema`); a lock held
by another process is waited out, never mistaken for corruption. Every write holds the store's
lock and turns an SQLite error into a :class:`StoreError` saying what was being written.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from scenario.records import RunRecord
from scenario.store import schema
from scenario.store.batches import BatchInfo, RunOutcome, StoreError, git_state, new_batch_id
from scenario.store.schema import STORE_VERSION

_BUSY_TIMEOUT_SECONDS = 60.0


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
                header = handle.read(len(schema.SQLITE_HEADER))
        except OSError as exc:
            raise StoreError(f"cannot read result store {shown}: {exc}") from None
        if header and header != schema.SQLITE_HEADER:
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
        if tables and schema.META_TABLE not in tables:
            raise StoreError(
                f"{shown} is an SQLite database but not a scenario result store (tables: "
                f"{', '.join(sorted(tables)[:5])}). It was left untouched: pass another --store path"
            )
        version = schema.read_version(conn, self.path) if schema.META_TABLE in tables else STORE_VERSION
        if self.readonly:
            if version < STORE_VERSION:
                copy = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                conn.backup(copy)
                conn.close()
                schema.migrate(copy, version)
                return copy
            return conn
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit is in the log (the OS's page cache) when put() returns,
        # which survives a killed process; only a power cut can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        if not tables:
            schema.create(conn)  # idempotent: another process may have created it meanwhile
        elif version < STORE_VERSION:
            schema.migrate(conn, version)
        else:
            conn.execute(schema.BATCH_INDEX)  # a store made before these indexes gets them once (no-op after)
            conn.execute(schema.OUTCOMES_INDEX)
        return conn

    def _unreadable(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"result store {self.path} is corrupted or unreadable ({exc}). It was left untouched: pass another "
            "--store path; 'sqlite3 FILE .recover' may rescue its rows"
        )

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
        rows = self._query(f"{schema.BATCH_SELECT} {where}ORDER BY b.started_at DESC, b.id DESC", params)
        return self._with_counts(rows)

    def batch(self, batch_id: str) -> BatchInfo | None:
        """One batch by id (None if the store has no such batch)."""
        rows = self._query(f"{schema.BATCH_SELECT} WHERE b.id = ?", (batch_id,))
        return self._with_counts(rows)[0] if rows else None

    def _with_counts(self, rows: list[tuple]) -> list[BatchInfo]:
        counts = {row[0]: row[1:] for row in self._query(schema.BATCH_COUNTS, (json.dumps([r[0] for r in rows]),))} \
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
                    self._conn.execute(schema.UPSERT, rows[0])
                else:
                    with schema.immediate(self._conn):
                        self._conn.executemany(schema.UPSERT, rows)
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
        return self._delete("batch", batch_id)

    def delete_suite(self, suite: str) -> int:
        """Forget every batch and run of ``suite``; returns how many runs went."""
        return self._delete("suite", suite)

    def _delete(self, what: str, value: str) -> int:
        """Runs and batch rows of one batch (``what="batch"``) or one suite, in one transaction."""
        self._require_writable()
        runs_key, batches_key = {"batch": ("batch_id", "id"), "suite": ("suite", "suite")}[what]
        with self._write(f"deleting a {what}"), schema.immediate(self._conn):
            count = self._conn.execute(f"DELETE FROM runs WHERE {runs_key} = ?", (value,)).rowcount
            self._conn.execute(f"DELETE FROM batches WHERE {batches_key} = ?", (value,))
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
        """Per batch, (scenario, variant, passed runs, finished runs) for each pair: enough to say
        whether every threshold was met (:func:`scenario.rollup.meets`), without loading a record.
        One query for all batches; cancelled runs are outside the counts, as in every rollup."""
        if not batch_ids:
            return {}
        rows = self._query(
            "SELECT batch_id, scenario, variant, SUM(status = 'passed'), "
            "SUM(status IN ('passed', 'failed', 'error', 'timeout')) FROM runs "
            "WHERE batch_id IN (SELECT value FROM json_each(?)) GROUP BY batch_id, scenario, variant",
            (json.dumps(list(batch_ids)),),
        )
        found: dict[str, list[tuple[str, str, int, int]]] = {}
        for batch_id, scenario, variant, passed, runs in rows:
            found.setdefault(batch_id, []).append((scenario, variant, int(passed or 0), int(runs or 0)))
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
            self._conn.execute(schema.LIVE_TABLE)
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
            self._conn.execute(schema.LIVE_TABLE)
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

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        self.store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"writing to result store {self.store.path} failed ({self.what}): {exc}") from exc
        return False


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


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
