"""Model calls through a client object the user built (``client=`` on the simulator and judge).

Why: behind a gateway (Azure API Management, an internal proxy) teams already have a configured
OpenAI SDK client, with custom headers, auth hooks or a custom ``http_client``. Handing that
object to ``UserSimulatorAgent(client=...)`` / ``JudgeAgent(client=...)`` must just work, sync
or async, as it does with langwatch-scenario.

Policy:

- Any object with ``client.chat.completions.create(**params)`` qualifies (``openai.OpenAI``,
  ``openai.AsyncOpenAI``, ``AzureOpenAI``, or a wrapper of your own). We call it ourselves rather
  than through litellm, which accepts only real OpenAI SDK clients and only async ones in
  ``acompletion``.
- An async ``create`` runs on the library's model loop like every other model call; a sync one
  runs on the shared worker pool, so it never blocks a loop.
- The model name sent is the litellm name without its provider prefix (``"azure/my-deploy"`` ->
  ``"my-deploy"``): the client already knows its provider.
- Only parameters the chat-completions API understands are forwarded; litellm-only ones
  (``api_base``, ``api_key``, ``max_retries``, ...) belong to the client and are left out. The
  response is whatever the client returns (an OpenAI ``ChatCompletion``), read by the same code
  that reads litellm's, under the litellm model name so usage, cost and spans group it with the
  configured model.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import Any

from scenario.errors import ScenarioConfigError
from scenario.llm.call import InProcessModel
from scenario.llm.model_loop import litellm_module
from scenario.runtime.worker_pool import get_pool

# Chat-completions request parameters a client's create() accepts.
FORWARDED = (
    "messages", "tools", "tool_choice", "temperature", "max_tokens", "max_completion_tokens", "top_p", "seed",
    "stop", "response_format", "reasoning_effort", "parallel_tool_calls", "frequency_penalty", "presence_penalty",
    "logit_bias", "user", "n", "extra_headers", "extra_query", "extra_body", "timeout",
)


def check_client(client: Any, where: str) -> None:
    """Raise ScenarioConfigError unless ``client`` looks like an OpenAI-compatible client (or is an
    in-process model, which the innermost call answers itself)."""
    if isinstance(client, InProcessModel):
        return
    create = getattr(getattr(getattr(client, "chat", None), "completions", None), "create", None)
    if not callable(create):
        raise ScenarioConfigError(
            f"{where}(client=...): {type(client).__name__} has no chat.completions.create(...). Pass an "
            "OpenAI-compatible client such as openai.AsyncOpenAI(base_url=..., default_headers=...), or, in a "
            "unit test, scenario.testing.FunctionModel(fn)."
        )


def request_model_name(model: str) -> str:
    """The model name for the client: litellm's name without a known provider prefix."""
    prefix, slash, rest = model.partition("/")
    if not slash:
        return model
    providers = {str(getattr(p, "value", p)) for p in getattr(litellm_module(), "provider_list", [])}
    return rest if prefix in providers else model


async def complete_with_client(client: Any, kwargs: dict[str, Any]) -> Any:
    """One chat-completions call through ``client`` (awaited on the current loop)."""
    params = {key: kwargs[key] for key in FORWARDED if kwargs.get(key) is not None}
    params["model"] = request_model_name(kwargs["model"])
    create = client.chat.completions.create
    if inspect.iscoroutinefunction(create):
        value = await create(**params)
    else:
        context = contextvars.copy_context()
        value = await asyncio.get_running_loop().run_in_executor(get_pool(), lambda: context.run(create, **params))
        if inspect.isawaitable(value):  # a sync-looking wrapper around an async client
            value = await value
    return ClientResponse(value, kwargs["model"])


class ClientResponse:
    """A client's response seen under the litellm model name (for pricing and usage keys);
    every other attribute is the client's own."""

    def __init__(self, raw: Any, model: str) -> None:
        self.raw = raw
        self.model = model
        self.choices = getattr(raw, "choices", None)
        self.usage = getattr(raw, "usage", None)
        self._hidden_params: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)
