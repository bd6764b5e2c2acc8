"""``python -m scenario.trace_demo`` draws the demo trace docs/observability.md shows."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_trace_demo_draws_one_scenario_tree_with_its_turns_agents_and_model_calls():
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "scenario.trace_demo"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("scenario.run  ") and "scenario.verdict=" in lines[0]
    names = [line.lstrip("│├└─ ").split("  ")[0] for line in lines]
    assert names.count("scenario.turn") >= 1
    assert {"invoke_agent UserSimulatorAgent", "invoke_agent SupportAgent", "invoke_agent JudgeAgent",
            "chat openai/gpt-4o-mini"} <= set(names)
