"""Small adapters shared by the core tests."""

from __future__ import annotations

import threading
from typing import Any

import scenario


class EchoAgent(scenario.AgentAdapter):
    """Async agent: replies with the last user message."""

    def __init__(self) -> None:
        self.inputs: list[scenario.AgentInput] = []

    async def call(self, input: scenario.AgentInput) -> str:
        self.inputs.append(input)
        return f"echo: {input.last_new_user_message_str()}"


class SyncEchoAgent(scenario.AgentAdapter):
    """Plain-def agent that records the thread it ran on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def call(self, input: scenario.AgentInput) -> str:
        self.threads.append(threading.current_thread().name)
        return f"sync echo: {input.last_new_user_message_str()}"


class ReturnsAgent(scenario.AgentAdapter):
    """Returns whatever it was built with (to exercise every return type)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    async def call(self, input: scenario.AgentInput) -> Any:
        return self.value


class RaisingAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> Any:
        raise RuntimeError("database unavailable")


EXECUTORS = {"run": scenario.run, "arun": scenario.arun}
