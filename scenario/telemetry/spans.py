"""Every span name the library emits, and the attribute keys more than one module uses.

Spelled once, here: the engine, the model-call path, the batch and the tree renderer all read
these, so a span cannot be renamed in one place and not another. The names and keys are a
public contract (docs/observability.md lists them, tests/telemetry/test_telemetry.py pins them): back-ends
build dashboards on them, so they change only on purpose.

Names are low-cardinality: agent spans are ``invoke_agent {adapter}`` and model-call spans
``chat {model}``, as the OpenTelemetry GenAI conventions name them.
"""

from __future__ import annotations

#: The instrumentation scope of every span the library starts.
TRACER_NAME = "scenario"

# -- span names ------------------------------------------------------------------------------
SPAN_RUN = "scenario.run"  # one scenario, the root of its tree
SPAN_TURN = "scenario.turn"
SPAN_BATCH = "scenario.batch"  # one run_batch call
SPAN_BATCH_RUN = "scenario.batch.run"  # one planned run of a batch (all its attempts)
AGENT_SPAN_PREFIX = "invoke_agent "
MODEL_SPAN_PREFIX = "chat "


def agent_span(adapter_name: str) -> str:
    """The span name of one call of an agent: ``invoke_agent {adapter}``."""
    return f"{AGENT_SPAN_PREFIX}{adapter_name}"


def model_span(model: str) -> str:
    """The span name of one model call: ``chat {model}``."""
    return f"{MODEL_SPAN_PREFIX}{model}"


# -- attribute keys used in more than one module -----------------------------------------------
ATTR_NAME = "scenario.name"
ATTR_THREAD_ID = "scenario.thread_id"
ATTR_ROLE = "scenario.role"
ATTR_VERDICT = "scenario.verdict"
ATTR_STATUS = "scenario.status"
ATTR_ATTEMPTS = "scenario.attempts"
ATTR_OPERATION = "gen_ai.operation.name"
ATTR_PROVIDER = "gen_ai.provider.name"
ATTR_REQUEST_MODEL = "gen_ai.request.model"
ATTR_RESPONSE_MODEL = "gen_ai.response.model"
ATTR_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"

# The money one model call cost, in US dollars: the one cost attribute of a model-call span. The
# GenAI conventions define no cost attribute yet; this one sits beside their gen_ai.usage.* token
# counts. Only model-call spans carry gen_ai.usage.*: rollups (a scenario's root span, a batch)
# carry theirs as scenario.usage.* (ATTR_ROLLUP_COST), so a back-end that sums gen_ai.usage.* over
# a trace counts every token and cent once.
ATTR_COST = "gen_ai.usage.cost_usd"
ATTR_ROLLUP_INPUT_TOKENS = "scenario.usage.input_tokens"
ATTR_ROLLUP_OUTPUT_TOKENS = "scenario.usage.output_tokens"
ATTR_ROLLUP_COST = "scenario.usage.cost_usd"
