"""Suite files: the format, every kind of error (with file, line and key), and override precedence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scenario.script import AgentStep, JudgeStep, MessageStep, ProceedStep, UserStep, VerdictStep
from scenario.suite import Overrides, SuiteError, check_agent, load_suite

AGENT_MODULE = '''
import scenario

class EchoAgent(scenario.AgentAdapter):
    def __init__(self, prefix="echo"):
        self.prefix = prefix

    def call(self, input):
        return f"{self.prefix}: {input.last_new_user_message_str()}"

def make_agent(prefix="echo"):
    return EchoAgent(prefix)

def make_nothing():
    return 42

def make_broken():
    raise RuntimeError("no credentials")

NOT_CALLABLE = 3
'''


@pytest.fixture
def suite_dir(tmp_path: Path, monkeypatch) -> Path:
    # A uniquely named agent module per test directory, so sys.modules caching cannot leak.
    (tmp_path / "suite_agents_mod.py").write_text(AGENT_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


VALID = """
name: shop
agent: suite_agents_mod:make_agent
defaults:
  model:
    name: openai/gpt-4o-mini
    api_base: http://127.0.0.1:1/v1
    temperature: 0
  max_turns: 5
  runs: 2
  max_concurrency: 4
  min_pass_rate: 0.5
scenarios:
  - name: refund
    description: wants a refund
    criteria: [offers a refund]
  - name: scripted
    description: scripted one
    criteria: [answers]
    runs: 4
    max_turns: 3
    min_pass_rate: 1.0
    timeout: 9
    script:
      - user: hello
      - agent
      - judge: [responds]
      - judge: one criterion
      - message: {role: tool, content: "{}", tool_call_id: x}
      - proceed: 2
      - proceed
      - user
      - succeed: fine
      - fail
