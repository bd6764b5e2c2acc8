"""``from scenario.agent_adapter import AgentAdapter``: the module path langwatch-scenario uses.

The interface lives in :mod:`scenario.engine.adapter`; this module only re-exports it so code
written for langwatch-scenario imports unchanged.
"""

from scenario.engine.adapter import AgentAdapter, AgentReturnTypes

__all__ = ["AgentAdapter", "AgentReturnTypes"]
