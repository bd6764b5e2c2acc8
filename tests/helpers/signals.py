"""Subprocesses that stand for a program run in a terminal."""

from __future__ import annotations

import signal


def as_in_a_terminal() -> None:
    """``preexec_fn``: SIGINT back to its default, so it arrives as a terminal's Ctrl-C would.

    A shell starts background jobs with SIGINT ignored and children inherit that; a test session
    run that way (``pytest ... &``) would otherwise start its Ctrl-C subjects deaf to it, and the
    library rightly leaves an ignored SIGINT ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
