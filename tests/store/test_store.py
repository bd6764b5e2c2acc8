"""The SQLite result store: round trips, resume semantics, concurrent writers, refusing foreign files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from scenario.records import RunRecord, run_id
from scenario.store import ResultStore, StoreError
from scenario.types import CriterionResult, ScenarioResult, Usage

REPO = Path(__file__).resolve().parents[2]


def make_record(index: int, status: str = "passed", scenario: str = "refund", suite: str = "shop", variant: str = "default",
                batch_id: str = "batch-1", fingerprint: str = "fp-1") -> RunRecord:
    usage = Usage()
    usage.record(role="judge", model="openai/gpt-4o-mini", input_tokens=100, output_tokens=10, cost_usd=0.0001)
    result = ScenarioResult(
        success=status == "passed",
        reasoning=f"run {index} {status}",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        criteria=[CriterionResult(requirement="polite", status="passed" if status == "passed" else "failed", reasoning="ok")],
        usage=usage,
    )
    return RunRecord(
        id=run_id(suite, scenario, variant, index), suite=suite, scenario=scenario, variant=variant, index=index,
        status=status, result=result, attempts=2 if status == "error" else 1, started_at=1700000000.0 + index,
        duration=0.25, usage=usage, error_type="RuntimeError" if status == "error" else None,
        error_message="boom" if status == "error" else None, batch_id=batch_id, fingerprint=fingerprint,
    )


def test_round_trip_keeps_everything(tmp_path):
    path = tmp_path / "sub" / "results.db"
    record = make_record(3, "failed")
    with ResultStore(path) as store:
        store.put(record)
    with ResultStore(path, readonly=True) as store:
        [loaded] = store.records()
    assert loaded == record
    assert loaded.result.messages[1]["content"] == "hello"
    assert loaded.result.criteria[0].reasoning == "ok"
    assert loaded.usage.by_role["judge"].input_tokens == 100


def test_journal_mode_is_wal(tmp_path):
    path = tmp_path / "results.db"
    ResultStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_finished_ids_skip_verdicts_only(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.put_many([make_record(0, "passed"), make_record(1, "failed"), make_record(2, "error"),
                        make_record(3, "timeout"), make_record(0, "passed", suite="other")])
        assert store.finished_ids("shop") == {run_id("shop", "refund", "default", i) for i in (0, 1)}
        assert len(store.finished_ids()) == 3
        assert store.count("shop") == 4 and store.count() == 5
        assert store.suites() == ["other", "shop"]
        outcomes = store.outcomes("shop")
        assert [o.status for o in outcomes] == ["passed", "failed", "error", "timeout"]
        assert outcomes[0].tokens == 110 and outcomes[2].attempts == 2


def test_one_row_per_run_and_a_verdict_is_never_replaced_by_an_error(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.put(make_record(0, "error"))
        store.put(make_record(0, "passed"))  # the re-run of an errored run replaces it
        assert [o.status for o in store.outcomes()] == ["passed"]
        store.put(make_record(0, "error"))  # a racing writer's error does not undo the verdict
        assert [o.status for o in store.outcomes()] == ["passed"]
        store.put(make_record(0, "failed"))  # a newer verdict does replace the older one
        assert [o.status for o in store.outcomes()] == ["failed"]
        assert store.count() == 1


def test_records_filtered_by_ids(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.put_many([make_record(i) for i in range(5)])
        wanted = [run_id("shop", "refund", "default", i) for i in (1, 3)]
        assert [r.index for r in store.records(ids=wanted)] == [1, 3]


def test_suite_info_and_delete(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.save_suite_info("shop", {"thresholds": {"refund": 0.5}})
        store.save_suite_info("shop", {"thresholds": {"refund": 0.8}})
        assert store.suite_info("shop") == {"thresholds": {"refund": 0.8}}
        assert store.suite_info("nope") == {}
        store.put_many([make_record(i) for i in range(3)] + [make_record(0, suite="other")])
        assert store.delete_suite("shop") == 3
        assert store.count() == 1


def test_threads_share_one_store(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        def write(offset: int) -> None:
            for i in range(50):
                store.put(make_record(offset + i))

        threads = [threading.Thread(target=write, args=(k * 50,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.count() == 200


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    from tests.store.test_store import make_record
    from scenario.store import ResultStore
    path, worker = sys.argv[1], int(sys.argv[2])
    with ResultStore(path) as store:
        for i in range(150):
            # Every worker writes the same 150 run ids (as parallel jobs of one suite would),
            # plus 150 of its own.
            store.put(make_record(i, "passed" if (i + worker) % 3 else "failed"))
            store.put(make_record(i, suite=f"worker-{worker}"))
    print("ok")
""")


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "shared.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(worker), str(REPO)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for worker in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    with ResultStore(path, readonly=True) as store:
        assert store.count("shop") == 150  # exactly one row per run id
        for worker in range(4):
            assert store.count(f"worker-{worker}") == 150
        assert store.count() == 750
        assert {o.status for o in store.outcomes("shop")} <= {"passed", "failed"}


