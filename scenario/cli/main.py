"""The ``scenario`` command: run suites, report from stores, the demo and the mock model server.

::

    scenario run SUITE.yaml [--runs N] [--max-concurrency K | --adaptive] [--store PATH] [--resume [BATCH_ID]]
    scenario report STORE --out report.html
    scenario view [STORE] [--port N] [--no-browser]
    scenario compare [BEFORE AFTER] [--store PATH] [--suite NAME]
    scenario demo
    scenario mock-llm --port 8765

Every ``run`` is a new batch in the store (results are fresh by default); ``--resume`` continues
the latest interrupted batch of the suite and ``--resume BATCH_ID`` a given one, re-running what
did not finish or changed since (see scenario/batch/stored.py).

Exit codes of ``run``: 0 when every scenario met its pass-rate threshold, 1 when one did not (or
runs are missing), 2 for usage errors (bad arguments, bad suite file, unusable store), 130 when
interrupted (finished runs are stored; the message prints the exact command to resume), 143 on
SIGTERM.

Only argparse is imported up front: the suite loader, store, rich and litellm load when a
command needs them, so ``scenario --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report 128 + SIGINT
EXIT_TERMINATED = 143  # SIGTERM (a CI job cancelled)

_PASSTHROUGH = {
    "demo": ("scenario.demo", "run the quick-start demo suite (offline against the mock model by default)"),
    "mock-llm": ("scenario.testing.mock_llm", "serve the offline OpenAI-compatible mock model"),
}
_REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".xml": "junit"}
_DEFAULT_STORE = ".scenario/results.db"


class UsageError(Exception):
    """Bad command-line input: printed as ``scenario: error: ...`` with exit code 2."""


# ----------------------------------------------------------------------------------------------
# Argument parsing


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pass rate such as 0.8 or 80%, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"pass rate must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The full ``scenario`` argument parser (documented in docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="scenario",
        description="Test conversational agents by simulation: run suites, keep results, write reports.",
        epilog="Run 'scenario COMMAND --help' for a command's options. Docs: docs/cli.md",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a suite file and store every run's result",
        description="Run the scenarios of a suite file N times against its agent(s) as a new batch, storing each "
        "run as it finishes. --resume continues an interrupted batch instead.",
    )
    run.add_argument("suite", metavar="SUITE", help="suite file (.yaml, .yml or .toml)")
    run.add_argument("--runs", type=_positive_int, metavar="N", help="runs per scenario and variant (overrides the file)")
    limit = run.add_mutually_exclusive_group()
    limit.add_argument("--max-concurrency", type=_positive_int, metavar="K", help="at most K runs at once (a fixed window)")
    limit.add_argument("--adaptive", action="store_true", default=None,
                       help="adapt concurrency to the provider: grow while calls succeed, shrink on 429s")
    run.add_argument("--executor", choices=("thread", "loop"),
                     help="thread: each run on a worker thread (sync agents ok); loop: all runs on one event loop")
    run.add_argument("--model", metavar="M", help="model for the user simulator and judge, e.g. openai/gpt-4o-mini")
    run.add_argument("--api-base", metavar="URL", help="API base URL for that model (e.g. a proxy or the mock server)")
    run.add_argument("--store", metavar="PATH", help=f"SQLite result store (default: {_DEFAULT_STORE})")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", nargs="?", const=True, default=None, metavar="BATCH_ID",
                       help="continue the latest interrupted batch of this suite (or BATCH_ID): runs finished with "
                            "an unchanged fingerprint are kept; unfinished, errored and changed ones run")
    again.add_argument("--fresh", action="store_true",
                       help="start a new batch (the default; kept for scripts written for older versions)")
    run.add_argument("--report", action="append", choices=("html", "json", "junit"), default=[], metavar="FORMAT",
                     help="write a report when done: html, json or junit (repeatable, pairs with --out)")
    run.add_argument("--out", action="append", default=[], metavar="PATH",
                     help="where to write the report (format inferred from .html/.json/.xml when --report is omitted)")
    run.add_argument("--min-pass-rate", type=_rate, metavar="R",
                     help="pass rate every scenario must reach, 0..1 or a percentage (overrides the file)")
    run.add_argument("--retries", type=_non_negative_int, metavar="N", help="re-run a run that ended on a transient error (429, 5xx, timeout, connection) up to N times")
    run.add_argument("--timeout", type=_seconds, metavar="S", help="seconds per run before it counts as timed out")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first run that errors or times out")
    run.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                     help="spread the runs over N worker processes (past one core; results stream back and are "
                          "stored by this process as they finish)")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where runs execute: local (this machine; see --processes) or ray (a Ray cluster: "
                          "RAY_ADDRESS, --address, a cluster running here, else a local one; needs scenario[ray])")
    run.add_argument("--address", metavar="A", help="with --backend ray: the cluster to join, e.g. ray://head:10001 or auto")
    run.add_argument("--workers", type=_positive_int, metavar="N",
                     help="with --backend ray: worker actors to start (default: the cluster's CPUs)")
    run.add_argument("--scenario", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    run.add_argument("--variant", action="append", metavar="NAME", help="run only this variant (repeatable)")
    run.add_argument("--mock", action="store_true",
                     help="serve the built-in mock model in-process and point the simulator and judge at it (offline)")
    run.add_argument("--mock-latency", type=float, default=0.0, metavar="S", help="seconds per mock model answer")
    run.add_argument("--progress", choices=("auto", "rich", "plain", "off"), default="auto",
                     help="live display (auto: rich on a terminal, plain lines in CI or a pipe)")
    run.add_argument("--dry-run", action="store_true", help="check the suite, agents and store, print the plan, run nothing")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print each conversation as it happens (lines are tagged with the scenario's name; "
                          "use --max-concurrency 1 to read one conversation at a time)")
    run.add_argument("--debug", action="store_true",
                     help="also print every model request and response of the simulator and judge (keys redacted)")

    report = commands.add_parser(
        "report",
        help="write an HTML, JSON or JUnit report from a result store",
        description="Write a report from the runs in a result store.",
    )
    report.add_argument("store", metavar="STORE", help="result store file written by 'scenario run'")
    report.add_argument("--format", choices=("html", "json", "junit"), default=None,
                        help="report format (default: from --out's extension .html/.json/.xml; html)")
    report.add_argument("--out", metavar="PATH", default="-",
                        help="output file (default: standard output; HTML is never printed to a terminal)")
    report.add_argument("--suite", action="append", metavar="NAME", help="only this suite (repeatable; default: all)")
    report.add_argument("--batch", metavar="BATCH_ID",
                        help="report this batch (default: the latest batch of each suite)")

    from scenario.cli.view import add_parsers

    add_parsers(commands)
    for name, (_, text) in _PASSTHROUGH.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


# ----------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``scenario`` command; returns the exit code (the console script exits with it)."""
    code = _main(argv)
    if argv is None:  # the program itself (console script or python -m), not a caller in-process
        _exit_quickly(code)
    return code


