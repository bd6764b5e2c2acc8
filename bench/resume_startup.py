"""How fast ``scenario run --resume`` starts when the store already holds 10,000 finished runs.

Goal: <= 1 s from launching the command to the first remaining run being handed to the batch.

A suite of 10 scenarios x 1,000 runs is stored as finished (records with transcripts, criteria
and usage, like real ones), then two things are timed, each as a fresh process, several times:

- ``resume, 100 runs left``: the suite asks for 1,010 runs per scenario; the time until the
  command prints its plan line, which it does right before the batch starts the first run.
  The suite is scripted (no simulator or judge), so no model client import sits in the way:
  what is measured is start-up, suite loading, opening the store and finding what is done.
- ``resume, nothing left``: the whole command, start to exit, when every run is already stored.

    .venv/bin/python -m bench.resume_startup [--runs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GOAL_SECONDS = 1.0
SCENARIOS = 10

AGENT = '''
import scenario


class Agent(scenario.AgentAdapter):
    def call(self, input):
        return "Your parcel is on its way."


def make_agent():
    return Agent()
'''


def write_suite(folder: Path, runs_per_scenario: int) -> Path:
    (folder / "bench_resume_agent.py").write_text(AGENT)
    lines = ["name: resume-bench", "agent: bench_resume_agent:make_agent", f"defaults: {{runs: {runs_per_scenario}}}",
             "scenarios:"]
    for n in range(SCENARIOS):
        lines += [f"  - name: scenario {n}", f"    description: customer {n} asks about a parcel",
                  '    script: [{user: "where is my parcel"}, agent, succeed]']
    path = folder / "suite.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fingerprints(suite_path: Path) -> dict:
    """Scenario name -> the fingerprint ``scenario run`` gives its runs (so the resume keeps them)."""
    from scenario.batch.runner import prepare_batch
    from scenario.cli.run import _batch_scenarios
    from scenario.suite import load_suite

    suite = load_suite(suite_path)  # makes the suite's folder importable, so its agent module loads
    config = prepare_batch(_batch_scenarios(suite), suite=suite.name, variants=dict(suite.variants))
    return {unit.scenario.name: unit.recipe.fingerprint for unit in config.units}


def fill_store(path: Path, runs_per_scenario: int, suite_path: Path) -> str:
    """An interrupted batch holding every run of the suite but the extra ones the resume asks for."""
    from scenario.records import RunRecord, run_id
    from scenario.store import ResultStore
    from scenario.types import CriterionResult, ScenarioResult, Usage

    prints = fingerprints(suite_path)

    usage = Usage()
    usage.record(role="judge", model="openai/gpt-4o-mini", input_tokens=900, output_tokens=120, cost_usd=0.0002)
    messages = [
        {"role": "user", "content": "Hi, my parcel is a week late. Where is it? Order 12345."},
        {"role": "assistant", "content": "Sorry about the delay! Your parcel left the depot today and arrives tomorrow."},
        {"role": "user", "content": "Thanks. Can I change the delivery address?"},
        {"role": "assistant", "content": "Yes, I have updated it. You'll get a confirmation email shortly."},
    ]
    criteria = [CriterionResult(requirement="The agent says where the parcel is", status="passed",
                                reasoning="It says the parcel left the depot."),
                CriterionResult(requirement="The agent stays polite", status="passed", reasoning="It apologises.")]
    with ResultStore(path) as store:
        batch_id = store.start_batch("resume-bench", planned=SCENARIOS * runs_per_scenario).id
        batch = []
        for n in range(SCENARIOS):
            name = f"scenario {n}"
            for index in range(runs_per_scenario):
                result = ScenarioResult(success=True, messages=messages, reasoning="All criteria met.",
                                        passed_criteria=[c.requirement for c in criteria], criteria=criteria,
                                        usage=usage, total_time=1.5)
                batch.append(RunRecord(id=run_id("resume-bench", name, "default", index), suite="resume-bench",
                                       scenario=name, index=index, status="passed", result=result,
                                       started_at=time.time(), duration=1.5, usage=usage, batch_id=batch_id,
                                       fingerprint=prints[name]))
        store.put_many(batch)
        store.finish_batch(batch_id, "interrupted", "bench: stopped on purpose")
    return batch_id


def time_until_plan_line(command: list, cwd: Path, env: dict) -> float:
    """Seconds from spawning the command to the line it prints right before the first run starts."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    elapsed = None
    for line in proc.stderr:
        if "already in the store" in line and line.startswith("resume-bench:"):
            elapsed = time.perf_counter() - started
            proc.kill()
            break
    proc.wait()
    if elapsed is None:
        raise SystemExit("the command never reached its first run")
    return elapsed


def time_whole_command(command: list, cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "nothing left to run" not in done.stderr:
        raise SystemExit(f"unexpected outcome ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main(args: argparse.Namespace) -> int:
    per_scenario = args.runs // SCENARIOS
    env = dict(os.environ, PYTHONPATH=str(REPO), CI="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "results.db"
        suite = write_suite(folder, per_scenario)
        started = time.perf_counter()
        batch_id = fill_store(store, per_scenario, suite)
        size = store.stat().st_size + sum(p.stat().st_size for p in folder.glob("results.db-*"))
        print(f"stored {SCENARIOS * per_scenario} finished runs in {time.perf_counter() - started:.1f}s "
              f"({size / 1e6:.1f} MB)")
        base = [sys.executable, "-m", "scenario.cli", "run", str(suite), "--store", str(store), "--resume", batch_id,
                "--progress", "plain"]
        baseline = [sys.executable, "-c", "import scenario"]

        imports, partial, nothing = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(baseline, env=env, check=True)
            imports.append(time.perf_counter() - t0)
            nothing.append(time_whole_command(base, folder, env))
            # Killed before its first run finishes, so the batch stays interrupted with 100 runs left.
            partial.append(time_until_plan_line(base + ["--runs", str(per_scenario + 10)], folder, env))
    print(f"python -c 'import scenario' (floor): median {statistics.median(imports):.3f}s")
    print(f"resume, {10 * SCENARIOS} runs left: launch -> first run, median {statistics.median(partial):.3f}s, "
          f"max {max(partial):.3f}s over {args.repeat}")
    print(f"resume, nothing left: whole command, median {statistics.median(nothing):.3f}s, max {max(nothing):.3f}s")
    value = statistics.median(partial)
    verdict = "OK" if value <= GOAL_SECONDS else "MISSED"
    print(f"resume start-up with {SCENARIOS * per_scenario} finished runs: {value:.3f}s (goal <= {GOAL_SECONDS:.1f}s) {verdict}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in the store")
    parser.add_argument("--repeat", type=int, default=5)
    sys.exit(main(parser.parse_args()))
