"""Batch history in the result store: every batch kept, fresh by default, resume by fingerprint,
version-1 stores migrated, a dead batch seen as interrupted."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

import scenario
from scenario.batch import Scenario, run_batch
from scenario.records import run_id
from scenario.store import BatchInfo, ResultStore, StoreError
from tests.store.test_store import make_record


class Echo(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


class Flaky(scenario.AgentAdapter):
    """Raises on the runs listed in FAILING (by a counter shared by the test)."""

    calls = 0
    failing: set = set()

    async def call(self, input: scenario.AgentInput) -> str:
        Flaky.calls += 1
        if Flaky.calls in Flaky.failing:
            raise KeyError("choices")
        return "fine"


def scripted(name: str = "greeting", verdict: bool = True, agent: object = Echo, **kwargs) -> Scenario:
    end = scenario.succeed("said hi") if verdict else scenario.fail("did not say hi")
    return Scenario(name=name, description=kwargs.pop("description", "A user says hi."), agents=[agent],
                    script=[scenario.user("hi"), scenario.agent(), end], **kwargs)


# ---------------------------------------------------------------------------------------------
# The store's batch API


def test_batches_are_listed_newest_first_with_counts(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        first = store.start_batch("shop", planned=3, info={"thresholds": {"refund": 0.5}})
        assert isinstance(first, BatchInfo) and first.status == "running" and first.planned == 3
        store.put_many([make_record(0, "passed", batch_id=first.id), make_record(1, "failed", batch_id=first.id),
                        make_record(2, "error", batch_id=first.id)])
        store.finish_batch(first.id)
        second = store.start_batch("shop", planned=3)
        store.put(make_record(0, "passed", batch_id=second.id))
        store.finish_batch(second.id, "interrupted", "Ctrl-C")
        other = store.start_batch("other", planned=1)

        listed = store.batches()
        assert [b.id for b in listed] == [other.id, second.id, first.id]
        assert [b.id for b in store.batches("shop")] == [second.id, first.id]
        done = store.batch(first.id)
        assert (done.status, done.finished, done.passed, done.failed, done.errors) == ("finished", 3, 1, 1, 1)
        assert done.pass_rate == pytest.approx(1 / 3) and done.missing == 0 and done.finished_at >= done.started_at
        assert done.info == {"thresholds": {"refund": 0.5}} and done.cost_usd == pytest.approx(0.0003)
        cut = store.batch(second.id)
        assert (cut.status, cut.reason, cut.finished, cut.missing) == ("interrupted", "Ctrl-C", 1, 2)
        assert store.batch("nope") is None
        assert store.latest_batch("shop").id == second.id
        assert store.latest_batch("shop", status="finished").id == first.id
        # One run id, one row per batch: history, not replacement.
        assert store.count("shop") == 4 and store.count(batch_id=first.id) == 3
        assert [r.batch_id for r in store.records("shop", ids=[run_id("shop", "refund", "default", 0)])] == [
            first.id, second.id]
        found = store.record(first.id, run_id("shop", "refund", "default", 1))
        assert found.status == "failed" and found.batch_id == first.id
        assert store.record(second.id, run_id("shop", "refund", "default", 1)) is None
        assert store.finished_ids(batch_id=second.id) == {run_id("shop", "refund", "default", 0)}


def test_batch_records_git_commit_and_branch(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", "-b", "feature"], check=True)
    (repo / "suite.yaml").write_text("name: x\n")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "first"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    with ResultStore(tmp_path / "r.db") as store:
        batch = store.start_batch("shop", git_dir=repo)
        assert (batch.git_commit, batch.git_branch, batch.git_dirty) == (commit, "feature", False)
        (repo / "suite.yaml").write_text("name: y\n")
        assert store.start_batch("shop", git_dir=repo).git_dirty is True
        outside = store.start_batch("shop", git_dir=tmp_path / "repo" / "..")
        assert outside.git_commit is None and outside.git_branch is None


def test_a_record_without_a_batch_is_refused_with_the_fix(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        with pytest.raises(StoreError, match=r"has no batch_id\. Open a batch first \(batch = store.start_batch"):
            store.put(make_record(0, batch_id=None))


def test_a_same_fingerprint_error_never_replaces_a_verdict_but_a_changed_run_does(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.put(make_record(0, "passed"))
        store.put(make_record(0, "error"))  # a racing writer's error of the same run
        assert [o.status for o in store.outcomes()] == ["passed"]
        store.put(make_record(0, "error", fingerprint="fp-2"))  # the criteria changed; the re-run errored
        assert [(o.status, o.fingerprint) for o in store.outcomes()] == [("error", "fp-2")]


def test_a_running_batch_whose_process_died_reads_as_interrupted(tmp_path):
    path = tmp_path / "r.db"
    code = ("import sys; from scenario.store import ResultStore\n"
            "s = ResultStore(sys.argv[1]); print(s.start_batch('shop', planned=5).id)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    batch_id = done.stdout.strip()
    with ResultStore(path, readonly=True) as store:
        batch = store.batch(batch_id)
    assert batch.status == "interrupted" and "ended without closing it" in batch.reason
    with ResultStore(tmp_path / "mine.db") as store:  # this process's own running batch is running
        assert store.start_batch("shop").status == "running"


# ---------------------------------------------------------------------------------------------
# Version-1 stores

V1_SCHEMA = """
CREATE TABLE scenario_store (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id TEXT PRIMARY KEY, suite TEXT NOT NULL, scenario TEXT NOT NULL, variant TEXT NOT NULL,
    run_index INTEGER NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, duration REAL NOT NULL,
    attempts INTEGER NOT NULL, calls INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL, error_type TEXT, error_message TEXT, record TEXT NOT NULL, written_at REAL NOT NULL,
    writer TEXT NOT NULL);