def _exit_quickly(code: int) -> None:
    """End the process without the interpreter's final teardown when litellm is loaded.

    Tearing down litellm's module graph takes seconds after the work is done. Everything that
    should happen at exit still does: the worker pool is shut down, atexit handlers (span
    exporters, the model loop) run, and output is flushed. Threads of the user's own (non-daemon)
    are respected: with any alive, the interpreter exits the normal way.
    """
    if "litellm" not in sys.modules:
        return
    import atexit
    import threading

    from scenario.runtime import worker_pool

    worker_pool.shutdown(wait=True)
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _PASSTHROUGH:
        import importlib

        module = importlib.import_module(_PASSTHROUGH[args_list[0]][0])
        return int(module.main(args_list[1:]) or 0)

    parser = build_parser()
    args_list = _resume_after_suite(args_list)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.version:
        from scenario import __version__

        print(f"scenario {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "run":
            return run_command(args, args_list)
        if args.command == "report":
            return report_command(args)
        from scenario.cli.view import CommandError
        from scenario.cli.view import run_command as run_view_command

        try:
            code = run_view_command(args)
        except CommandError as exc:
            raise UsageError(str(exc)) from None
        if code is not None:
            return code
    except UsageError as exc:
        print(f"scenario {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser.print_help()
    return EXIT_USAGE


_SUITE_SUFFIXES = (".yaml", ".yml", ".toml")


def _resume_after_suite(words: list[str]) -> list[str]:
    """``scenario run --resume suite.yaml``: a suite file after ``--resume`` is the suite, not a
    batch id (``--resume`` takes an optional id), so move the flag after it."""
    if not words or words[0] != "run" or "--resume" not in words:
        return words
    at = words.index("--resume")
    if at + 1 < len(words) and words[at + 1].lower().endswith(_SUITE_SUFFIXES):
        return words[:at] + words[at + 1:] + ["--resume"]
    return words


# ----------------------------------------------------------------------------------------------
# scenario report


def report_command(args: argparse.Namespace) -> int:
    from scenario.reports import render, report_from_store, write_report
    from scenario.store import ResultStore, StoreError

    fmt = args.format
    if fmt is None:
        if args.out != "-":
            fmt = _REPORT_SUFFIXES.get(Path(args.out).suffix.lower())
            if fmt is None:
                raise UsageError(f"--out {args.out}: cannot tell the report format from the extension (.html, .json, "
                                 ".xml); add --format html|json|junit")
        else:
            fmt = "html"
    if args.out == "-" and fmt == "html" and _is_terminal(sys.stdout):
        raise UsageError("an HTML report is not for a terminal: write it to a file with --out report.html (or print "
                         "--format json / --format junit)")
    try:
        store = ResultStore(args.store, readonly=True)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    with store:
        suites = store.suites()
        if args.batch is not None:
            batch = store.batch(args.batch)
            if batch is None:
                recent = ", ".join(b.id for b in store.batches()[:5]) or "none"
                raise UsageError(f"--batch {args.batch}: no such batch in {args.store} (latest: {recent})")
            if args.suite and batch.suite not in args.suite:
                raise UsageError(f"--batch {args.batch} is a batch of suite {batch.suite!r}, not {', '.join(args.suite)}")
            report = report_from_store(store, batch_id=args.batch)
        else:
            wanted = args.suite or suites
            unknown = [name for name in wanted if name not in suites]
            if unknown:
                have = ", ".join(suites) or "none"
                raise UsageError(f"suite {', '.join(map(repr, unknown))} is not in {args.store} (it has: {have})")
            from scenario.reports.summary import Report

            parts = [report_from_store(store, name) for name in wanted]
            report = Report(suites=[s for part in parts for s in part.suites], source=str(args.store))
    if args.out == "-":
        sys.stdout.write(render(report, fmt))
    else:
        path = write_report(report, fmt, args.out)
        print(f"Wrote {fmt} report to {path}", file=sys.stderr)
    return EXIT_OK


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# scenario run


def _report_targets(args: argparse.Namespace) -> list[tuple[str, Path]]:
    formats: list[str] = list(args.report)
    outs: list[str] = list(args.out)
    if not formats and not outs:
        return []
    if not formats:
        for out in outs:
            fmt = _REPORT_SUFFIXES.get(Path(out).suffix.lower())
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
    from scenario.store import ResultStore, StoreError
    from scenario.suite import Overrides, SuiteError, check_agent, load_suite

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

    store_path = Path(args.store or _DEFAULT_STORE)
    if args.resume and not store_path.exists():
        raise UsageError(f"--resume: the store {store_path} does not exist; nothing to resume (check --store)")
    try:
        store = ResultStore(store_path)
    except StoreError as exc:
        raise UsageError(str(exc)) from None

    with store:
        return _run_with_store(args, argv, suite, store, targets, needs_model, out, err)


def _check_backend_flags(args: argparse.Namespace) -> None:
    if args.backend != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--workers", args.workers)) if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} only apply to --backend ray; add --backend ray or drop them")
        return
    if args.processes > 1:
        raise UsageError("--processes forks workers on this machine; with --backend ray use --workers N instead")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray: Ray is not installed here; install the extra: pip install 'scenario[ray]'")


def _batch_backend(args: argparse.Namespace, suite: Any) -> Any:
    """``local``, or the Ray options; the suite's folder travels as the job's working directory so
    its ``module:factory`` references import on every node."""
    if args.backend != "ray":
        return "local"
    from scenario.distributed import Ray

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
    from contextlib import ExitStack

    from scenario.batch.runner import prepare_batch
    from scenario.batch.stored import StoredBatch
    from scenario.errors import ScenarioConfigError
    from scenario.store import StoreError

    with ExitStack() as stack:
        mock_url = None
        if args.mock and not args.dry_run:
            from scenario.testing.mock_llm import MockLLMServer

            server = stack.enter_context(MockLLMServer(latency=args.mock_latency))
            mock_url = server.base_url
            print(f"Using the built-in mock model at {mock_url} (offline).", file=err)
        # A dry run plans with the mock's model settings without starting it (addresses are not
        # part of a run's fingerprint, so the plan is the one a real --mock run makes).
        _configure_models(suite, mock_url or ("http://127.0.0.1:0/v1" if args.mock else None))
        if args.verbose or args.debug:
            import scenario

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
            for scenario in suite.scenarios:
                print(f"  {scenario.name}: {scenario.runs} run(s) x {', '.join(scenario.variants)}; "
                      f"max_turns {scenario.max_turns}, min pass rate {scenario.min_pass_rate:.0%}", file=out)
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
            import asyncio

            asyncio.run(stored.execute(include_kept=False))  # nothing to run: closes the resumed batch as finished
        else:
            from scenario.batch.progress import BatchProgress

            if needs_model:
                # Import litellm (seconds) before the clock starts, so progress and ETA measure runs.
                from scenario.llm.client import litellm_module

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
    import scenario
    from scenario.suite import ResolvedModel

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
    from scenario.concurrency.strategies import Adaptive, SlidingWindow

    if suite.adaptive:
        cap = suite.max_concurrency or 200
        return Adaptive(initial=min(10, cap), min=1, max=cap)
    from scenario.batch import DEFAULT_MAX_CONCURRENCY

    # Always our own strategy object (never run_batch's implicit one): the progress display reads
    # its in-flight count and 429 counter.
    return SlidingWindow(suite.max_concurrency or DEFAULT_MAX_CONCURRENCY)


def _batch_scenarios(suite: Any) -> list[Any]:
    from scenario.agents import JudgeAgent, UserSimulatorAgent
    from scenario.batch import Scenario

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
    import asyncio
    import signal

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
    from scenario.reports import report_from_records, summarize, write_report
    from scenario.reports.text import verdict_table

    order = {(s.name, variant, index): position for position, (s, variant, index) in enumerate(
        (s, v, i) for s in suite.scenarios for v in s.variants for i in range(s.runs))}
    outcomes = sorted(store.outcomes(suite.name, batch_id=batch_id),
                      key=lambda o: order.get((o.scenario, o.variant, o.index), len(order)))
    thresholds = {(suite.name, s.name): s.min_pass_rate for s in suite.scenarios}
    groups = summarize(outcomes, thresholds)
    missing = planned - len(outcomes)

    cost = sum(o.cost_usd for o in outcomes)
    passed_runs = sum(1 for o in outcomes if o.status == "passed")
    print(f"\nSuite {suite.name}: {passed_runs}/{len(outcomes)} runs passed, cost ${cost:.4f}, "
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
    from scenario.reports.failure_text import explain_record

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


if __name__ == "__main__":
    sys.exit(main())
