"""The only place that calls litellm: the model call, assembled from its layers.

Every model call the library makes (user simulator, judge, red team) goes through :func:`complete`,
and an agent under test may use :func:`acompletion`. Both hand a :class:`ModelRequest` to a stack of
layers (:mod:`scenario.llm.layers`) around one narrow call, :func:`call_model`, which asks litellm on
the model loop (:mod:`scenario.llm.model_loop`), the user's own client
(:mod:`scenario.llm.custom_client`) or an in-process model (``scenario.testing.FunctionModel``)::

    complete():    ReplayCache -> ExplainErrors -> Accounting -> DebugLog -> Span -> Retry -> RateLimit -> call_model
    acompletion(): ExplainErrors -> Accounting -> DebugLog -> Span -> Retry -> RateLimit -> call_model

(``acompletion`` returns litellm's own response to the agent, so it is not replayed from the
library's cache; ``@scenario.cache`` on the agent's function does that.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from scenario.errors import ScenarioConfigError
from scenario.llm import model_loop as loop_owner
from scenario.llm.call import (
    Complete,
    InProcessModel,
    ModelRequest,
    ModelResponse,
    parse_response,
    request_kwargs,
)
from scenario.llm.custom_client import complete_with_client
from scenario.llm.layers import Accounting, DebugLog, ExplainErrors, RateLimit, ReplayCache, Retry, Span
from scenario.llm.model_loop import ModelLoop, litellm_module, model_loop, setup_may_run_inline
from scenario.settings import DEFAULT_MODEL_TIMEOUT, ModelConfig
from scenario.telemetry import tracer as telemetry

__all__ = [
    "TIMEOUT_BACKSTOP",
    "InProcessModel",
    "ModelLoop",
    "ModelRequest",
    "ModelResponse",
    "acompletion",
    "build_stack",
    "call_model",
    "complete",
    "litellm_module",
    "model_loop",
]

# Extra seconds past litellm's own timeout before we stop waiting ourselves: litellm enforces the
# timeout, this is the backstop that guarantees nothing hangs even if it does not.
TIMEOUT_BACKSTOP = 5.0


async def call_model(request: ModelRequest) -> ModelResponse:
    """One attempt, nothing around it: the answer of litellm, the user's client or an in-process model."""
    kwargs = request.kwargs
    client = kwargs.get("client")
    if isinstance(client, InProcessModel):
        return await client.respond(request)
    litellm = litellm_module()
    if client is not None:  # the user's own OpenAI-compatible client (scenario.llm.custom_client)
        call, inline = complete_with_client(client, kwargs), False
    else:
        inline = setup_may_run_inline(kwargs)
        call = litellm.acompletion(**kwargs)
    deadline = request.timeout + TIMEOUT_BACKSTOP
    try:
        raw = await loop_owner.model_loop.run(call, deadline, setup_inline=inline)
    except asyncio.TimeoutError:
        raise litellm.Timeout(
            message=f"no answer within {deadline:.0f}s (backstop)",
            model=kwargs["model"],
            llm_provider=telemetry.provider_name(kwargs["model"]),
        ) from None
    return parse_response(raw, kwargs["model"])


async def _call_model_late(request: ModelRequest) -> ModelResponse:
    # Looked up at call time, so a benchmark or test may wrap `client.call_model`.
    return await call_model(request)


def build_stack(call: Complete = _call_model_late, *, replay: bool = True) -> Complete:
    """The layers around ``call`` (outermost first), as :mod:`scenario.llm.layers` explains."""
    stack: Complete = Span(Retry(RateLimit(call)))
    stack = ExplainErrors(Accounting(DebugLog(stack)))
    return ReplayCache(stack) if replay else stack


_library_stack = build_stack()
_agent_stack = build_stack(replay=False)


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` for your agent under test, made safe for both executors.

    Takes litellm's arguments and returns litellm's response. The call runs on the library's
    model loop (litellm misbehaves when driven from a fresh loop per scenario, which is what
    ``scenario.run`` gives each scenario), gets a timeout, the retry policy and a GenAI span, and
    its tokens and cost count in ``result.usage`` under the "agent" role. Streaming is not
    supported here: call litellm directly for that.
    """
    if "model" not in kwargs or "messages" not in kwargs:
        raise TypeError("scenario.acompletion(...) needs model= and messages=, as litellm.acompletion does.")
    if kwargs.get("stream"):
        raise ValueError(
            "scenario.acompletion(stream=True) is not supported: a stream is bound to the loop that reads it. "
            "Call litellm.acompletion directly for streaming, or drop stream=True."
        )
    if isinstance(kwargs.get("client"), InProcessModel):
        raise ScenarioConfigError(
            f"scenario.acompletion(client={kwargs['client']!r}): an in-process model stands in for the library's "
            "own agents (JudgeAgent/UserSimulatorAgent(model=...)); acompletion returns litellm's response, "
            "which it cannot give. In a test of your agent, call your function directly."
        )
    kwargs.setdefault("timeout", DEFAULT_MODEL_TIMEOUT)
    kwargs.setdefault("max_retries", 0)
    if kwargs.get("tools"):
        kwargs.setdefault("_skip_mcp_handler", True)
    response = await _agent_stack(ModelRequest("agent", kwargs, float(kwargs["timeout"])))
    return response.raw


async def complete(
    *,
    role: str,
    config: ModelConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
) -> ModelResponse:
    """Call the model once (with retries) on behalf of ``role`` ("user" or "judge")."""
    request = ModelRequest(role, request_kwargs(config, messages, tools, tool_choice), config.timeout)
    return await _library_stack(request)
