"""The ``scenario`` command: argument parsing, dispatch and exit codes.

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
SIGTERM. Each command's body lives in its own module (``run``, ``report``, ``view``); what they
share (exit codes, the usage error, argument types) is in :mod:`scenario.cli.args`.

Our own modules are imported here at the top; the heavy third-party libraries (litellm, rich,
jinja2, the web stack) load inside the functions that use them, so ``scenario --help`` stays quick.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType

import scenario
from scenario import demo
from scenario.cli.args import (
    DEFAULT_STORE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    REPORT_FORMATS,
    UsageError,
    alpha,
    non_negative_int,
    port,
    positive_int,
    rate,
    seconds,
)
from scenario.cli.report import report_command
from scenario.cli.run import run_command
from scenario.cli.view import compare_command, view_command
from scenario.runtime import worker_pool
from scenario.testing import mock_llm

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TERMINATED", "EXIT_USAGE", "UsageError", "build_parser",
           "main"]

#: Commands that are programs of their own (a module with a ``main(argv)``): their arguments go to
#: them untouched.
_PASSTHROUGH: dict[str, tuple[ModuleType, str]] = {
    "demo": (demo, "run the quick-start demo suite (offline against the mock model by default)"),
    "mock-llm": (mock_llm, "serve the offline OpenAI-compatible mock model"),
}
_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": report_command,
    "view": view_command,
    "compare": compare_command,
}


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
    run.add_argument("--runs", type=positive_int, metavar="N", help="runs per scenario and variant (overrides the file)")
    limit = run.add_mutually_exclusive_group()
    limit.add_argument("--max-concurrency", type=positive_int, metavar="K", help="at most K runs at once (a fixed window)")
    limit.add_argument("--adaptive", action="store_true", default=None,
                       help="adapt concurrency to the provider: grow while calls succeed, shrink on 429s")
    run.add_argument("--executor", choices=("thread", "loop"),
                     help="thread: each run on a worker thread (sync agents ok); loop: all runs on one event loop")
    run.add_argument("--model", metavar="M", help="model for the user simulator and judge, e.g. openai/gpt-4o-mini")
    run.add_argument("--api-base", metavar="URL", help="API base URL for that model (e.g. a proxy or the mock server)")
    run.add_argument("--store", metavar="PATH", help=f"SQLite result store (default: {DEFAULT_STORE})")
    again = run.add_mutually_exclusive_group()
    again.add_argument("--resume", nargs="?", const=True, default=None, metavar="BATCH_ID",
                       help="continue the latest interrupted batch of this suite (or BATCH_ID): runs finished with "
                            "an unchanged fingerprint are kept; unfinished, errored and changed ones run")
    again.add_argument("--fresh", action="store_true",
                       help="start a new batch (the default; kept for scripts written for older versions)")
    run.add_argument("--report", action="append", choices=REPORT_FORMATS, default=[], metavar="FORMAT",
                     help="write a report when done: html, json or junit (repeatable, pairs with --out)")
    run.add_argument("--out", action="append", default=[], metavar="PATH",
                     help="where to write the report (format inferred from .html/.json/.xml when --report is omitted)")
    run.add_argument("--min-pass-rate", type=rate, metavar="R",
                     help="pass rate every scenario must reach, 0..1 or a percentage (overrides the file)")
    run.add_argument("--retries", type=non_negative_int, metavar="N", help="re-run a run that ended on a transient error (429, 5xx, timeout, connection) up to N times")
    run.add_argument("--timeout", type=seconds, metavar="S", help="seconds per run before it counts as timed out")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first run that errors or times out")
    run.add_argument("--processes", type=positive_int, default=1, metavar="N",
                     help="spread the runs over N worker processes (past one core; results stream back and are "
                          "stored by this process as they finish)")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where runs execute: local (this machine; see --processes) or ray (a Ray cluster: "
                          "RAY_ADDRESS, --address, a cluster running here, else a local one; needs scenario[ray])")
    run.add_argument("--address", metavar="A", help="with --backend ray: the cluster to join, e.g. ray://head:10001 or auto")
    run.add_argument("--workers", type=positive_int, metavar="N",
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
    report.add_argument("--format", choices=REPORT_FORMATS, default=None,
                        help="report format (default: from --out's extension .html/.json/.xml; html)")
    report.add_argument("--out", metavar="PATH", default="-",
                        help="output file (default: standard output; HTML is never printed to a terminal)")
    report.add_argument("--suite", action="append", metavar="NAME", help="only this suite (repeatable; default: all)")
    report.add_argument("--batch", metavar="BATCH_ID",
                        help="report this batch (default: the latest batch of each suite)")

    view = commands.add_parser(
        "view",
        help="browse a result store in a local web app (batches, runs, compare, live)",
        description="Serve a local web app over a result store: every batch, each run's transcript and verdict, "
        "comparisons, and batches still running. Needs the 'view' extra: pip install 'scenario[view]'.",
    )
    view.add_argument("store", metavar="STORE", nargs="?", default=DEFAULT_STORE,
                      help=f"result store file (default: {DEFAULT_STORE})")
    view.add_argument("--port", type=port, metavar="N",
                      help="port to listen on (default: 8420, or any free port when that one is busy)")
    view.add_argument("--host", default="127.0.0.1", metavar="ADDR",
                      help="address to listen on (default: 127.0.0.1; anything else is reachable from other machines)")
    view.add_argument("--no-browser", action="store_true", help="do not open a browser")

    compare = commands.add_parser(
        "compare",
        help="compare two batches of a suite; exit 1 on a regression beyond chance",
        description="Compare two batches (default: the latest batch of the suite against the one before it): "
        "verdict flips, pass-rate changes with Fisher's exact test, cost and latency. Exits 1 when a pass rate "
        "fell by more than chance, so CI can gate on it.",
    )
    compare.add_argument("base", metavar="BEFORE", nargs="?", help="the earlier batch id (default: the one before AFTER)")
    compare.add_argument("head", metavar="AFTER", nargs="?", help="the later batch id (default: the latest batch)")
    compare.add_argument("--store", default=DEFAULT_STORE, metavar="PATH", help=f"result store (default: {DEFAULT_STORE})")
    compare.add_argument("--suite", metavar="NAME", help="which suite's latest batches to compare (when the store has several)")
    compare.add_argument("--alpha", type=alpha, default=0.05, metavar="P",
                         help="significance level for 'beyond chance' (default: 0.05)")
    for name, (_, text) in _PASSTHROUGH.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser



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
        program, _ = _PASSTHROUGH[args_list[0]]
        return int(program.main(args_list[1:]) or 0)

    parser = build_parser()
    args_list = _resume_after_suite(args_list)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.version:
        print(f"scenario {scenario.__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.command == "run":
            return run_command(args, args_list)
        return _COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"scenario {args.command}: error: {exc}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
