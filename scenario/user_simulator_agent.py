"""``from scenario.user_simulator_agent import UserSimulatorAgent``: langwatch-scenario's module path.

The simulator lives in :mod:`scenario.agents.user_simulator`; this module only re-exports it.
"""

from scenario.agents.user_simulator import UserSimulatorAgent

__all__ = ["UserSimulatorAgent"]
