"""The ``scenario view`` and ``scenario compare`` commands: they only read a store.

Their arguments are parsed with every other command's in ``scenario.cli.main``. Exit codes:
``view`` 0 after Ctrl-C, 2 when it cannot start (missing extra, store, port); ``compare`` 0 with
no regression beyond chance, 1 with one, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from scenario import view as viewer
from scenario.cli.args import EXIT_FAILED, EXIT_OK, UsageError, open_store
from scenario.reports.compare import format_comparison
from scenario.view import server
from scenario.view.pages import Pages, compare_batches


def view_command(args: argparse.Namespace) -> int:
    """Serve the viewer until Ctrl-C."""
    missing = viewer.missing_extra()  # looked up on the module, where tests replace it
    if missing is not None:
        raise UsageError(f"the viewer needs the 'view' extra ({missing} is not installed): {viewer.VIEW_EXTRA_HINT}")
    open_store(args.store, readonly=True).close()
    try:
        return server.serve(args.store, host=args.host, port=args.port, open_browser=not args.no_browser)
    except server.ViewError as exc:
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
