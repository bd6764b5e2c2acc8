"""What the user simulator and the judge share: model settings resolved at call time."""

from __future__ import annotations

from typing import Any

from scenario.settings import ModelConfig, resolve_model


class ModelBackedAgent:
    """Holds the model arguments given to the constructor; merges them over configure()'s
    default_model on each call, so configure() may come after the agent is built."""

    def __init__(
        self,
        *,
        model: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
        **litellm_params: Any,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.litellm_params = litellm_params
        if litellm_params.get("client") is not None:
            from scenario.llm.custom_client import check_client

            check_client(litellm_params["client"], type(self).__name__)

    def model_config(self) -> ModelConfig:
        return resolve_model(
            self.model,
            agent_name=type(self).__name__,
            api_base=self.api_base,
            api_key=self.api_key,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            **self.litellm_params,
        )
