"""``scenario run``: suite file -> batch -> store -> verdict table and reports.

Policy: the suite file is checked whole before anything runs (every problem at once, exit 2);
every run is written to the store as it finishes, so an interrupted batch (Ctrl-C, SIGTERM, a
failed write) loses nothing and the message prints the exact command that resumes it. The verdict
table and the exit code read the stored runs through the one rollup, so ``scenario report`` and
``scenario view`` show the same verdicts later. Exit codes are in :mod:`scenario.cli.args`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import scenario
from scenario.agents import JudgeAgent, UserSimulatorAgent
from scenario.batch import DEFAULT_MAX_CONCURRENCY, Scenario
from scenario.batch.progress import BatchProgress
from scenario.batch.runner import prepare_batch
from scenario.batch.stored import StoredBatch
from scenario.cli.args import (
    DEFAULT_STORE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    REPORT_SUFFIXES,
    UsageError,
    open_store,
)
from scenario.concurrency.strategies import Adaptive, SlidingWindow
from scenario.distributed import Ray
from scenario.errors import ScenarioConfigError
from scenario.llm.client import litellm_module
from scenario.reports import report_from_records, summarize, write_report
from scenario.reports.failure_text import explain_record
from scenario.rollup import tally
from scenario.store import StoreError
from scenario.suite import Overrides, ResolvedModel, SuiteError, check_agent, load_suite
from scenario.testing.mock_llm import MockLLMServer
from scenario.text import verdict_table


def _report_targets(args: argparse.Namespace) -> list[tuple[str, Path]]:
    formats: list[str] = list(args.report)
    outs: list[str] = list(args.out)
    if not formats and not outs:
        return []
    if not formats:
        for out in outs:
            fmt = REPORT_SUFFIXES.get(Path(out).suffix.lower())
            if fmt is None:
                raise UsageError(f"--out {out}: cannot tell the report format from the extension; add --report html|json|junit")
            formats.append(fmt)
    if not outs:
        outs = [f"scenario-report.{'xml' if f == 'junit' else f}" for f in formats]
    if len(formats) != len(outs):
        raise UsageError(
            f"{len(formats)} --report but {len(outs)} --out: give one --out per --report, in the same order"
        )
    return [(fmt, Path(out)) for fmt, out in zip(formats, outs)]


def run_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    out = sys.stdout
    err = sys.stderr
    targets = _report_targets(args)
    _check_backend_flags(args)
    overrides = Overrides(
        runs=args.runs,
        max_concurrency=args.max_concurrency,
        adaptive=args.adaptive,
        executor=args.executor,
        model=args.model,
        api_base=args.api_base,
        api_key="mock" if args.mock else None,  # the mock takes any key: don't require api_key_env's variable
        min_pass_rate=args.min_pass_rate,
        retries=args.retries,
        timeout=args.timeout,
        scenarios=args.scenario,
        variants=args.variant,
    )
    try:
        suite = load_suite(args.suite, overrides)
    except SuiteError as exc:
        print(str(exc), file=err)
        return EXIT_USAGE
    problems = []
    for name, factory in suite.variants.items():
        problem = check_agent(factory)
        if problem:
            key = "agent" if name == "default" else f"variants.{name}"
            problems.append(f"  {suite.path}: {key}: {problem}")
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} with the agents of {suite.path}:", file=err)
        print("\n".join(problems), file=err)
        return EXIT_USAGE
    needs_model = any(_needs_model(s) for s in suite.scenarios)
    if needs_model and suite.model is None and not args.mock and not any(s.model for s in suite.scenarios):
        raise UsageError(
            f"{suite.path}: no model for the user simulator and judge. Add 'defaults: {{model: openai/gpt-4o-mini}}' "
            "to the suite, pass --model, or use --mock for the offline mock model"
        )

    store_path = Path(args.store or DEFAULT_STORE)
    if args.resume and not store_path.exists():
        raise UsageError(f"--resume: the store {store_path} does not exist; nothing to resume (check --store)")
    with open_store(str(store_path)) as store:
        return _run_with_store(args, argv, suite, store, targets, needs_model, out, err)


def _check_backend_flags(args: argparse.Namespace) -> None:
    if args.backend != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--workers", args.workers)) if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} only apply to --backend ray; add --backend ray or drop them")
        return
    if args.processes > 1:
        raise UsageError("--processes forks workers on this machine; with --backend ray use --workers N instead")
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray: Ray is not installed here; install the extra: pip install 'scenario[ray]'")


def _batch_backend(args: argparse.Namespace, suite: Any) -> Any:
    """``local``, or the Ray options; the suite's folder travels as the job's working directory so
    its ``module:factory`` references import on every node."""
    if args.backend != "ray":
        return "local"
    return Ray(address=args.address, workers=args.workers, runtime_env={"working_dir": str(Path(suite.path).parent.resolve())})


def _needs_model(scenario: Any) -> bool:
    if scenario.criteria:
        return True
    steps = scenario.steps or []
    return any(step.kind == "proceed" or (step.kind == "user" and step.content is None) for step in steps)


def _suite_info(suite: Any) -> dict[str, Any]:
    return {
        "description": suite.description,
        "path": str(suite.path),
        "thresholds": suite.thresholds(),
        "scenario_order": [s.name for s in suite.scenarios],
        "variants": {name: {"agent": f.path, "args": f.args} for name, f in suite.variants.items()},
        "scenarios": [
            {"name": s.name, "description": s.description, "criteria": s.criteria, "runs": s.runs,
             "max_turns": s.max_turns, "min_pass_rate": s.min_pass_rate, "variants": s.variants}
            for s in suite.scenarios
        ],
    }


def _run_with_store(args, argv, suite, store, targets, needs_model, out: TextIO, err: TextIO) -> int:
    with ExitStack() as stack:
        mock_url = None
        if args.mock and not args.dry_run:
            server = stack.enter_context(MockLLMServer(latency=args.mock_latency))
            mock_url = server.base_url
            print(f"Using the built-in mock model at {mock_url} (offline).", file=err)
        # A dry run plans with the mock's model settings without starting it (addresses are not
        # part of a run's fingerprint, so the plan is the one a real --mock run makes).
        _configure_models(suite, mock_url or ("http://127.0.0.1:0/v1" if args.mock else None))
        if args.verbose or args.debug:
            scenario.configure(verbose=args.verbose or None, debug=args.debug or None)
        strategy = _strategy(suite)
        progress_hook: dict[str, Any] = {}

        def on_run_finished(record: Any) -> None:
            hook = progress_hook.get("progress")
            if hook is not None:
                hook.run_finished(record)

        try:
            config = prepare_batch(
                _batch_scenarios(suite), suite=suite.name, variants=dict(suite.variants), executor=suite.executor,
                concurrency=strategy, retries=suite.retries, on_error="fail_fast" if args.fail_fast else "continue",
                on_run_finished=on_run_finished, processes=args.processes, backend=_batch_backend(args, suite),
            )
            stored = StoredBatch.open(store, config, resume=args.resume, command=_command_line(argv),
                                      git_dir=suite.path.parent, info=_suite_info(suite))
        except ScenarioConfigError as exc:
            raise UsageError(str(exc)) from None
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        plan = stored.plan

        if args.dry_run:
            print(f"Suite {suite.name!r} ({suite.path}) is valid: {len(suite.scenarios)} scenarios, "
                  f"{len(suite.variants)} variant(s), {plan.planned} runs; {len(plan.kept)} already in {store.path}, "
                  f"{plan.to_run} to run.", file=out)
            if plan.batch is not None:
                print(f"  {plan.describe()}", file=out)
            for spec in suite.scenarios:
                print(f"  {spec.name}: {spec.runs} run(s) x {', '.join(spec.variants)}; "
                      f"max_turns {spec.max_turns}, min pass rate {spec.min_pass_rate:.0%}", file=out)
            return EXIT_OK

        try:
            store.save_suite_info(suite.name, _suite_info(suite))
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        if plan.batch is not None:
            print(plan.describe(), file=err)
        else:
            print(f"Batch {stored.batch_id} of suite {suite.name!r}: {plan.planned} run"
                  f"{'s' if plan.planned != 1 else ''} (store {store.path}).", file=err)

        interrupted: str | None = None
        started = time.monotonic()
        if not plan.to_run:
            asyncio.run(stored.execute(include_kept=False))  # nothing to run: closes the resumed batch as finished
        else:
            if needs_model:
                # Import litellm (seconds) before the clock starts, so progress and ETA measure runs.
                litellm_module()
            progress = BatchProgress(
                plan.planned, skipped=len(plan.kept), skipped_passed=plan.kept_passed, mode=args.progress, stream=err,
                strategy=strategy, title=suite.name,
            )
            progress_hook["progress"] = progress
            try:
                interrupted = _execute(stored, progress)
            except StoreError as exc:
                progress.stop()
                print(f"\nStopped: {exc}\nRuns finished before this are stored. Fix the problem, then resume with:\n"
                      f"  {_resume_command(argv, stored.batch_id)}", file=err)
                return EXIT_USAGE
            except ScenarioConfigError as exc:
                progress.stop()
                raise UsageError(str(exc)) from None
            finally:
                progress.stop()
        elapsed = time.monotonic() - started

    if interrupted:
        batch = store.batch(stored.batch_id) if stored.batch_id else None
        finished = batch.finished if batch is not None else 0
        print(f"\nInterrupted ({interrupted}): {finished} of {plan.planned} runs of batch {stored.batch_id} are "
              f"finished and stored in {store.path}.", file=err)
        print(f"Resume with:\n  {_resume_command(argv, stored.batch_id)}", file=err)
        return EXIT_TERMINATED if interrupted == "SIGTERM" else EXIT_INTERRUPTED
    return _finish(suite, store, stored.batch_id, plan.planned, targets, elapsed, out, err)


def _command_line(argv: Sequence[str]) -> str:
    return "scenario " + shlex.join(list(argv))


def _configure_models(suite: Any, mock_url: str | None) -> None:
    if mock_url is not None:
        for resolved in [suite.model] + [s.model for s in suite.scenarios]:
            if resolved is not None:
                resolved.api_base, resolved.api_key = mock_url, "mock"
                if not resolved.name.startswith("openai/"):  # the mock speaks the OpenAI protocol only
                    resolved.name = "openai/gpt-4o-mini"
        if suite.model is None:
            suite.model = ResolvedModel(name="openai/gpt-4o-mini", api_base=mock_url, api_key="mock")
            for s in suite.scenarios:
                if s.model is None:
                    s.model = suite.model
    if suite.model is not None:
        scenario.configure(default_model=suite.model.to_config())


def _strategy(suite: Any) -> Any:
    if suite.adaptive:
        cap = suite.max_concurrency or 200
        return Adaptive(initial=min(10, cap), min=1, max=cap)
    # Always our own strategy object (never run_batch's implicit one): the progress display reads
    # its in-flight count and 429 counter.
    return SlidingWindow(suite.max_concurrency or DEFAULT_MAX_CONCURRENCY)


def _batch_scenarios(suite: Any) -> list[Any]:
    scenarios = []
    for s in suite.scenarios:
        model_kwargs: dict[str, Any] = {}
        if s.model is not None and s.model is not suite.model:
            config = s.model.to_config()
            model_kwargs = {k: v for k, v in config.model_dump().items() if v is not None}
        agents: list[Any] = [UserSimulatorAgent(**model_kwargs)]
        if s.criteria:
            agents.append(JudgeAgent(criteria=list(s.criteria), **model_kwargs))
        scenarios.append(Scenario(
            name=s.name,
            description=s.description,
            agents=agents,
            script=s.build_script(),
            max_turns=s.max_turns,
            metadata=dict(s.metadata),
            timeout=s.timeout,
            runs=s.runs,
            min_pass_rate=s.min_pass_rate,
            variants=list(s.variants),
        ))
    return scenarios


def _execute(stored: Any, progress: Any) -> str | None:
    """Run the batch; returns why it was interrupted, or None when it ran to the end."""
    received: dict[str, str] = {}

    async def batch() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def stop(name: str) -> None:
            if "signal" in received:  # the second one: the user does not want to wait
                print(f"\n{name} again: quitting now; finished runs are stored.", file=sys.stderr, flush=True)
                os._exit(EXIT_INTERRUPTED)
            received["signal"] = name
            print(f"\n{name}: stopping, cancelling the runs in flight ({name} again to quit at once).",
                  file=sys.stderr, flush=True)
            if task is not None:
                task.cancel()

        # Our own handlers rather than asyncio.run's: run_batch turns cancellation into a partial
        # result, so this is where we learn which signal stopped it. A SIGINT ignored by the parent
        # (nohup, background jobs of a script) stays ignored.
        for signum, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
            if signum == signal.SIGINT and signal.getsignal(signum) == signal.SIG_IGN:
                continue
            try:
                loop.add_signal_handler(signum, stop, name)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        progress.start()
        return await stored.execute(include_kept=False)

    try:
        result = asyncio.run(batch())
    except KeyboardInterrupt:
        return "Ctrl-C"
    except asyncio.CancelledError:
        return received.get("signal", "cancelled")
    if "signal" in received:
        return received["signal"]
    if result.cancelled and not (result.reason or "").startswith("fail_fast"):
        return result.reason or "cancelled"
    return None


def _resume_command(argv: Sequence[str], batch_id: str | None) -> str:
    """The command line again, resuming this batch by id (so a newer batch cannot be picked instead)."""
    words: list[str] = []
    skip_next = False
    for position, word in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if word == "--fresh" or word.startswith("--resume="):
            continue
        if word == "--resume":
            following = argv[position + 1] if position + 1 < len(argv) else None
            skip_next = following is not None and not following.startswith("-")
            continue
        words.append(word)
    words += ["--resume", batch_id] if batch_id else ["--resume"]
    return "scenario " + shlex.join(words)


def _finish(suite, store, batch_id, planned: int, targets, elapsed: float, out: TextIO, err: TextIO) -> int:
    order = {(s.name, variant, index): position for position, (s, variant, index) in enumerate(
        (s, v, i) for s in suite.scenarios for v in s.variants for i in range(s.runs))}
    outcomes = sorted(store.outcomes(suite.name, batch_id=batch_id),
                      key=lambda o: order.get((o.scenario, o.variant, o.index), len(order)))
    thresholds = {(suite.name, s.name): s.min_pass_rate for s in suite.scenarios}
    groups = summarize(outcomes, thresholds)
    whole = tally(outcomes)
    missing = planned - whole.runs

    print(f"\nSuite {suite.name}: {whole.passed}/{whole.runs} runs passed, cost ${whole.cost_usd:.4f}, "
          f"{elapsed:.1f}s", file=out)
    print("\n".join(verdict_table(groups)), file=out)
    missed = [g for g in groups if not g.met]
    _print_failures(store, batch_id, outcomes, missed, out)

    if targets:
        records = store.records(suite=suite.name, batch_id=batch_id)
        report = report_from_records(records, suite_info={suite.name: _suite_info(suite)}, source=str(store.path))
        for fmt, path in targets:
            written = write_report(report, fmt, path)
            print(f"Wrote {fmt} report to {written}", file=err)

    print(f"Results in {store.path}, batch {batch_id} (scenario report {shlex.quote(str(store.path))} --batch "
          f"{batch_id} --out report.html)", file=err)
    if missing:
        print(f"FAILED: {missing} of {planned} runs did not finish (stopped early); resume with --resume {batch_id} "
              "to complete them.", file=out)
        return EXIT_FAILED
    if missed:
        print(f"FAILED: {len(missed)} of {len(groups)} scenario/variant pairs missed their pass-rate threshold.", file=out)
        return EXIT_FAILED
    print(f"PASSED: all {len(groups)} scenario/variant pairs met their pass-rate threshold.", file=out)
    return EXIT_OK


#: Runs explained in full after the table (failed criteria, error and traceback, last turns).
MAX_EXPLAINED_FAILURES = 10


def _print_failures(store: Any, batch_id: str, outcomes: Sequence[Any], missed: Sequence[Any], out: TextIO) -> None:
    """Why runs failed, in full: the runs of scenarios that missed their threshold, and every
    error or timeout (a scenario expected to fail sometimes does not hide a crash)."""
    missed_keys = {(g.scenario, g.variant) for g in missed}
    wanted = [o for o in outcomes
              if o.status in ("error", "timeout") or (o.status == "failed" and (o.scenario, o.variant) in missed_keys)]
    if not wanted:
        return
    shown = wanted[:MAX_EXPLAINED_FAILURES]
    records = {r.id: r for r in store.records(batch_id=batch_id, ids=[o.id for o in shown])}
    print(f"\nFailures ({len(wanted)}):", file=out)
    for outcome in shown:
        record = records.get(outcome.id)
        if record is not None:
            print("\n" + explain_record(record), file=out)
    if len(wanted) > len(shown):
        print(f"\n... and {len(wanted) - len(shown)} more: scenario report {shlex.quote(str(store.path))} --batch "
              f"{batch_id} --out report.html", file=out)
    print("", file=out)

