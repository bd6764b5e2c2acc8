"""The user simulator: a model playing the user, driven by the scenario description."""

from __future__ import annotations

from typing import Any

from scenario.agents.model_backed import ModelBackedAgent
from scenario.compat.peer_keywords import warn_step_options
from scenario.engine.adapter import AgentAdapter
from scenario.engine.state import message_text
from scenario.errors import ScenarioConfigError
from scenario.llm import client as models
from scenario.messages import AgentInput, AgentRole

DEFAULT_SYSTEM_PROMPT = """You are a user simulator testing an AI agent. You play the user described below, talking to the agent.

<scenario>
{description}
</scenario>

Rules:
- Write only the user's next message: short, natural, the way a real person types in a chat.
- Stay in character and pursue the scenario's goal; never reveal you are a simulator or a test.
- Do not play the agent, do not explain yourself, do not add labels or quotes.
"""


class UserSimulatorAgent(AgentAdapter, ModelBackedAgent):
    """Generates user messages with a model (through litellm).

    Args:
        model: litellm model string, e.g. ``"openai/gpt-4o-mini"``; default from ``configure``.
        api_base, api_key, temperature, max_tokens: passed to the model call.
        system_prompt: replaces the default prompt; ``{description}`` is filled in if present.
        persona: who the simulated user is ("an impatient retiree who types in capitals"), added
            to the prompt in a ``<persona>`` block.
        voice, audio_effects, interrupt_probability, modality: langwatch-scenario's voice options;
            accepted, and without effect here (a warning says so once).
        **litellm_params: anything else ``litellm.acompletion`` accepts (``client=`` included).
    """

    role = AgentRole.USER
    # Library code that only awaits the model loop: `run` keeps it on the engine's loop.
    _library_call = True

    def __init__(
        self,
        *,
        model: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
        persona: str | None = None,
        voice: str | None = None,
        audio_effects: list[Any] | None = None,
        interrupt_probability: float = 0.0,
        modality: str | None = None,
        **litellm_params: Any,
    ) -> None:
        warn_step_options({
            "UserSimulatorAgent(voice=...)": voice, "UserSimulatorAgent(audio_effects=...)": audio_effects,
            "UserSimulatorAgent(interrupt_probability=...)": interrupt_probability or None,
            "UserSimulatorAgent(modality=...)": modality,
        })
        if persona is not None and (not isinstance(persona, str) or not persona.strip()):
            raise ScenarioConfigError(f"UserSimulatorAgent(persona={persona!r}): describe the user in words, or leave it out.")
        ModelBackedAgent.__init__(
            self, model=model, api_base=api_base, api_key=api_key, temperature=temperature,
            max_tokens=max_tokens, system_prompt=system_prompt, **litellm_params,
        )
        self.persona = persona

    async def call(self, input: AgentInput) -> dict[str, Any]:
        description = getattr(input.scenario_state, "description", "")
        prompt = (self.system_prompt or DEFAULT_SYSTEM_PROMPT).replace("{description}", description)
        if self.persona:
            prompt += f"\n<persona>\n{self.persona}\n</persona>\nStay in this persona throughout.\n"
        messages: list[dict[str, Any]] = [{"role": "system", "content": prompt}]
        messages.extend(reverse_roles(input.messages))
        if len(messages) == 1:
            # Some providers refuse a request with no user turn; this one asks for the opener.
            messages.append({"role": "user", "content": "Write your first message to the agent now."})
        response = await models.complete(role="user", config=self.model_config(), messages=messages)
        return {"role": "user", "content": (response.content or "").strip()}


# A user reads the gist of a reply, not 200 pages of it: longer agent messages reach the
# simulator cut to their start, so one huge reply cannot overflow the simulator's context window.
SIMULATOR_MESSAGE_CHARS = 4000


def reverse_roles(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation from the simulator's seat: its own lines become "assistant", the agent's
    "user" (cut to ``SIMULATOR_MESSAGE_CHARS``). Tool traffic is left out, since the simulator
    cannot see tools."""
    reversed_messages: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            reversed_messages.append({"role": "assistant", "content": message_text(message)})
        elif role == "assistant":
            text = message.get("content")
            if isinstance(text, str) and text.strip():
                if len(text) > SIMULATOR_MESSAGE_CHARS:
                    text = f"{text[:SIMULATOR_MESSAGE_CHARS]}\n[... {len(text) - SIMULATOR_MESSAGE_CHARS} more characters]"
                reversed_messages.append({"role": "user", "content": text})
        # system and tool messages are the agent's business, not the user's
    return reversed_messages
