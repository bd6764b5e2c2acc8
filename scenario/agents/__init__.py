"""Agents: the adapter interface and the library's own user simulator and judge."""

from .adapter import AgentAdapter, AgentReturnTypes
from .judge import JudgeAgent
from .user_simulator import UserSimulatorAgent

__all__ = ["AgentAdapter", "AgentReturnTypes", "JudgeAgent", "UserSimulatorAgent"]
