"""The turn engine: plain async code that steps one conversation to a verdict.

It asks the user role for a message, the agent under test for a reply, the judge for a verdict,
and runs script steps in between. It knows nothing about threads or which loop it is on: ``arun``
awaits it on the caller's loop, ``run`` on a worker thread's fresh loop. Everything observable —
result, spans, usage — comes from here, so the two executors cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from scenario import live
from scenario.engine.adapter import adapter_name, invoke, normalize_return, runs_on_any_loop
from scenario.engine.state import ScenarioState, message_text
from scenario.errors import ScenarioConfigError
from scenario.events import report_result
from scenario.messages import AgentInput, AgentRole, JudgmentRequest, Message
from scenario.result import CriterionResult, ErrorInfo, ScenarioResult
from scenario.run_context import RunContext, current_run
from scenario.script import (
    AgentStep,
    JudgeStep,
    MessageStep,
    ProceedStep,
    ScriptStep,
    UserStep,
    VerdictStep,
)
from scenario.spec import ScenarioSpec, without_criteria
from scenario.telemetry import tracer as telemetry
from scenario.tracebacks import format_exception, user_location

_ROLE_ORDER = {AgentRole.USER: 0, AgentRole.AGENT: 1, AgentRole.JUDGE: 2}
_MESSAGE_ROLE = {"user": AgentRole.USER, "assistant": AgentRole.AGENT, "tool": AgentRole.AGENT}


class UserCodeRunner(Protocol):
    """Where a run's user code executes when it is not this loop (``run``'s RunThread): the
    engine hands each piece of user code over and awaits its outcome here. Passed in by the door,
    so the engine needs no knowledge of threads."""

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...


class _StepFailed(Exception):
    """An exception raised inside a step, with where it happened."""

    def __init__(self, where: str, original: BaseException):
        super().__init__(where)
        self.where = where
        self.original = original


class ScenarioEngine:
    """Runs one :class:`ScenarioSpec` to a :class:`ScenarioResult`. One engine per run."""

    def __init__(self, spec: ScenarioSpec, *, owns_loop: bool = False, user_thread: UserCodeRunner | None = None):
        self.spec = spec
        # Where user code (the agent under test, script steps, callbacks) runs. With a
        # user_thread (`run`), all of it goes to the run's own thread and loop, where a sync
        # adapter may simply block; the library's own agents stay here. Without one (`arun`),
        # it runs on this loop and sync adapters go to the worker pool, unless the engine owns
        # its loop (owns_loop), where a sync adapter may block it.
        self.owns_loop = owns_loop
        self.user_thread = user_thread
        self.state = ScenarioState(
            name=spec.name, description=spec.description, thread_id=str(uuid.uuid4()), fields=spec.fields, spec=spec,
            on_append=self._message_added, on_rollback=self._messages_cut,
        )
        self._agents: dict[AgentRole, list[Any]] = {role: [] for role in AgentRole}
        for agent in spec.agents:
            self._agents[agent.role].append(agent)
        self._seen: dict[int, int] = {}
        self._turn_roles: set = set()
        self._turn_started = False
        self._agent_time = 0.0
        self._checkpoints: list[CriterionResult] = []
        self._step_label = "start"
        self._tracer: Any = None
        self._root_span: Any = None
        self._turn_span: Any = None

    # -- the run ------------------------------------------------------------------------------
    async def execute(self) -> ScenarioResult:
        spec = self.spec
        run = RunContext(name=spec.name, thread_id=self.state.thread_id, cache_key=spec.cache_key)
        token = current_run.set(run)
        self._tracer = telemetry.get_tracer()
        self._root_span = telemetry.start_span(
            self._tracer,
            telemetry.SPAN_RUN,
            {
                "scenario.name": spec.name,
                "scenario.description": spec.description,
                "scenario.thread_id": self.state.thread_id,
                "scenario.set_id": spec.set_id,
                "scenario.max_turns": spec.max_turns,
            },
        )
        started = time.perf_counter()
        exception: BaseException | None = None
        try:
            with telemetry.use_span(self._root_span):
                if spec.timeout is not None:
                    result = await asyncio.wait_for(self._run_script(), spec.timeout)
                else:
                    result = await self._run_script()
        except asyncio.TimeoutError as exc:
            exception = exc
            result = self._error_result(
                exc, f"step {self._step_label}",
                f"Timed out after {spec.timeout}s during step {self._step_label}; raise timeout= or check the agent.",
            )
        except _StepFailed as failure:
            exception = failure.original
            result = self._error_result(failure.original, failure.where, None)
        except BaseException as exc:  # cancellation, KeyboardInterrupt: close spans, then propagate
            self._end_turn()
            telemetry.end_span(self._root_span, exc)
            current_run.reset(token)
            raise
        self._end_turn()
        result.messages = list(self.state.messages)
        result.total_time = time.perf_counter() - started
        result.agent_time = self._agent_time
        result.usage = run.usage
        result.model_calls = list(run.model_calls)
        result.thread_id = self.state.thread_id
        if self._checkpoints:
            self._merge_checkpoints(result)
        if exception is not None:
            result._exception = exception
        self._finish_root_span(result, exception)
        current_run.reset(token)
        report_result(result)  # attribution to the current pytest test, if any (scenario.events)
        return result

    async def _run_script(self) -> ScenarioResult:
        for index, step in enumerate(self.spec.steps):
            label = f"{index + 1} ({_describe(step)})" if self.spec.script is not None else "autopilot"
            self._step_label = label
            result = await self._run_step(step, label)
            if result is not None:
                return result
        if self._checkpoints:
            return self._checkpoints_passed_result("The script ended after its judge() checkpoints passed")
        return ScenarioResult(
            success=False,
            reasoning=(
                "The script ended without a verdict. End it with scenario.judge(), scenario.succeed() or "
                "scenario.fail(), or add scenario.proceed() to let the judge decide."
            ),
        )

    def _checkpoints_passed_result(self, lead: str) -> ScenarioResult:
        # The criteria themselves are merged in by execute() (_merge_checkpoints).
        count = len(self._checkpoints)
        return ScenarioResult(
            success=True,
            reasoning=f"{lead} ({count} criteri{'on' if count == 1 else 'a'} met); no final verdict was asked for.",
        )

    async def _run_step(self, step: Any, label: str) -> ScenarioResult | None:
        if isinstance(step, UserStep):
            return await self._scripted_or_generated(AgentRole.USER, step.content, "user")
        if isinstance(step, AgentStep):
            return await self._scripted_or_generated(AgentRole.AGENT, step.content, "assistant")
        if isinstance(step, JudgeStep):
            return await self._judge(step.criteria, step.additional_context)
        if isinstance(step, ProceedStep):
            return await self._proceed(step)
        if isinstance(step, VerdictStep):
            default = "succeed() step reached" if step.success else "fail() step reached"
            return ScenarioResult(success=step.success, reasoning=step.reasoning or default)
        if isinstance(step, MessageStep):
            role = _MESSAGE_ROLE.get(step.message.get("role", ""))
            if role is not None:
                self._enter_role(role)
            self.state.add_message(dict(step.message))
            return None
        if callable(step):
            return await self._custom_step(step, label)
        raise ScenarioConfigError(f"scenario {self.spec.name!r}: step {label} is not a known step type.")

    async def _custom_step(self, step: Any, label: str) -> ScenarioResult | None:
        try:
            value = await self._user_code(step, self.state)
        except Exception as exc:
            raise _StepFailed(f"step {label}", exc) from exc
        if isinstance(value, ScriptStep):
            # A step function may hand back a built-in step to run now, e.g. judge() to end early.
            return await self._run_step(value, f"{label} -> {value.describe()}")
        return value if isinstance(value, ScenarioResult) else None

    async def _scripted_or_generated(self, role: AgentRole, content: Any, message_role: str) -> ScenarioResult | None:
        if content is None:
            return await self._call_role(role)
        self._enter_role(role)
        message = {"role": message_role, "content": content} if isinstance(content, str) else dict(content)
        self.state.add_message(message)
        return None

    async def _judge(self, criteria: list[str] | None, additional_context: str | None = None) -> ScenarioResult | None:
        if not criteria and self._judges_lack_criteria():
            if self._checkpoints:
                return self._checkpoints_passed_result("All judge() checkpoints so far passed")
            return ScenarioResult(
                success=False,
                reasoning=(
                    f"Step {self._step_label} asked the judge for a verdict, but no criteria were given yet: "
                    "put scenario.judge(criteria=[...]) checkpoints before it, or give JudgeAgent(criteria=[...])."
                ),
            )
        result = await self._call_role(
            AgentRole.JUDGE, JudgmentRequest(criteria=criteria, additional_context=additional_context)
        )
        if result is None:
            return ScenarioResult(
                success=False,
                reasoning=f"The judge gave no verdict when asked at step {self._step_label}.",
            )
        if criteria and result.success:
            # A met checkpoint lets the script go on; its findings are kept for the final result.
            self._checkpoints.extend(result.criteria)
            return None
        return result

    async def _proceed(self, step: ProceedStep) -> ScenarioResult | None:
        start_turn = self.state.current_turn
        max_turns = self.spec.max_turns
        while True:
            role = self._next_autopilot_role()
            if role is None:
                if step.on_turn is not None:
                    await self._callback(step.on_turn, "on_turn")
                self._new_turn()
                if step.turns is not None and self.state.current_turn - start_turn >= step.turns:
                    return None
                continue
            if self.state.current_turn >= max_turns:
                return self._turn_limit_result()
            if role is AgentRole.JUDGE and self._judge_waits():
                self._turn_roles.add(role)  # the judge sits this turn out; no model call
                continue
            # On the last allowed turn the judge must rule: that is what max_turns promises.
            forced = role is AgentRole.JUDGE and self.state.current_turn >= max_turns - 1
            result = await self._call_role(role, JudgmentRequest() if forced else None)
            if step.on_step is not None:
                await self._callback(step.on_step, "on_step")
            if result is not None:
                return result

    def _judges_lack_criteria(self) -> bool:
        return all(without_criteria(j) for j in self._agents[AgentRole.JUDGE])

    def _judge_waits(self) -> bool:
        """In autopilot the judge is not asked before min_turns turns are complete, nor at all
        when it has no criteria of its own (its criteria come from judge() checkpoints)."""
        last_turn = self.state.current_turn >= self.spec.max_turns - 1
        if self._judges_lack_criteria():
            return True
        return not last_turn and self.state.current_turn + 1 < self.spec.min_turns

    def _next_autopilot_role(self) -> AgentRole | None:
        reached = max((_ROLE_ORDER[r] for r in self._turn_roles), default=-1)
        for role in (AgentRole.USER, AgentRole.AGENT, AgentRole.JUDGE):
            if _ROLE_ORDER[role] > reached and self._agents[role]:
                return role
        return None

    def _turn_limit_result(self) -> ScenarioResult:
        if self._checkpoints and self._agents[AgentRole.JUDGE] and self._judges_lack_criteria():
            # The judge only rules on inline checkpoints, so running out of turns after they all
            # passed is the script's natural end, not a missing verdict.
            return self._checkpoints_passed_result(
                f"Reached the turn limit (max_turns={self.spec.max_turns}) after the judge() checkpoints passed"
            )
        judge_note = "" if self._agents[AgentRole.JUDGE] else " (agents has no judge, so nothing could end it earlier)"
        return ScenarioResult(
            success=False,
            reasoning=(
                f"Reached the turn limit (max_turns={self.spec.max_turns}) without a verdict{judge_note}. "
                "Raise max_turns, or check why the judge did not decide."
            ),
        )

    async def _callback(self, callback: Any, what: str) -> None:
        try:
            await self._user_code(callback, self.state)
        except Exception as exc:
            raise _StepFailed(f"step {self._step_label} ({what} callback)", exc) from exc

    async def _user_code(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, awaited if it returns an awaitable, where this run's user code runs."""
        if self.user_thread is not None:
            return await self.user_thread.call(fn, *args)
        value = fn(*args)
        if inspect.isawaitable(value):
            value = await value
        return value

    # -- calling agents -----------------------------------------------------------------------
    async def _call_role(self, role: AgentRole, judgment: JudgmentRequest | None = None) -> ScenarioResult | None:
        for agent in self._agents[role]:
            result = await self._call_agent(agent, role, judgment)
            if result is not None:
                return result
        return None

    async def _call_agent(self, agent: Any, role: AgentRole, judgment: JudgmentRequest | None) -> ScenarioResult | None:
        self._enter_role(role)
        name = adapter_name(agent)
        seen = self._seen.get(id(agent), 0)
        agent_input = AgentInput(
            thread_id=self.state.thread_id,
            messages=self.state.messages,
            new_messages=self.state.messages[seen:],
            judgment_request=judgment,
            scenario_state=self.state,
        )
        span = telemetry.start_span(
            self._tracer,
            telemetry.agent_span(name),
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": name,
                "scenario.role": role.key,
                "scenario.turn": self.state.current_turn,
                "scenario.step": self._step_label,
            },
            parent=self._turn_span,
        )
        agent_input.propagation_headers = telemetry.propagation_headers(span)
        started = time.perf_counter()
        where = f"step {self._step_label}, {role.key} adapter {name}"
        try:
            with telemetry.use_span(span):
                if self.user_thread is None or runs_on_any_loop(agent):
                    value = await invoke(agent, agent_input, offload_sync=not self.owns_loop)
                else:
                    value = await self.user_thread.call(_invoke_here, agent, agent_input)
            outcome = normalize_return(value, role=role, adapter=name, step=self._step_label)
        except Exception as exc:
            telemetry.end_span(span, exc)
            raise _StepFailed(where, exc) from exc
        except BaseException as exc:  # cancelled (run timeout, caller gave up): still close the span
            telemetry.end_span(span, exc)
            raise
        finally:
            if role is AgentRole.AGENT:
                self._agent_time += time.perf_counter() - started
        if isinstance(outcome, ScenarioResult):
            telemetry.end_span(span, None, {"scenario.verdict": "success" if outcome.success else "failure"})
            self._seen[id(agent)] = len(self.state.messages)
            return outcome
        for message in outcome:
            self.state.add_message(message)
        self._seen[id(agent)] = len(self.state.messages)
        telemetry.end_span(span, None, {"scenario.messages_returned": len(outcome)})
        return None

    # -- bookkeeping --------------------------------------------------------------------------
    def _message_added(self, message: Message) -> None:
        """The state's append callback: every message, whoever added it, is broadcast and printed."""
        live.message_added(self.state.messages, self.state.current_turn)
        if self.spec.verbose:
            role = message.get("role", "?")
            print(f"[{self.spec.name}] {role}: {message_text(message)}", flush=True)

    def _enter_role(self, role: AgentRole) -> None:
        """Track the turn: a role at or before one already seen this turn starts a new turn."""
        if self._turn_roles and _ROLE_ORDER[role] <= max(_ROLE_ORDER[r] for r in self._turn_roles):
            self._new_turn()
        if not self._turn_started:
            self._turn_started = True
            self._turn_span = telemetry.start_span(
                self._tracer, telemetry.SPAN_TURN, {"scenario.turn": self.state.current_turn}, parent=self._root_span
            )
        self._turn_roles.add(role)

    def _new_turn(self) -> None:
        self._end_turn()
        self._turn_roles = set()
        self.state.current_turn += 1

    def _end_turn(self) -> None:
        if self._turn_started:
            telemetry.end_span(self._turn_span)
            self._turn_span = None
            self._turn_started = False

    def _merge_checkpoints(self, result: ScenarioResult) -> None:
        known = {c.requirement for c in result.criteria}
        extra = [c for c in self._checkpoints if c.requirement not in known]
        result.criteria = extra + result.criteria
        result.passed_criteria = [c.requirement for c in extra if c.status == "passed"] + result.passed_criteria

    def _messages_cut(self, index: int) -> None:
        """The state's rollback callback: no adapter's "already seen" mark may point past the cut."""
        for key, seen in self._seen.items():
            self._seen[key] = min(seen, index)

    def _error_result(self, exc: BaseException, where: str, reasoning: str | None) -> ScenarioResult:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        location = user_location(exc)
        if location and reasoning is None:
            text += f" ({location})"
        return ScenarioResult(
            success=False,
            reasoning=reasoning or f"Error at {where}: {text}",
            error=ErrorInfo(type=type(exc).__name__, message=str(exc), where=where, traceback=format_exception(exc)),
        )

    def _finish_root_span(self, result: ScenarioResult, exception: BaseException | None) -> None:
        span = self._root_span
        if span is None:
            return
        attributes: dict[str, Any] = {
            "scenario.success": result.success,
            "scenario.verdict": "success" if result.success else "failure",
            "scenario.reasoning": result.reasoning if telemetry.trace_content() else None,
            "scenario.turns": self.state.current_turn + (1 if self.state.messages else 0),
            "scenario.passed_criteria": result.passed_criteria,
            "scenario.failed_criteria": result.failed_criteria,
            "scenario.inconclusive_criteria": result.inconclusive_criteria,
            "scenario.total_time": result.total_time,
            "scenario.agent_time": result.agent_time,
        }
        attributes.update(telemetry.usage_attributes(result.usage))
        telemetry.end_span(span, exception, attributes)


async def _invoke_here(agent: Any, agent_input: AgentInput) -> Any:
    # On the run's own thread and loop: a sync adapter may block it, nothing else waits there.
    return await invoke(agent, agent_input, offload_sync=False)


def _describe(step: Any) -> str:
    if isinstance(step, ScriptStep):
        return step.describe()
    return getattr(step, "__name__", None) or type(step).__name__
