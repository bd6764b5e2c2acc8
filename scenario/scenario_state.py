"""``from scenario.scenario_state import ScenarioState``: the module path langwatch-scenario uses.

The state lives in :mod:`scenario.engine.state`; this module only re-exports it.
"""

from scenario.compat.peer_only import TraceView, TurnView  # type: ignore[attr-defined]  # made at import; building one refuses (no span views here)
from scenario.engine.state import ScenarioState, ToolCall, ToolCalls

__all__ = ["ScenarioState", "ToolCall", "ToolCalls", "TraceView", "TurnView"]
