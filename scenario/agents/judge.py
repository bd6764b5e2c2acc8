"""The judge: a model that reads the conversation and rules on the criteria.

It answers through tools: ``continue_test`` (no verdict yet) or ``finish_test`` with a status and
reasoning per criterion.

Policy (langwatch-scenario's rule, and what a testing tool owes its user): a run passes only on
evidence. Any failed criterion fails the run; otherwise any inconclusive criterion (or no criteria
at all) means the run did not pass either, because "could not tell" is not "met". A verdict the
judge gives of its own accord that leaves a criterion inconclusive is not final: the conversation
goes on so the evidence can appear, and only a verdict it was made to give (the last turn, a
``scenario.judge()`` step) ends the run that way. An inconclusive criterion is listed in both
``inconclusive_criteria`` and ``failed_criteria`` (as with langwatch-scenario: ``success`` is
"nothing in failed_criteria"), and ``criteria`` keeps each one's own status.
"""

from __future__ import annotations

import json
import re
from typing import Any

from scenario.agents.judge_transcript import (
    CONDENSED_NOTE,
    DEFAULT_MAX_DISCOVERY_STEPS,
    DEFAULT_TOKEN_THRESHOLD,
    LOOKUP_NAMES,
    LOOKUP_TOOLS,
    answer_lookup,
    condensed_transcript,
    estimate_tokens,
)
from scenario.agents.model_backed import ModelBackedAgent
from scenario.compat.peer_keywords import warn_step_options
from scenario.engine.adapter import AgentAdapter
from scenario.engine.state import render_transcript
from scenario.errors import ScenarioConfigError
from scenario.llm import client as models
from scenario.messages import AgentInput, AgentRole
from scenario.result import CriterionResult, ScenarioResult

DEFAULT_SYSTEM_PROMPT = """You are an impartial judge evaluating a conversation between a user and an AI agent under test.

<scenario>
{description}
</scenario>

<criteria>
{criteria}
</criteria>

Read the transcript the user gives you and decide, for each criterion, whether the agent's behaviour satisfies it.
- "passed": clearly satisfied. "failed": clearly violated. "inconclusive": the conversation does not show it yet.
- Judge only what the transcript shows; do not assume what happened outside it.
- If the conversation should go on before you can decide, call continue_test (when offered).
- Otherwise call finish_test with every criterion's status and a one-sentence reasoning, plus overall reasoning.
"""


