"""bench/ is a package: every script runs as ``python -m bench.<name>`` from the repository root and
imports its helpers as ``bench.batch_common``, with no ``sys.path`` edits (issue 9)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")


def test_no_bench_module_edits_sys_path():
    offenders = [p.name for p in BENCH.glob("*.py") if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_bench_module_imports_as_part_of_the_package_without_running(name):
    module = importlib.import_module(f"bench.{name}")
    # Importing must not start a benchmark: the work sits behind `if __name__ == "__main__"`.
    if name != "batch_common":
        assert callable(getattr(module, "main", None)), f"bench/{name}.py has no main()"


def test_run_all_runs_each_script_as_a_module_from_the_repository_root(monkeypatch):
    run_all = importlib.import_module("bench.run_all")
    names = [p.stem for p in run_all.scripts([], [])]
    assert "batch_scale" in names and not {"batch_common", "run_all", "__init__"} & set(names)

    started = []

    class FakeProcess:
        stdout = iter(["scale ratio: 1.0 (goal >= 0.9) OK\n"])

        def __init__(self, args, **kwargs):
            started.append((args, kwargs["cwd"]))

        def wait(self):
            return 0

    monkeypatch.setattr(run_all.subprocess, "Popen", FakeProcess)
    code, lines, _ = run_all.run(BENCH / "batch_scale.py")
    assert code == 0 and lines == ["scale ratio: 1.0 (goal >= 0.9) OK"]
    assert started == [([run_all.sys.executable, "-m", "bench.batch_scale"], str(BENCH.parent))]


def test_the_library_overhead_bench_runs_end_to_end():
    """It swaps litellm for an in-process fake, so it needs no server and finishes in seconds; it
    reaches into the library (the model loop's litellm module), which a move can break silently."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bench.library_overhead", "--runs", "4", "--rounds", "1"],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "library CPU per model call, run / arun:" in proc.stdout