"""


def test_valid_yaml_suite_resolves_defaults_and_overrides(suite_dir):
    suite = load_suite(write(suite_dir, "s.yaml", VALID))
    assert suite.name == "shop"
    assert list(suite.variants) == ["default"]
    refund, scripted = suite.scenarios
    assert (refund.runs, refund.max_turns, refund.min_pass_rate, refund.timeout) == (2, 5, 0.5, None)
    assert (scripted.runs, scripted.max_turns, scripted.min_pass_rate, scripted.timeout) == (4, 3, 1.0, 9)
    assert suite.total_runs == 6
    assert suite.max_concurrency == 4 and suite.adaptive is False and suite.executor == "thread"
    assert suite.model is not None and suite.model.name == "openai/gpt-4o-mini"
    assert suite.model.api_base == "http://127.0.0.1:1/v1" and suite.model.temperature == 0
    steps = scripted.build_script()
    kinds = [type(s) for s in steps]
    assert kinds == [UserStep, AgentStep, JudgeStep, JudgeStep, MessageStep, ProceedStep, ProceedStep, UserStep,
                     VerdictStep, VerdictStep]
    assert steps[0].content == "hello" and steps[1].content is None
    assert steps[2].criteria == ["responds"] and steps[3].criteria == ["one criterion"]
    assert steps[5].turns == 2 and steps[6].turns is None
    assert steps[8].success and steps[8].reasoning == "fine" and not steps[9].success
    agent = suite.variants["default"]()
    assert agent.prefix == "echo"
    assert check_agent(suite.variants["default"]) is None


def test_toml_suite_equivalent(suite_dir):
    path = write(suite_dir, "s.toml", """
        name = "shop"
        [variants.loud]
        agent = "suite_agents_mod:make_agent"
        args = { prefix = "LOUD" }
        [variants]
        quiet = "suite_agents_mod:make_agent"
        [defaults]
        model = "openai/gpt-4o-mini"
        runs = 3
        adaptive = true
        [[scenarios]]
        name = "refund"
        description = "wants a refund"
        criteria = ["offers a refund"]
        variants = ["loud"]
        [[scenarios]]
        name = "other"
        description = "x"
        criteria = ["y"]
        script = ["user", "agent", { judge = ["z"] }, { user = "hi" }]
    """)
    suite = load_suite(path)
    assert sorted(suite.variants) == ["loud", "quiet"]
    assert suite.variants["loud"]().prefix == "LOUD"
    assert suite.scenarios[0].variants == ["loud"]
    assert suite.scenarios[1].variants == ["loud", "quiet"]
    assert suite.total_runs == 3 + 6
    assert suite.adaptive is True


def test_command_line_overrides_file_and_scenario_values(suite_dir):
    path = write(suite_dir, "s.yaml", VALID)
    suite = load_suite(path, Overrides(runs=7, min_pass_rate=0.25, model="anthropic/claude-x", timeout=3.0,
                                       max_concurrency=2, executor="loop", retries=2))
    for scenario in suite.scenarios:
        assert scenario.runs == 7  # command line beats both defaults (2) and the scenario's own (4)
        assert scenario.min_pass_rate == 0.25
        assert scenario.timeout == 3.0
    assert suite.model.name == "anthropic/claude-x"
    assert suite.model.api_base == "http://127.0.0.1:1/v1"  # the rest of the file's model section stays
    assert (suite.max_concurrency, suite.executor, suite.retries) == (2, "loop", 2)


def test_adaptive_flag_and_max_concurrency_precedence(suite_dir):
    path = write(suite_dir, "s.yaml", VALID)
    assert load_suite(path, Overrides(adaptive=True)).adaptive is True
    fixed = load_suite(path, Overrides(max_concurrency=3))
    assert fixed.adaptive is False and fixed.max_concurrency == 3
    text = VALID.replace("max_concurrency: 4", "max_concurrency: 4\n  adaptive: true")
    adaptive_file = write(suite_dir, "a.yaml", text)
    assert load_suite(adaptive_file).adaptive is True
    assert load_suite(adaptive_file, Overrides(max_concurrency=6)).adaptive is False


def test_scenario_and_variant_filters(suite_dir):
    path = write(suite_dir, "s.yaml", VALID)
    suite = load_suite(path, Overrides(scenarios=["scripted"]))
    assert [s.name for s in suite.scenarios] == ["scripted"]
    with pytest.raises(SuiteError) as info:
        load_suite(path, Overrides(scenarios=["nope"]))
    assert "'nope' not in the suite" in str(info.value)
    with pytest.raises(SuiteError) as info:
        load_suite(path, Overrides(variants=["nope"]))
    assert "--variant nope not in the suite" in str(info.value)


def test_api_key_env_read_from_environment(suite_dir, monkeypatch):
    text = VALID.replace("temperature: 0", "temperature: 0\n    api_key_env: SUITE_TEST_KEY")
    path = write(suite_dir, "s.yaml", text)
    monkeypatch.setenv("SUITE_TEST_KEY", "sekret")
    assert load_suite(path).model.api_key == "sekret"
    monkeypatch.delenv("SUITE_TEST_KEY")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "SUITE_TEST_KEY is not set" in str(info.value)


def test_every_problem_reported_once_with_line_and_key(suite_dir):
    path = write(suite_dir, "bad.yaml", """
        name: shop
        agent: suite_agents_mod:make_agent
        defaults:
          max_turn: 3
          runs: three
          model:
            name: openai/gpt-4o-mini
            api_bse: x
        scenarios:
          - name: a
            description: hi
            criteria: [x]
            script:
              - user: hello
              - agnet
              - proceed: 0
          - name: a
            descripton: oops
          - name: c
            description: ok
            criteria: [x]
            min_pass_rate: 2
            variants: [foo]
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    problems = {(p.line, p.key): p.message for p in info.value.problems}
    assert problems[(4, "defaults.max_turn")].startswith("unknown key 'max_turn' (did you mean 'max_turns'?)")
    assert "valid integer" in problems[(5, "defaults.runs")] and "'three'" in problems[(5, "defaults.runs")]
    assert "did you mean 'api_base'" in problems[(8, "defaults.model.api_bse")]
    assert "unknown step 'agnet' (did you mean 'agent'?)" in problems[(15, "scenarios[0].script[1]")]
    assert "greater than or equal to 1" in problems[(16, "scenarios[0].script[2].turns")]
    assert "duplicate scenario name 'a'" in problems[(17, "scenarios[1].name")]
    assert problems[(17, "scenarios[1].description")] == "required key 'description' is missing"
    assert "unknown key 'descripton'" in problems[(18, "scenarios[1].descripton")]
    assert "less than or equal to 1" in problems[(22, "scenarios[2].min_pass_rate")]
    assert "unknown variant 'foo'" in problems[(23, "scenarios[2].variants[0]")]
    assert len(info.value.problems) == 10
    text = str(info.value)
    assert text.startswith("10 problems in suite file:")
    assert f"{path}:4: defaults.max_turn: unknown key" in text


