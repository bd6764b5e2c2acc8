"""The ``scenario view`` and ``scenario compare`` commands (parsers and bodies).

Kept beside ``scenario.cli.main`` rather than inside it: they only read a store, and ``cli`` calls
:func:`add_parsers` and :func:`run_command` so its own argument handling and exit codes stay in
one place. Exit codes: ``view`` 0 after Ctrl-C, 2 when it cannot start (missing extra, store,
port); ``compare`` 0 with no regression beyond chance, 1 with one, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK = 0
EXIT_REGRESSED = 1
EXIT_USAGE = 2
DEFAULT_STORE = ".scenario/results.db"


class CommandError(Exception):
    """Printed as ``scenario COMMAND: error: ...`` with exit code 2."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0: any free port), got {value}")
    return value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a significance level such as 0.05, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"the significance level is between 0 and 1 (exclusive), got {text!r}")
    return value


def add_parsers(commands: Any) -> None:
    view = commands.add_parser(
        "view",
        help="browse a result store in a local web app (batches, runs, compare, live)",
        description="Serve a local web app over a result store: every batch, each run's transcript and verdict, "
        "comparisons, and batches still running. Needs the 'view' extra: pip install 'scenario[view]'.",
    )
    view.add_argument("store", metavar="STORE", nargs="?", default=DEFAULT_STORE,
                      help=f"result store file (default: {DEFAULT_STORE})")
    view.add_argument("--port", type=_port, metavar="N",
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
    compare.add_argument("--alpha", type=_alpha, default=0.05, metavar="P",
                         help="significance level for 'beyond chance' (default: 0.05)")


def run_command(args: argparse.Namespace) -> int | None:
    """Run ``view`` or ``compare``; None for other commands."""
    if args.command == "view":
        return view_command(args)
    if args.command == "compare":
        return compare_command(args)
    return None


def _open_store(path: str) -> Any:
    from scenario.store import ResultStore, StoreError

    try:
        return ResultStore(path, readonly=True)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def view_command(args: argparse.Namespace) -> int:
    from scenario.view import VIEW_EXTRA_HINT, missing_extra

    missing = missing_extra()
    if missing is not None:
        raise CommandError(f"the viewer needs the 'view' extra ({missing} is not installed): {VIEW_EXTRA_HINT}")
    _open_store(args.store).close()
    from scenario.view.server import ViewError, serve

    try:
        return serve(args.store, host=args.host, port=args.port, open_browser=not args.no_browser)
    except ViewError as exc:
        raise CommandError(str(exc)) from None


def compare_command(args: argparse.Namespace) -> int:
    from scenario.reports.compare import format_comparison
    from scenario.view.pages import Pages, compare_batches

    with _open_store(args.store) as store:
        suites = store.suites()
        if args.suite is not None and args.suite not in suites:
            raise CommandError(f"suite {args.suite!r} is not in {args.store} (it has: {', '.join(suites) or 'none'})")
        for given in (args.base, args.head):
            if given is not None and store.batch(given) is None:
                raise CommandError(f"{args.store} has no batch {given!r}; 'scenario view {args.store}' lists them")
        if args.base is None and args.head is None and args.suite is None and len(suites) > 1:
            raise CommandError(f"{args.store} holds several suites ({', '.join(suites)}): pass --suite NAME "
                               "or two batch ids")
        data = Pages(store).comparison(args.base, args.head, args.suite)
        assert data is not None  # ids were checked above
        if data["comparison"] is None:
            raise CommandError(f"nothing to compare: {data['problem']}")
        base, head = data["base"], data["head"]
        if base.suite != head.suite:
            print(f"Note: {data['problem']}", file=sys.stderr)
        comparison = compare_batches(store, base, head, alpha=args.alpha)
    print(format_comparison(comparison))
    return EXIT_REGRESSED if comparison.regressed else EXIT_OK
