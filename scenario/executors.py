"""The two doors into the engine; they differ only in where the run's user code executes.

``arun`` awaits the engine on the caller's loop, and the agent under test, script steps and
callbacks run there too: agents holding loop-bound state (async fixtures, gRPC channels, queues
made in the test) keep working; synchronous adapters go to the shared worker pool.

``run`` gives the run's user code a ``RunThread`` (:mod:`scenario.runtime.worker_loop`): a pool
thread with a fresh event loop of its own for the whole run, shut down completely before ``run`` returns, so
blocking, synchronous agents parallelise for free. The engine itself and the library's own
simulator and judge stay on the caller's loop, like ``arun``: their model calls then never wake
the run's thread. That matters because waking one of hundreds of threads for every model call
(and winning the GIL back) cost more CPU than the call's own bookkeeping (docs/performance.md).
A run with no library agent (a scripted run) sends the whole engine to the thread in one hop.

The caller's ``contextvars`` (and so its OpenTelemetry span) travel to the user code, so both
doors produce the same trace, result and usage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from scenario.compat.peer_keywords import warn_ignored
from scenario.engine.adapter import runs_on_any_loop
from scenario.engine.loop import ScenarioEngine
from scenario.result import ScenarioResult
from scenario.runtime.worker_loop import RunThread, run_on_worker_loop
from scenario.spec import ScenarioSpec, build_spec


async def arun(
    name: str,
    description: str,
    agents: list[Any] | None = None,
    max_turns: int | None = None,
    script: list[Any] | None = None,
    cache_key: str | None = None,
    set_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    verbose: bool | int | None = None,
    timeout: float | None = None,
    debug: bool | None = None,
    min_turns: int | None = None,
    fields: dict[str, Any] | None = None,
    fetch_remote_traces: bool | None = None,
    trace_wait_timeout: float | None = None,
    parameters: dict[str, Any] | None = None,
    evaluators: Sequence[Any] | None = None,
    on_audio_chunk: Callable[[Any], None] | None = None,
    on_voice_event: Callable[[Any], None] | None = None,
    audio_playback: bool = False,
) -> ScenarioResult:
    """Run a scenario on the caller's event loop and return its result.

    Same arguments and result as :func:`run`. Synchronous adapters are offloaded to the shared
    worker pool so they never block this loop.
    """
    spec = _spec_at_the_door(**locals())
    return await ScenarioEngine(spec, owns_loop=False).execute()


async def run(
    name: str,
    description: str,
    agents: list[Any] | None = None,
    max_turns: int | None = None,
    script: list[Any] | None = None,
    cache_key: str | None = None,
    set_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    verbose: bool | int | None = None,
    timeout: float | None = None,
    debug: bool | None = None,
    min_turns: int | None = None,
    fields: dict[str, Any] | None = None,
    fetch_remote_traces: bool | None = None,
    trace_wait_timeout: float | None = None,
    parameters: dict[str, Any] | None = None,
    evaluators: Sequence[Any] | None = None,
    on_audio_chunk: Callable[[Any], None] | None = None,
    on_voice_event: Callable[[Any], None] | None = None,
    audio_playback: bool = False,
) -> ScenarioResult:
    """Run a scenario on a worker thread with a fresh event loop and return its result.

    Args:
        name: short identifier shown in reports and spans.
        description: the situation, given to the user simulator and the judge.
        agents: adapters: the agent under test, usually a ``UserSimulatorAgent`` and a ``JudgeAgent``.
        max_turns: autopilot turn limit (default from ``configure``, 10).
        script: steps (``user``, ``agent``, ``judge``, ``proceed``, ...); default is autopilot.
        cache_key: replay model calls deterministically (see docs/caching.md).
        set_id, metadata: labels carried into reports and spans.
        verbose: print the conversation as it happens.
        timeout: seconds for the whole run; past it the run fails as timed out.
        debug: accepted for compatibility with langwatch-scenario; prints the conversation like
            ``verbose``.
        min_turns: turns that must complete before the judge may end the run on its own (0);
            explicit ``judge()`` steps and the last turn still get a verdict.
        fields: values the scenario carries beside its description (``state.fields``,
            ``state.field(name)``), e.g. a golden answer a script step compares against.
        fetch_remote_traces, trace_wait_timeout, parameters, evaluators, on_audio_chunk,
            on_voice_event, audio_playback: langwatch-scenario keywords for its hosted platform and
            voice support. Accepted so suites run unchanged; set, they warn once that they have
            no effect here (docs/migrating.md).

    Bad set-up raises :class:`scenario.ScenarioConfigError` here, before anything runs; errors
    during the run (an adapter raising, a model failing after retries) give a failed result whose
    ``reasoning`` and ``error`` say what and where.
    """
    spec = _spec_at_the_door(**locals())
    return await run_engine(spec)


def _spec_at_the_door(
    *,
    verbose: bool | int | None,
    debug: bool | None,
    fetch_remote_traces: bool | None,
    trace_wait_timeout: float | None,
    parameters: dict[str, Any] | None,
    evaluators: Sequence[Any] | None,
    on_audio_chunk: Callable[[Any], None] | None,
    on_voice_event: Callable[[Any], None] | None,
    audio_playback: bool,
    **described: Any,
) -> ScenarioSpec:
    """The one door of ``run`` and ``arun`` (called with their arguments): warn about
    langwatch-scenario's platform and voice keywords, then build the validated spec."""
    warn_ignored(
        {"fetch_remote_traces": fetch_remote_traces, "trace_wait_timeout": trace_wait_timeout, "parameters": parameters,
         "evaluators": evaluators, "on_audio_chunk": on_audio_chunk, "on_voice_event": on_voice_event,
         "audio_playback": audio_playback}
    )
    return build_spec(verbose=_verbose(verbose, debug), **described)


def _verbose(verbose: bool | int | None, debug: bool | None) -> bool | None:
    # langwatch-scenario also takes a verbosity level (0, 1, 2); any level above 0 prints.
    if verbose is None:
        return debug
    if isinstance(verbose, bool) or not isinstance(verbose, int):
        return bool(verbose)
    return verbose > 0


async def run_engine(spec: ScenarioSpec, *, reuse_loop: bool = False) -> ScenarioResult:
    """``run``'s door: the engine on this loop, the run's user code on a :class:`RunThread`.

    ``reuse_loop=True`` (batches) lets the thread start on the loop its previous run left
    pristine (see :mod:`scenario.runtime.worker_loop`) instead of making a new one. Cancelling the awaiting task
    cancels the user code in flight and waits (boundedly) for the run's loop to shut down, so a
    cancelled run leaves no loop behind.
    """
    label = f"scenario {spec.name!r}"
    if spec.timeout is None and not any(runs_on_any_loop(agent) for agent in spec.agents):
        # No library agent to keep on this loop (a scripted run): the whole engine goes to the
        # run's thread in one hop, which costs fewer thread wake-ups than one hop per user call.
        # Not with a timeout: a blocking agent would hold the very loop meant to enforce it.
        return await run_on_worker_loop(ScenarioEngine(spec, owns_loop=True).execute, reuse_loop=reuse_loop,
                                        label=label)
    thread = RunThread(reuse_loop=reuse_loop, label=label)
    try:
        return await ScenarioEngine(spec, user_thread=thread).execute()
    finally:
        await thread.close()
