"""Testing helpers for scenario: an offline, OpenAI-compatible mock model server, and an
in-process function model for unit tests of one prompt.

::

    from scenario.testing import MockLLMServer, MockBehavior

    with MockLLMServer(behavior=MockBehavior(judge_turns=2)) as server:
        ...  # point litellm at server.base_url with model "openai/gpt-4o-mini"

    from scenario.testing import FunctionModel

    JudgeAgent(criteria=[...], model=FunctionModel(lambda messages, tools: ...))  # no server at all

Names are resolved lazily (PEP 562) for two reasons: ``import scenario.testing``
stays cheap, and ``python -m scenario.testing.mock_llm`` does not find the
module already imported by its own package (which makes runpy warn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from scenario.testing.function_model import FunctionModel, ModelRequestSeen, ToolCallReply, judge_verdict
    from scenario.testing.mock_behavior import MockBehavior
    from scenario.testing.mock_llm import Fault, MockLLMServer, MockStats

__all__ = ["MockLLMServer", "MockBehavior", "MockStats", "Fault", "FunctionModel", "ModelRequestSeen", "ToolCallReply",
           "judge_verdict"]

_LAZY = {
    "MockBehavior": "scenario.testing.mock_behavior",
    "MockLLMServer": "scenario.testing.mock_llm",
    "MockStats": "scenario.testing.mock_llm",
    "Fault": "scenario.testing.mock_llm",
    "FunctionModel": "scenario.testing.function_model",
    "ModelRequestSeen": "scenario.testing.function_model",
    "ToolCallReply": "scenario.testing.function_model",
    "judge_verdict": "scenario.testing.function_model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scenario.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
