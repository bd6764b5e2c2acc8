"""Agents: the adapter interface and the library's own user simulator and judge."""

from scenario.agents.judge import JudgeAgent
from scenario.agents.user_simulator import UserSimulatorAgent
from scenario.engine.adapter import AgentAdapter, AgentReturnTypes

__all__ = ["AgentAdapter", "AgentReturnTypes", "JudgeAgent", "UserSimulatorAgent"]
