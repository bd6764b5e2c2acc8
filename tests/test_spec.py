"""One validated description of a run: the spec door, the shared checks and run_batch's options.

Every door (run/arun, Scenario, run_batch, configure) checks with scenario.checks and raises
ScenarioConfigError; what travels inward is frozen.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

import scenario
from scenario import checks
from scenario.batch.options import DEFAULT_MAX_CONCURRENCY, BatchOptions
from scenario.batch.runner import BatchConfig, plan_batch, prepare_batch
from scenario.distributed import Ray
from scenario.script import ProceedStep
from scenario.spec import ScenarioSpec, build_spec
from tests.helpers.agents import EchoAgent


def _spec(**overrides):
    arguments = dict(name="n", description="d", agents=[EchoAgent()], script=[scenario.user("hi"), scenario.succeed()])
    arguments.update(overrides)
    return build_spec(**arguments)


# -- the spec ------------------------------------------------------------------------------------
def test_a_spec_cannot_be_changed_once_built():
    spec = _spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_turns = 99  # type: ignore[misc]
    assert isinstance(spec.agents, tuple) and isinstance(spec.script, tuple)


def test_a_spec_copies_what_it_was_given():
    agents, fields, metadata = [EchoAgent()], {"golden": "x"}, {"team": "a"}
    spec = _spec(agents=agents, fields=fields, metadata=metadata)
    agents.append(EchoAgent())
    fields["golden"] = "changed"
    metadata["team"] = "b"
    assert len(spec.agents) == 1 and spec.fields == {"golden": "x"} and spec.metadata == {"team": "a"}


def test_a_spec_takes_its_defaults_from_configure_when_it_is_built():
    scenario.configure(max_turns=7, min_turns=2, verbose=True)
    spec = _spec()
    scenario.configure(max_turns=3, min_turns=0, verbose=False)
    assert (spec.max_turns, spec.min_turns, spec.verbose) == (7, 2, True)
    assert _spec(max_turns=4, verbose=False).max_turns == 4


def test_autopilot_is_one_open_ended_proceed_step():
    spec = build_spec(name="n", description="d", agents=[EchoAgent(), scenario.UserSimulatorAgent(model="m"),
                                                         scenario.JudgeAgent(model="m", criteria=["ok"])])
    (step,) = spec.steps
    assert spec.script is None and isinstance(step, ProceedStep) and step.turns is None
    assert spec.criteria() == ["ok"]


@pytest.mark.parametrize("timeout", [math.inf, True, -1])
def test_a_timeout_must_be_a_positive_finite_number(timeout):
    with pytest.raises(scenario.ScenarioConfigError, match=r"scenario 'n': timeout must be a positive number"):
        _spec(timeout=timeout)


def test_a_scenario_builds_its_runs_spec_through_the_same_door():
    script = [scenario.user("hi"), scenario.succeed()]
    own = scenario.Scenario(name="n", description="d", max_turns=3, timeout=5, set_id="s", script=script)
    built = own.spec([EchoAgent()], timeout=1)
    assert isinstance(built, ScenarioSpec)
    assert (built.name, built.max_turns, built.timeout, built.set_id) == ("n", 3, 5, "s")  # its own timeout wins
    assert scenario.Scenario(name="n", description="d", script=script).spec([EchoAgent()], timeout=1).timeout == 1
    with pytest.raises(scenario.ScenarioConfigError, match="scenario 'n': the script generates user messages"):
        scenario.Scenario(name="n", description="d").spec([EchoAgent()])


def test_a_scenario_checks_its_turns_and_script_when_it_is_made():
    with pytest.raises(scenario.ScenarioConfigError, match=r"Scenario\('n'\): max_turns must be an integer >= 1"):
        scenario.Scenario(name="n", description="d", max_turns=0)
    with pytest.raises(scenario.ScenarioConfigError, match=r"Scenario\('n'\): script\[1\] is a str, not a step"):
        scenario.Scenario(name="n", description="d", script=[scenario.succeed(), "say hi"])


# -- the checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "check, args, message",
    [
        (checks.check_name, ("", "here"), "here: name must be a non-empty string"),
        (checks.check_description, (3, "here"), "here: description must be a string, got int"),
        (checks.check_max_turns, (True, "here"), "here: max_turns must be an integer >= 1, got True"),
        (checks.check_min_turns, (5, "here", 3), r"min_turns must be an integer from 0 to max_turns \(3\)"),
        (checks.check_fields, ([1], "here"), "here: fields must be a dict"),
        (checks.check_agents, ([EchoAgent], "here"), "is the class EchoAgent, not an instance"),
        (checks.check_timeout, (0, "f(timeout=...)"), r"f\(timeout=...\) must be a positive number of seconds"),
        (checks.check_runs, (0, "f(runs=...)"), r"f\(runs=...\) must be an integer >= 1, got 0"),
        (checks.check_rate, (1.5, "f(rate=...)"), "must be a fraction between 0 and 1"),
        (checks.check_positive_int, (2.0, "f(n=2.0)"), r"f\(n=2.0\): must be an integer >= 1"),
        (checks.check_infra_retries, (-1, "here"), "here: -1 is not allowed; give an integer >= 0"),
        (checks.check_choice, ("x", ("a", "b"), "use 'a' or 'b'"), "use 'a' or 'b'"),
    ],
)
def test_every_check_raises_a_config_error_that_says_where(check, args, message):
    with pytest.raises(scenario.ScenarioConfigError, match=message):
        check(*args)


def test_checks_return_what_they_accepted():
    assert checks.check_rate(1, "here") == 1.0 and isinstance(checks.check_rate(1, "here"), float)
    assert checks.check_timeout(2, "here") == 2.0
    assert checks.check_fields(None, "here") == {}
    assert checks.check_agents(None, "here") == []
    assert checks.check_min_turns(0, "here", 1) == 0


def test_ray_options_use_the_shared_infra_retries_check():
    with pytest.raises(scenario.ScenarioConfigError, match=r"Ray\(infra_retries=...\): True is not allowed"):
        Ray(infra_retries=True)


# -- run_batch's options -------------------------------------------------------------------------
def _scenarios(*names):
    return [scenario.Scenario(name=n, description="d", agents=[EchoAgent()],
                              script=[scenario.user("hi"), scenario.agent(), scenario.succeed()]) for n in names]


def test_batch_options_hold_resolved_values():
    options = BatchOptions.check(_scenarios("a"), 2, retries=1, agents=[EchoAgent], skip=["x"])
    assert options.runs == 2 and options.max_attempts == 2
    assert isinstance(options.strategy, scenario.SlidingWindow) and options.strategy.limit == DEFAULT_MAX_CONCURRENCY
    assert list(options.variants) == ["EchoAgent"] and options.backend == "local"
    assert options.skip == {"x"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(executor="fork"), "unknown executor"),
        (dict(on_error="stop"), "use 'continue'"),
        (dict(processes=0), r"run_batch\(processes=0\): must be an integer >= 1"),
        (dict(max_concurrency=2, concurrency=scenario.SlidingWindow(2)), "not both"),
        (dict(retries=-1), r"run_batch\(retries=-1\)"),
        (dict(shard_index=0), "give shard_index and shard_count together"),
        (dict(variants={"a": EchoAgent}, agents=[EchoAgent]), "give variants= or agents="),
        (dict(backend="cloud"), "unknown backend"),
    ],
)
def test_batch_options_are_checked_before_any_agent_is_built(arguments, message):
    built = []

    class Counted(EchoAgent):
        def __init__(self):
            built.append(self)
            super().__init__()

    specs = [scenario.Scenario(name="a", description="d", agents=[Counted], script=[scenario.succeed()])]
    with pytest.raises(scenario.ScenarioConfigError, match=message):
        prepare_batch(specs, **arguments)
    assert built == []


def test_a_planned_batch_is_its_options_plus_its_runs():
    options = BatchOptions.check(_scenarios("a", "b"), 3, suite="s")
    config = plan_batch(options)
    assert isinstance(config, BatchConfig) and isinstance(config, BatchOptions)
    assert len(config.units) == 6 and config.skipped == 0
    assert config.strategy is options.strategy and config.retry_policy is options.retry_policy
    skipped = prepare_batch(_scenarios("a", "b"), 3, suite="s", skip=[config.units[0].id])
    assert len(skipped.units) == 5 and skipped.skipped == 1
    # the Ray backend ships a copy without the driver's own objects: replace keeps working
    shipped = dataclasses.replace(config, strategy=None, on_run_finished=None, backend="local")
    assert shipped.units == config.units and shipped.strategy is None


# -- the keyword lists that must stay public agree with the one place that checks them ------------
def _parameters(function, leave_out=()):
    import inspect

    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
            if p.name not in leave_out]


def test_run_and_arun_take_the_same_keywords():
    assert _parameters(scenario.run) == _parameters(scenario.arun)


def test_run_batch_takes_exactly_the_keywords_batch_options_check():
    # run_batch keeps its documented signature; BatchOptions.check is where each one is checked.
    assert _parameters(scenario.run_batch, leave_out=("store", "resume")) == _parameters(BatchOptions.check)


def test_concurrency_strategies_check_their_integers_with_the_shared_check():
    with pytest.raises(scenario.ScenarioConfigError, match=r"SlidingWindow: max_concurrency=2.5 is not allowed"):
        scenario.SlidingWindow(2.5)  # type: ignore[arg-type]
    with pytest.raises(scenario.ScenarioConfigError, match=r"new_limit=0 is not allowed; new_limit must be >= 1"):
        scenario.SlidingWindow(2).resize(0)
