"""The ``scenario view`` and ``scenario compare`` commands: they only read a store.

Their arguments are parsed with every other command's in ``scenario.cli.main``. Exit codes:
``view`` 0 after Ctrl-C, 2 when it cannot start (missing extra, store, port); ``compare`` 0 with
no regression beyond chance, 1 with one, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from scenario.cli.args import EXIT_FAILED, EXIT_OK, UsageError, open_store
from scenario.reports.compare import format_comparison
from scenario.view import VIEW_EXTRA_HINT, missing_extra
from scenario.view.pages import Pages, compare_batches
from scenario.view.server import ViewError, serve


def view_command(args: argparse.Namespace) -> int:
    """Serve the viewer until Ctrl-C."""
    missing = missing_extra()
    if missing is not None:
        raise UsageError(f"the viewer needs the 'view' extra ({missing} is not installed): {VIEW_EXTRA_HINT}")
    open_store(args.store, readonly=True).close()
    try:
        return serve(args.store, host=args.host, port=args.port, open_browser=not args.no_browser)
    except ViewError as exc:
        raise UsageError(str(exc)) from None


def compare_command(args: argparse.Namespace) -> int:
    """Compare two batches; exit 1 on a regression beyond chance."""
    with open_store(args.store, readonly=True) as store:
        suites = store.suites()
        if args.suite is not None and args.suite not in suites:
            raise UsageError(f"suite {args.suite!r} is not in {args.store} (it has: {', '.join(suites) or 'none'})")
        for given in (args.base, args.head):
            if given is not None and store.batch(given) is None:
                raise UsageError(f"{args.store} has no batch {given!r}; 'scenario view {args.store}' lists them")
        if args.base is None and args.head is None and args.suite is None and len(suites) > 1:
            raise UsageError(f"{args.store} holds several suites ({', '.join(suites)}): pass --suite NAME "
                             "or two batch ids")
        data = Pages(store).comparison(args.base, args.head, args.suite)
        assert data is not None  # ids were checked above
        if data["comparison"] is None:
            raise UsageError(f"nothing to compare: {data['problem']}")
        base, head = data["base"], data["head"]
        if base.suite != head.suite:
            print(f"Note: {data['problem']}", file=sys.stderr)
        comparison = compare_batches(store, base, head, alpha=args.alpha)
    print(format_comparison(comparison))
    return EXIT_FAILED if comparison.regressed else EXIT_OK
