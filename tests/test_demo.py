"""scenario demo: stores its batch, writes a report, points at what to do next, and fails loudly."""

from __future__ import annotations

from scenario import demo
from scenario.store import ResultStore


def test_demo_stores_a_batch_writes_a_report_and_points_at_the_next_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = demo.main(["--mock", "--latency", "0", "--store", "r.db", "--report", "demo.html"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Where to go next:" in out and "(browse them: scenario view r.db)" in out and "demo.html" in out
    assert "next command        scenario run" in out and "docs/getting-started.md" in out
    with ResultStore(tmp_path / "r.db", readonly=True) as store:
        [batch] = store.batches("demo")
        assert batch.status == "finished" and batch.finished == batch.planned == 6
        assert {r.variant for r in store.records(batch_id=batch.id)} == {"run", "arun"}
        assert batch.info["thresholds"]["discount pressure (expected to fail)"] == 0.0
    assert "<!DOCTYPE html>" in (tmp_path / "demo.html").read_text()


def test_demo_exits_1_when_a_run_fails_unexpectedly(tmp_path, capsys, monkeypatch):
    original = demo.demo_scenarios

    def with_a_surprise(mock: bool):
        specs = original(mock)
        specs[0] = dict(specs[0], criteria=["The agent does the impossible [mock:fail]"])
        return specs

    monkeypatch.setattr(demo, "demo_scenarios", with_a_surprise)
    monkeypatch.chdir(tmp_path)
    code = demo.main(["--mock", "--latency", "0", "--store", "r.db", "--report", "demo.html"])
    captured = capsys.readouterr()
    assert code == 1
    assert "demo FAILED: unexpected outcome for late parcel (arun), late parcel (run)" in captured.err
    assert "Where to go next:" in captured.out  # the pointers still show where the evidence is


def test_the_report_goes_beside_the_store_by_default(tmp_path, capsys):
    assert demo.main(["--mock", "--latency", "0", "--store", str(tmp_path / "sub" / "r.db")]) == 0
    assert (tmp_path / "sub" / "demo-report.html").exists()
    assert str(tmp_path / "sub" / "demo-report.html") in capsys.readouterr().out
