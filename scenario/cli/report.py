"""``scenario report``: an HTML, JSON or JUnit report from a result store.

Policy: the format follows ``--format``, else ``--out``'s extension; HTML is never printed to a
terminal (it is unreadable there). A report shows the latest batch of each suite unless
``--batch`` picks one; older batches stay in the store as history. Every figure is the rollup's
(:mod:`scenario.rollup`), so the report agrees with ``scenario run``'s table and exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scenario.cli.args import EXIT_OK, REPORT_SUFFIXES, UsageError, open_store
from scenario.reports import Report, render, report_from_store, write_report


def report_command(args: argparse.Namespace) -> int:
    """Write (or print) one report of the latest batch of each suite, or of ``--batch``."""
    fmt = args.format
    if fmt is None:
        if args.out != "-":
            fmt = REPORT_SUFFIXES.get(Path(args.out).suffix.lower())
            if fmt is None:
                raise UsageError(f"--out {args.out}: cannot tell the report format from the extension (.html, .json, "
                                 ".xml); add --format html|json|junit")
        else:
            fmt = "html"
    if args.out == "-" and fmt == "html" and _is_terminal(sys.stdout):
        raise UsageError("an HTML report is not for a terminal: write it to a file with --out report.html (or print "
                         "--format json / --format junit)")
    with open_store(args.store, readonly=True) as store:
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