@pytest.mark.parametrize(
    "agent, expected",
    [
        ("nosuchmodule_xyz:make", "no module named 'nosuchmodule_xyz'"),
        ("suite_agents_mod:make_agnt", "has no attribute 'make_agnt' for agent 'suite_agents_mod:make_agnt' (did you mean 'make_agent'?)"),
        ("suite_agents_mod:NOT_CALLABLE", "is a int, not a callable"),
        ("suite_agents_mod", "is not an import path; write package.module:factory"),
        ("suite_agents_mod:make-agent", "is not an import path"),
    ],
)
def test_agent_import_path_errors(suite_dir, agent, expected):
    path = write(suite_dir, "s.yaml", f"""
        agent: "{agent}"
        scenarios:
          - {{name: a, description: b, criteria: [c]}}
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    [problem] = info.value.problems
    assert problem.line == 1
    assert problem.key.startswith("agent")
    assert expected in problem.message


def test_missing_agent_and_empty_scenarios(suite_dir):
    path = write(suite_dir, "s.yaml", """
        scenarios: []
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    messages = " | ".join(p.message for p in info.value.problems)
    assert "no agent under test" in messages


def test_agent_and_variants_together_rejected(suite_dir):
    path = write(suite_dir, "s.yaml", """
        agent: suite_agents_mod:make_agent
        variants: {a: suite_agents_mod:make_agent}
        scenarios: [{name: a, description: b, criteria: [c]}]
    """)
    with pytest.raises(SuiteError, match="either 'agent' or 'variants', not both"):
        load_suite(path)


def test_criteria_required_when_the_judge_must_decide(suite_dir):
    path = write(suite_dir, "s.yaml", """
        agent: suite_agents_mod:make_agent
        scenarios:
          - name: autopilot
            description: needs a judge
          - name: scripted
            description: ends with a verdict step
            script: [{user: hi}, agent, succeed]
          - name: half
            description: asks the judge without criteria
            script: [{user: hi}, agent, judge]
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == {"scenarios[0]", "scenarios[2]"}
    assert "criteria is missing" in problems["scenarios[0]"].message
    assert problems["scenarios[0]"].line == 3
    assert "step 3 (judge) asks the judge for a final verdict" in problems["scenarios[2]"].message


def test_yaml_syntax_error_has_line(suite_dir):
    path = write(suite_dir, "s.yaml", "agent: x:y\nscenarios:\n  - name: [unclosed\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    [problem] = info.value.problems
    assert problem.message.startswith("invalid YAML")
    assert problem.line is not None and problem.line >= 3


def test_duplicate_yaml_keys_are_errors(suite_dir):
    path = write(suite_dir, "s.yaml", """
        agent: suite_agents_mod:make_agent
        scenarios:
          - name: a
            description: b
            criteria: [c]
            runs: 2
            runs: 3
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    [problem] = info.value.problems
    assert (problem.line, problem.key) == (7, "scenarios[0].runs")
    assert "duplicate key (first at line 6)" in problem.message


def test_toml_errors_name_the_key(suite_dir):
    path = write(suite_dir, "s.toml", """
        agent = "suite_agents_mod:make_agent"
        [defaults]
        runs = "many"
        [[scenarios]]
        name = "a"
        description = "b"
        criteria = ["c"]
        colour = "red"
    """)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    keys = sorted(p.key for p in info.value.problems)
    assert keys == ["defaults.runs", "scenarios[0].colour"]
    bad_syntax = write(suite_dir, "t.toml", "agent = \n")
    with pytest.raises(SuiteError) as info:
        load_suite(bad_syntax)
    assert info.value.problems[0].message.startswith("invalid TOML") and info.value.problems[0].line == 1


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("missing.yaml", None, "file not found"),
        ("s.json", "{}", "unknown suite file type '.json'"),
        ("empty.yaml", "", "the file is empty"),
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
    ],
)
def test_unusable_files(suite_dir, name, text, expected):
    path = suite_dir / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SuiteError, match=expected):
        load_suite(path)


@pytest.mark.parametrize(
    "factory, expected",
    [
        ("make_nothing", "returned a int, not an agent adapter"),
        ("make_broken", "raised RuntimeError: no credentials"),
    ],
)
def test_check_agent_reports_bad_factories(suite_dir, factory, expected):
    path = write(suite_dir, "s.yaml", f"""
        agent: suite_agents_mod:{factory}
        scenarios: [{{name: a, description: b, criteria: [c]}}]
    """)
    suite = load_suite(path)
    assert expected in check_agent(suite.variants["default"])


def test_agent_module_next_to_the_suite_is_importable(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "neighbour_agent_mod.py").write_text(AGENT_MODULE)
    path = write(folder, "s.yaml", """
        agent: neighbour_agent_mod:make_agent
        scenarios: [{name: a, description: b, criteria: [c]}]
    """)
    suite = load_suite(path)
    assert suite.variants["default"]().prefix == "echo"


def test_example_suite_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "suite.yaml"
    suite = load_suite(example)
    assert suite.name == "support-bot"
    assert set(suite.variants) == {"friendly", "terse"}
    assert all(check_agent(f) is None for f in suite.variants.values())
