"""Exceptions the library raises.

Every message says what went wrong, where (scenario, step, adapter) and what to do, because the
person reading it is usually looking at a red CI run, not at our source.
"""

from __future__ import annotations


class ScenarioError(Exception):
    """Base class for every error raised by `scenario`."""


class ScenarioConfigError(ScenarioError, ValueError):
    """The scenario was set up wrongly (bad argument, missing agent, unknown step).

    Raised before anything runs, so nothing is half-done when it fires.
    """


class AgentReturnError(ScenarioError, TypeError):
    """An agent adapter returned something the engine cannot turn into messages."""


class ModelCallError(ScenarioError):
    """A model call made by the library (user simulator or judge) failed after its retries.

    The original provider exception is kept as ``__cause__`` and as ``original``. ``kind`` says
    what went wrong (``missing_key``, ``auth``, ``unknown_model``, ``context_window``,
    ``bad_request``, ``timeout``, ``connection``, ``rate_limit``, ``server`` or ``other``; see
    :mod:`scenario.llm.classify`), and the message says what to do about it.
    """

    def __init__(self, message: str, original: BaseException | None = None, attempts: int = 1,
                 kind: str = "other"):
        super().__init__(message)
        self.original = original
        self.attempts = attempts
        self.kind = kind