def test_not_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("my precious notes")
    with pytest.raises(StoreError, match="is not a scenario result store \\(it is not an SQLite database\\)"):
        ResultStore(path)
    assert path.read_text() == "my precious notes"
    assert not (tmp_path / "notes.db-wal").exists()


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="SQLite database but not a scenario result store \\(tables: users\\)"):
        ResultStore(path)
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()


def test_corrupted_store_is_refused_and_untouched(tmp_path):
    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        store.put_many([make_record(i) for i in range(50)])
    data = bytearray(path.read_bytes())
    data[100:4000] = b"\xff" * 3900  # wreck the schema page, keep the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupted or unreadable"):
        ResultStore(path)
    assert path.read_bytes() == bytes(data)


def test_newer_store_version_is_refused(tmp_path):
    path = tmp_path / "r.db"
    ResultStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE scenario_store SET value = '99' WHERE key = 'version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="format version 99"):
        ResultStore(path)


def test_readonly_needs_an_existing_store(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "missing.db", readonly=True)
    with pytest.raises(StoreError, match="is a directory"):
        ResultStore(tmp_path)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="is empty"):
        ResultStore(tmp_path / "empty.db", readonly=True)
    with ResultStore(tmp_path / "empty.db") as store:  # an empty file holds nothing to lose: it becomes a store
        store.put(make_record(0))
    with ResultStore(tmp_path / "empty.db", readonly=True) as store:
        assert store.count() == 1
        with pytest.raises(StoreError, match="read-only"):
            store.put(make_record(1))


def test_record_with_unserialisable_message_content_is_still_stored(tmp_path):
    record = make_record(0)
    record.result.messages.append({"role": "tool", "content": object()})
    with ResultStore(tmp_path / "r.db") as store:
        store.put(record)
        [loaded] = store.records()
    assert loaded.result.messages[-1]["content"].startswith("<object object")


def _open_store_at_barrier(path, barrier, results):
    from scenario.store import ResultStore, StoreError

    barrier.wait()
    try:
        ResultStore(path).count()
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def test_processes_creating_one_new_store_at_the_same_moment_all_succeed(tmp_path):
    """Racing to create a store and switch it to WAL gets 'database is locked' at once for the
    losers; that must be waited out, never reported as a corrupted store."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_index in range(12):
        path = str(tmp_path / f"race{round_index}.db")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        workers = [ctx.Process(target=_open_store_at_barrier, args=(path, barrier, results)) for _ in range(4)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert outcomes == ["ok"] * 4, outcomes


def test_store_locked_past_the_busy_timeout_says_so(tmp_path, monkeypatch):
    import sqlite3

    from scenario.store import ResultStore, StoreError
    from scenario.store import results as store_module

    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write, for too long
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_SECONDS", 0.3)
    try:
        with pytest.raises(StoreError, match="stayed locked by another process") as info:
            ResultStore(path)
        assert "corrupted" not in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ResultStore(path).count()  # usable once the other writer is done
