"""What the user simulator and the judge share: model settings resolved at call time.

``model=`` is a litellm model name, or an in-process model (``scenario.testing.FunctionModel``,
any :class:`scenario.llm.call.InProcessModel`): that one is used as the agent's ``client=`` under
its own name, so the call goes through every layer of the model call except litellm.
"""

from __future__ import annotations

from typing import Any

from scenario.llm.call import InProcessModel
from scenario.llm.custom_client import check_client
from scenario.settings import ModelConfig, resolve_model


class ModelBackedAgent:
    """Holds the model arguments given to the constructor; merges them over configure()'s
    default_model on each call, so configure() may come after the agent is built."""

    def __init__(
        self,
        *,
        model: str | InProcessModel | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
        **litellm_params: Any,
    ) -> None:
        if isinstance(model, InProcessModel):
            litellm_params["client"] = model
            model = model.name
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.litellm_params = litellm_params
        if litellm_params.get("client") is not None:
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
