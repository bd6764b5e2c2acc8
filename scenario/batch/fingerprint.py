"""Fingerprints: a digest of everything that decided a run, so a resume knows what is stale.

A stored verdict is only worth keeping if the run would be set up the same way today. The
fingerprint of a (scenario, variant) pair digests, part by part:

- ``scenario``: name, description, max_turns, timeout;
- ``script``: every step (content, criteria, verdicts; callables by module and qualified name);
- ``criteria``: the judge's criteria;
- ``agent``: the agent under test's reference (factory ``module:qualname`` and its arguments,
  or the adapter's class);
- ``simulator`` / ``judge``: model name, temperature, max_tokens, system prompt and extra
  parameters, after ``configure(default_model=...)`` is applied;
- ``other agents``: any further adapters, by class;
- ``threshold``: the scenario's and the batch's minimum pass rate.

What it leaves out on purpose: a model's ``api_base``, ``api_key`` and ``timeout`` (where a model is served and
with which credentials do not change what it answers; the mock server's port changes on every
``--mock`` run; a timeout decides whether a call errors, and errored runs re-run anyway), the source code behind a reference (a reference that stays the same is taken to
mean the same agent), and the run index (every run of a pair shares one fingerprint).

Each part is digested on its own and the parts' digests make the fingerprint, so a resume can
say *which* part changed (``criteria``, ``agent``, ...) by comparing stored part digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from scenario.messages import AgentRole

#: Bumped when the description of a part changes, so old fingerprints never match new ones by accident.
FINGERPRINT_VERSION = "1"


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-describable value."""
    text = json.dumps(value, sort_keys=True, default=_fallback, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def combine(parts: Mapping[str, str]) -> str:
    """The fingerprint made of part digests (see :func:`fingerprint_parts`)."""
    return digest({"v": FINGERPRINT_VERSION, "parts": dict(parts)})


def fingerprint_parts(
    scenario: Any,
    agents: Sequence[Any],
    variant_source: Any = None,
    *,
    batch_min_pass_rate: float | None = None,
    batch_timeout: float | None = None,
) -> dict[str, str]:
    """Part name -> digest for one (scenario, variant) pair.

    Args:
        scenario: the :class:`scenario.Scenario`.
        agents: the adapters one run of the pair gets (as built by its recipe).
        variant_source: the variant's factory or adapter (None when the scenario brings its own agent).
    """
    simulators: list[Any] = []
    judges: list[Any] = []
    under_test: list[Any] = []
    others: list[Any] = []
    for agent in agents:
        role = getattr(agent, "role", None)
        if role == AgentRole.USER:
            simulators.append(_model_settings(agent))
        elif role == AgentRole.JUDGE:
            judges.append(agent)
        elif role == AgentRole.AGENT:
            under_test.append(reference(agent))
        else:
            others.append(reference(agent))
    criteria = [list(getattr(j, "criteria", None) or []) for j in judges]
    parts = {
        "scenario": {
            "name": scenario.name,
            "description": scenario.description,
            "max_turns": scenario.max_turns,
            "timeout": scenario.timeout if scenario.timeout is not None else batch_timeout,
        },
        "script": None if scenario.script is None else [describe_step(step) for step in scenario.script],
        "criteria": criteria,
        "agent": {"variant": reference(variant_source) if variant_source is not None else None,
                  "adapters": under_test},
        "simulator": simulators,
        "judge": [_model_settings(j) for j in judges],
        "other agents": others,
        "threshold": {"scenario": scenario.min_pass_rate, "batch": batch_min_pass_rate},
    }
    return {name: digest(value) for name, value in parts.items()}


def reference(value: Any) -> Any:
    """How a factory, class or adapter is named in a fingerprint: by import path, not identity."""
    if value is None:
        return None
    path = getattr(value, "path", None)
    args = getattr(value, "args", None)
    if isinstance(path, str) and isinstance(args, dict):  # a suite's AgentFactory: path plus arguments
        return {"factory": path, "args": args}
    if isinstance(value, (list, tuple)):
        return [reference(item) for item in value]
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    cls = type(value)
    return f"{cls.__module__}:{cls.__qualname__}"


def describe_step(step: Any) -> Any:
    """A script step as plain data: built-in steps by their fields, callables by reference."""
    import dataclasses

    if dataclasses.is_dataclass(step) and not isinstance(step, type):
        data: dict[str, Any] = {"kind": getattr(step, "kind", type(step).__name__)}
        for item in dataclasses.fields(step):
            value = getattr(step, item.name)
            data[item.name] = reference(value) if callable(value) else value
        return data
    if callable(step):
        return {"callable": reference(step)}
    return {"value": repr(step)}


def changed_parts(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Names of the parts whose digests differ (in the order of ``new``)."""
    names = list(new) + [name for name in old if name not in new]
    return [name for name in names if old.get(name) != new.get(name)]


def _model_settings(agent: Any) -> Any:
    """The model an agent will call, without where it is served or the key (see the module docstring)."""
    data: dict[str, Any] = {"class": reference(agent)}
    config = None
    model_config = getattr(agent, "model_config", None)
    if callable(model_config):
        try:
            config = model_config()
        except Exception:  # no model configured yet: the agent's own arguments are all there is
            config = None
    if config is not None:
        values = config.model_dump()
    else:
        values = {key: getattr(agent, key, None) for key in ("model", "temperature", "max_tokens")}
        values.update(getattr(agent, "litellm_params", None) or {})
    for secret in _NOT_FINGERPRINTED:
        values.pop(secret, None)
    data["model"] = values
    # The agent's other plain settings (system_prompt, persona, token_threshold, ...): whatever a
    # library agent keeps as simple values shapes its answers.
    data["settings"] = {
        name: value for name, value in sorted(vars(agent).items())
        if not name.startswith("_") and name not in _NOT_FINGERPRINTED
        and name not in ("model", "litellm_params", "criteria")  # criteria: a part of their own
        and _plain(value)
    }
    return data


#: Where and with what credentials a model is reached, and how long to wait: not what it answers.
_NOT_FINGERPRINTED = ("api_base", "api_key", "base_url", "timeout", "client")


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _fallback(value: Any) -> Any:
    if callable(value):
        return reference(value)
    text = repr(value)
    # A default repr carries a memory address, different in every process: name the class instead.
    return reference(value) if " at 0x" in text else text