CREATE INDEX runs_by_suite ON runs (suite, scenario, variant);
CREATE TABLE suites (name TEXT PRIMARY KEY, info TEXT NOT NULL, updated_at REAL NOT NULL);
INSERT INTO scenario_store VALUES ('format', 'scenario-results'), ('version', '1'), ('created_at', '1700000000');
"""


def write_v1_store(path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    for suite, count in (("shop", 3), ("bank", 2)):
        for index in range(count):
            record = make_record(index, "passed" if index else "failed", suite=suite, batch_id=None, fingerprint=None)
            payload = json.loads(record.model_dump_json())
            for key in ("batch_id", "fingerprint", "error_traceback"):
                payload.pop(key)  # version 1 had none of these
            conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (record.id, suite, record.scenario, record.variant, index, record.status, record.started_at,
                          record.duration, 1, 1, 100, 10, 0.0001, None, None, json.dumps(payload), 1700000000.0,
                          "old:1"))
    conn.execute("INSERT INTO suites VALUES ('shop', ?, 0)", (json.dumps({"thresholds": {"refund": 0.5}}),))
    conn.commit()
    conn.close()


def test_a_version_1_store_is_read_without_being_changed(tmp_path):
    path = tmp_path / "old.db"
    write_v1_store(path)
    before = path.read_bytes()
    with ResultStore(path, readonly=True) as store:
        batches = store.batches()
        assert sorted(b.suite for b in batches) == ["bank", "shop"]
        shop = store.latest_batch("shop")
        assert (shop.status, shop.finished, shop.passed, shop.planned) == ("finished", 3, 2, 3)
        assert "migrated from a version-1 store" in shop.reason and shop.info == {"thresholds": {"refund": 0.5}}
        records = store.records("shop", batch_id=shop.id)
        assert [r.index for r in records] == [0, 1, 2] and {r.batch_id for r in records} == {shop.id}
    assert path.read_bytes() == before


def test_a_version_1_store_is_migrated_when_opened_for_writing(tmp_path):
    path = tmp_path / "old.db"
    write_v1_store(path)
    with ResultStore(path) as store:
        old = store.latest_batch("shop")
        assert store.count() == 5 and old.finished == 3
        new = store.start_batch("shop", planned=1)
        store.put(make_record(0, batch_id=new.id))
        assert store.count("shop") == 4
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM scenario_store WHERE key = 'version'").fetchone() == ("2",)
    conn.close()
    with ResultStore(path) as store:  # opening it again is a no-op
        assert len(store.batches("shop")) == 2


# ---------------------------------------------------------------------------------------------
# run_batch(store=..., resume=...)


@pytest.mark.asyncio
async def test_every_run_batch_with_a_store_is_a_new_batch(tmp_path):
    path = tmp_path / "r.db"
    first = await run_batch([scripted()], runs=2, suite="shop", store=path)
    second = await run_batch([scripted()], runs=2, suite="shop", store=path)
    assert first.passed and second.passed and second.total == 2
    assert first.metadata["batch_id"] != second.metadata["batch_id"]
    with ResultStore(path, readonly=True) as store:
        batches = store.batches("shop")
        assert [b.id for b in batches] == [second.metadata["batch_id"], first.metadata["batch_id"]]
        assert all(b.status == "finished" and b.finished == b.passed == b.planned == 2 for b in batches)
        records = store.records(batch_id=batches[0].id)
        assert {r.batch_id for r in records} == {batches[0].id}
        assert len({r.fingerprint for r in records}) == 1 and records[0].fingerprint


@pytest.mark.asyncio
async def test_runs_are_stored_before_on_run_finished_sees_them(tmp_path):
    seen = []
    store = ResultStore(tmp_path / "r.db")

    def check(record):
        assert store.record(record.batch_id, record.id) is not None
        seen.append(record.id)

    result = await run_batch([scripted()], runs=3, suite="shop", store=store, on_run_finished=check)
    assert len(seen) == 3 and result.passed
    store.close()


@pytest.mark.asyncio
async def test_resume_keeps_unchanged_verdicts_and_reruns_errors_and_changed_runs(tmp_path):
    store = ResultStore(tmp_path / "r.db")
    Flaky.calls, Flaky.failing = 0, {2}
    specs = [scripted("greeting", agent=Flaky), scripted("farewell", description="A user says bye.")]
    first = await run_batch(specs, runs=2, suite="shop", store=store, max_concurrency=1)
    assert (first.passed_runs, first.error_runs) == (3, 1)
    batch_id = first.metadata["batch_id"]
    store.finish_batch(batch_id, "interrupted", "test")  # as Ctrl-C would leave it

    # The farewell scenario's description changed; the errored greeting run runs again.
    Flaky.failing = set()
    specs = [scripted("greeting", agent=Flaky), scripted("farewell", description="A user says goodbye.")]
    from scenario.batch.runner import prepare_batch
    from scenario.batch.stored import StoredBatch

    stored = StoredBatch.open(store, prepare_batch(specs, runs=2, suite="shop"), resume=True)
    plan = stored.plan
    assert plan.batch.id == batch_id and len(plan.kept) == 1 and plan.errored == 1 and len(plan.changed) == 2
    assert list(plan.changed.values()) == [["scenario"], ["scenario"]]
    assert "1 of 4 runs kept; running 3: 1 ended on an error or timeout; 2 changed since they ran: scenario (2)" \
        in plan.describe()
    result = await stored.execute()
    assert result.total == 4 and result.passed and result.planned == 4
    assert result.metadata["batch_id"] == batch_id and result.metadata["kept"] == 1
    batch = store.batch(batch_id)
    assert (batch.status, batch.finished, batch.passed, batch.resumes) == ("finished", 4, 4, 1)
    assert store.count(batch_id=batch_id) == 4  # exactly one record per run
    assert len(store.batches("shop")) == 1
    store.close()


@pytest.mark.asyncio
async def test_resume_by_id_and_resume_errors_say_what_to_do(tmp_path):
    path = tmp_path / "r.db"
    with pytest.raises(scenario.ScenarioConfigError, match="resuming needs the store"):
        await run_batch([scripted()], suite="shop", resume=True)
    with pytest.raises(scenario.ScenarioConfigError, match="holds no batch of suite 'shop'"):
        await run_batch([scripted()], suite="shop", store=path, resume=True)
    done = await run_batch([scripted()], suite="shop", store=path)
    batch_id = done.metadata["batch_id"]
    with pytest.raises(scenario.ScenarioConfigError, match=f"no interrupted batch of suite 'shop'.*latest batch {batch_id} is finished"):
        await run_batch([scripted()], suite="shop", store=path, resume=True)
    with pytest.raises(scenario.ScenarioConfigError, match=f"no batch 'nope'; recent batches of suite 'shop': {batch_id}"):
        await run_batch([scripted()], suite="shop", store=path, resume="nope")
    with pytest.raises(scenario.ScenarioConfigError, match="belongs to suite 'shop', not 'bank'"):
        await run_batch([scripted()], suite="bank", store=path, resume=batch_id)
    # A finished batch resumed by id keeps every unchanged verdict: nothing runs.
    again = await run_batch([scripted()], suite="shop", store=path, resume=batch_id)
    assert again.total == 1 and again.passed and again.metadata["kept"] == 1


@pytest.mark.asyncio
async def test_a_changed_judge_model_or_criterion_changes_the_fingerprint(tmp_path, configured):
    def spec(criteria: str, temperature: float = 0.0) -> Scenario:
        return Scenario(name="parcel", description="A customer asks about a parcel.",
                        agents=[Echo, scenario.UserSimulatorAgent(),
                                scenario.JudgeAgent(criteria=[criteria], temperature=temperature)])

    from scenario.batch.runner import prepare_batch

    def parts(s: Scenario) -> dict:
        return prepare_batch([s]).units[0].recipe.fingerprint_parts

    base = parts(spec("The agent answers"))
    assert base == parts(spec("The agent answers"))
    from scenario.batch.fingerprint import changed_parts

    assert changed_parts(base, parts(spec("The agent answers politely"))) == ["criteria"]
    assert changed_parts(base, parts(spec("The agent answers", temperature=0.5))) == ["judge"]


def test_the_resume_example_runs_offline(tmp_path):
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "resume_batch.py")
    done = subprocess.run([sys.executable, example, str(tmp_path / "r.db")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "interrupted (fail_fast" in done.stdout
    assert "1 of 8 runs kept; running 7: 5 not finished; 1 ended on an error or timeout; 1 changed since they ran: " \
           "criteria (1)." in done.stdout
    assert "8 records (one per run)" in done.stdout and "the store holds 2 batches" in done.stdout


def test_a_simulator_persona_is_part_of_the_fingerprint_but_its_address_and_key_are_not():
    from scenario.batch.fingerprint import fingerprint_parts

    spec = Scenario(name="x", description="d")
    grumpy = fingerprint_parts(spec, [scenario.UserSimulatorAgent(model="openai/x", persona="grumpy")])
    calm = fingerprint_parts(spec, [scenario.UserSimulatorAgent(model="openai/x", persona="calm")])
    elsewhere = fingerprint_parts(spec, [scenario.UserSimulatorAgent(model="openai/x", persona="calm", api_key="k",
                                                                     api_base="http://127.0.0.1:1/v1")])
    assert grumpy["simulator"] != calm["simulator"] and calm == elsewhere