class JudgeAgent(AgentAdapter, ModelBackedAgent):
    """Decides whether the conversation met its criteria.

    Args:
        criteria: what must be true, one plain sentence each (at least one).
        criteria: may be left out when the script gives criteria inline
            (``scenario.judge(criteria=[...])`` checkpoints).
        model, api_base, api_key, temperature, max_tokens, system_prompt, **litellm_params: as for
            :class:`UserSimulatorAgent` (``client=`` included). A custom ``system_prompt`` may use
            ``{description}`` and ``{criteria}``.
        token_threshold: estimated tokens (characters / 4) above which the judge reads a condensed
            transcript and looks messages up with tools (default 8192; see
            ``scenario.agents.judge_transcript``).
        max_discovery_steps: lookup rounds allowed before the judge must rule (default 10).
        span_collector, remote_trace_fetcher, include_audio, include_timeline, include_traces,
            modality: langwatch-scenario's trace and voice options; accepted, without effect here
            (a warning says so once).
    """

    role = AgentRole.JUDGE
    # Library code that only awaits the model loop: `run` keeps it on the engine's loop.
    _library_call = True

    def __init__(
        self,
        *,
        criteria: list[str] | None = None,
        model: str | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system_prompt: str | None = None,
        token_threshold: int = DEFAULT_TOKEN_THRESHOLD,
        max_discovery_steps: int = DEFAULT_MAX_DISCOVERY_STEPS,
        span_collector: Any = None,
        remote_trace_fetcher: Any = None,
        include_audio: bool | None = None,
        include_timeline: bool | None = None,
        include_traces: bool | None = None,
        modality: str | None = None,
        **litellm_params: Any,
    ) -> None:
        warn_step_options({
            f"JudgeAgent({name}=...)": value
            for name, value in (("span_collector", span_collector), ("remote_trace_fetcher", remote_trace_fetcher),
                                ("include_audio", include_audio), ("include_timeline", include_timeline),
                                ("include_traces", include_traces), ("modality", modality))
        }, reason="it serves langwatch-scenario's voice and LangWatch trace features")
        for name, value, minimum in (("token_threshold", token_threshold, 256), ("max_discovery_steps", max_discovery_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ScenarioConfigError(f"JudgeAgent({name}={value!r}): expected an integer >= {minimum}.")
        if criteria is None:
            criteria = []
        if isinstance(criteria, str) or not isinstance(criteria, (list, tuple)) or not all(
            isinstance(c, str) and c.strip() for c in criteria
        ):
            raise ScenarioConfigError(
                f"JudgeAgent(criteria={criteria!r}): give a list of non-empty criteria, e.g. "
                "JudgeAgent(criteria=['The agent asks for the order number']), or leave it out and put "
                "the criteria in the script's scenario.judge(criteria=[...]) steps."
            )
        ModelBackedAgent.__init__(
            self, model=model, api_base=api_base, api_key=api_key, temperature=temperature,
            max_tokens=max_tokens, system_prompt=system_prompt, **litellm_params,
        )
        self.criteria = list(criteria)
        self.token_threshold = token_threshold
        self.max_discovery_steps = max_discovery_steps

    async def call(self, input: AgentInput) -> ScenarioResult | None:
        request = input.judgment_request
        criteria = list(request.criteria) if request is not None and request.criteria else self.criteria
        if not criteria:
            # Nothing to rule on: no model call. Asked for a verdict, say so (it cannot pass).
            if request is None:
                return None
            return ScenarioResult(
                success=False,
                messages=list(input.messages),
                reasoning=(
                    "The judge was asked for a verdict but has no criteria to rule on: give "
                    "JudgeAgent(criteria=[...]) or scenario.judge(criteria=[...])."
                ),
            )
        keys = criterion_keys(criteria)
        description = getattr(input.scenario_state, "description", "")
        numbered = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(criteria))
        prompt = (self.system_prompt or DEFAULT_SYSTEM_PROMPT).replace("{description}", description).replace("{criteria}", numbered)
        transcript = render_transcript(input.messages)
        condensed = estimate_tokens(transcript) > self.token_threshold
        if condensed:
            transcript = condensed_transcript(input.messages, self.token_threshold)
        content = f"<transcript>\n{transcript}\n</transcript>"
        if condensed:
            content += f"\n\n{CONDENSED_NOTE}"
        if request is not None and request.additional_context:
            content += f"\n\n<additional_context>\n{request.additional_context}\n</additional_context>"
        messages: list[dict[str, Any]] = [{"role": "system", "content": prompt}, {"role": "user", "content": content}]
        forced = request is not None
        lookups_left = self.max_discovery_steps if condensed else 0
        while True:
            tools = [finish_test_tool(keys, criteria)]
            if not forced:
                tools.insert(0, CONTINUE_TOOL)
            if lookups_left > 0:
                tools = [*LOOKUP_TOOLS, *tools]
            tool_choice: Any = (
                {"type": "function", "function": {"name": "finish_test"}} if forced and lookups_left == 0 else "required"
            )
            response = await models.complete(
                role="judge", config=self.model_config(), messages=messages, tools=tools, tool_choice=tool_choice
            )
            names = {c["function"]["name"] for c in response.tool_calls}
            lookups = [c for c in response.tool_calls if c["function"]["name"] in LOOKUP_NAMES]
            if not lookups or lookups_left == 0 or names & {"finish_test", "continue_test"}:
                break
            # A lookup round: answer every lookup call, then ask again.
            lookups_left -= 1
            messages.append(response.message())
            for call in lookups:
                answer = answer_lookup(call, input.messages, self.token_threshold)
                messages.append({"role": "tool", "tool_call_id": call.get("id"), "content": answer})
        return parse_verdict(response, keys, criteria, forced=forced, messages=input.messages)


CONTINUE_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "continue_test",
        "description": "The conversation should continue before a verdict can be given.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}


def criterion_keys(criteria: list[str]) -> list[str]:
    """Readable, unique, schema-safe property names: ``1_agent_asks_for_order_number``."""
    keys = []
    for index, criterion in enumerate(criteria, start=1):
        slug = re.sub(r"[^a-z0-9]+", "_", criterion.lower()).strip("_")[:48] or "criterion"
        keys.append(f"{index}_{slug}")
    return keys


def finish_test_tool(keys: list[str], criteria: list[str]) -> dict[str, Any]:
    properties = {
        key: {
            "type": "object",
            "description": criterion,
            "properties": {
                "status": {"type": "string", "enum": ["passed", "failed", "inconclusive"]},
                "reasoning": {"type": "string", "description": "Why, in one sentence, citing the transcript."},
            },
            "required": ["status", "reasoning"],
        }
        for key, criterion in zip(keys, criteria)
    }
    return {
        "type": "function",
        "function": {
            "name": "finish_test",
            "description": "Give the final verdict on every criterion.",
            "parameters": {
                "type": "object",
                "properties": {
                    "criteria": {"type": "object", "properties": properties, "required": list(keys)},
                    "reasoning": {"type": "string", "description": "Overall reasoning for the verdict."},
                },
                "required": ["criteria", "reasoning"],
            },
        },
    }


class JudgeVerdictError(ValueError):
    """The judge model answered, but not with a usable verdict."""


def parse_verdict(
    response: models.ModelResponse, keys: list[str], criteria: list[str], *, forced: bool, messages: list[dict[str, Any]]
) -> ScenarioResult | None:
    """A ScenarioResult from ``finish_test``, None for ``continue_test`` (or plain text when not forced)."""
    finish = next((c for c in response.tool_calls if c["function"]["name"] == "finish_test"), None)
    if finish is None:
        if forced:
            raise JudgeVerdictError(
                f"the judge model {response.model!r} was asked for a verdict but did not call finish_test "
                f"(it answered {response.content!r:.200} / tools {[c['function']['name'] for c in response.tool_calls]}). "
                "Use a model that supports tool calling."
            )
        return None
    try:
        arguments = json.loads(finish["function"]["arguments"] or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("arguments are not a JSON object")
    except ValueError as exc:
        raise JudgeVerdictError(
            f"the judge model {response.model!r} called finish_test with malformed arguments "
            f"({exc}): {finish['function']['arguments']!r:.300}"
        ) from exc
    given = arguments.get("criteria") or {}
    results: list[CriterionResult] = []
    for key, criterion in zip(keys, criteria):
        entry = given.get(key) if isinstance(given, dict) else None
        if isinstance(entry, str):  # some models flatten to {"key": "passed"}
            entry = {"status": entry}
        status = (entry or {}).get("status")
        if status not in ("passed", "failed", "inconclusive"):
            # Fail closed: a criterion the judge did not rule on was not shown to be met.
            results.append(CriterionResult(requirement=criterion, status="failed",
                                           reasoning=f"the judge gave no valid status for this criterion (got {status!r})"))
        else:
            results.append(CriterionResult(requirement=criterion, status=status, reasoning=(entry or {}).get("reasoning")))
    failed = [r.requirement for r in results if r.status == "failed"]
    inconclusive = [r.requirement for r in results if r.status == "inconclusive"]
    if not failed and (inconclusive or not results) and not forced:
        # A voluntary verdict that cannot decide everything yet: let the conversation go on.
        return None
    judge_reasoning = arguments.get("reasoning") or None
    return ScenarioResult(
        success=not failed and not inconclusive and bool(results),
        messages=list(messages),
        reasoning=_verdict_reasoning(judge_reasoning, failed, inconclusive, bool(results)),
        passed_criteria=[r.requirement for r in results if r.status == "passed"],
        failed_criteria=[r.requirement for r in results if r.status != "passed"],
        inconclusive_criteria=inconclusive,
        criteria=results,
    )


def _verdict_reasoning(judge: str | None, failed: list[str], inconclusive: list[str], any_criteria: bool) -> str | None:
    """The judge's own reasoning, led by why the run did not pass when that is not a failed criterion."""
    if not any_criteria:
        lead = "Not passed: the judge ruled on no criteria, so nothing was shown to be met."
        return f"{lead} {judge}" if judge else lead
    if failed or not inconclusive:
        return judge
    count = len(inconclusive)
    names = "; ".join(repr(c) for c in inconclusive)
    lead = (
        f"Not passed: the judge could not decide {count} criteri{'on' if count == 1 else 'a'} from the "
        f"conversation (inconclusive: {names}), and a criterion passes only on evidence. Make the "
        "conversation show it (more turns, a scripted question) or rephrase the criterion."
    )
    return f"{lead} Judge: {judge}" if judge else lead
