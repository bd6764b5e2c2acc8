"""Run every benchmark in bench/ with one command and collect the ratio lines.

Each ``bench/*.py`` script (except this one and shared helper modules) runs in its own
interpreter as ``python -m bench.<name>`` from the repository root, one after another, with its
output streamed as it comes. Lines that state a goal
(``... (goal ...) OK|MISSED``) and lines marked ``(reference)``/``(reported)`` are gathered into a
summary at the end. New scripts dropped into bench/ are picked up automatically.

    .venv/bin/python -m bench.run_all [--only batch_scale core_targets] [--skip pytest_group] [--strict]

Exit status: 1 if a script crashed or timed out (or, with ``--strict``, if a goal was missed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HELPERS = {"run_all.py", "batch_common.py", "__init__.py"}
TIMEOUT = 30 * 60


def scripts(only: list[str], skip: list[str]) -> list[Path]:
    found = sorted(p for p in BENCH.glob("*.py") if p.name not in HELPERS and not p.name.startswith("_"))
    if only:
        found = [p for p in found if p.stem in only or p.name in only]
    return [p for p in found if p.stem not in skip and p.name not in skip]


def run(script: Path) -> tuple[int, list[str], float]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{script.stem}"], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            sys.stdout.write(f"  {line}")
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
            if time.perf_counter() - started > TIMEOUT:
                raise subprocess.TimeoutExpired(proc.args, TIMEOUT)
        code = proc.wait()
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lines.append(f"timed out after {TIMEOUT}s")
        code = -1
    return code, lines, time.perf_counter() - started


_RESULT_MARKERS = ("(goal", "(reference)", "(reported)", "ratio", "target", "requests/s")


def is_result(line: str) -> bool:
    """Lines that state a measured result (ours use the first three markers; other scripts in
    bench/ print ratios and targets in their own words)."""
    return any(marker in line for marker in _RESULT_MARKERS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="run only these scripts (by name)")
    parser.add_argument("--skip", nargs="*", default=[], help="leave these scripts out")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()

    summary: list[str] = []
    crashed: list[str] = []
    missed = 0
    for script in scripts(args.only, args.skip):
        print(f"== {script.name}", flush=True)
        code, lines, elapsed = run(script)
        results = [line for line in lines if is_result(line)]
        missed += sum(1 for line in results if line.endswith("MISSED"))
        if code not in (0, 1) or (code == 1 and not any(line.endswith("MISSED") for line in results)):
            crashed.append(f"{script.name} (exit {code})")
        summary.append(f"{script.name} ({elapsed:.0f}s, exit {code})")
        summary.extend(f"    {line.strip()}" for line in results)
    print("\n== summary")
    print("\n".join(summary))
    if crashed:
        print("crashed: " + ", ".join(crashed))
    print(f"{missed} goal(s) missed")
    return 1 if crashed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
