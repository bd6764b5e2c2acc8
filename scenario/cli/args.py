"""What every ``scenario`` command shares: exit codes, the usage error, argument types, opening a store.

Policy: a bad argument is reported the same way by every command, ``scenario COMMAND: error:
...`` with exit code 2, naming the flag and what to give instead. The argument types below turn
text into checked values for argparse (which prints their message under the command's usage);
everything found wrong later raises :class:`UsageError`, which ``scenario.cli.main`` prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scenario.store import ResultStore, StoreError

EXIT_OK = 0
EXIT_FAILED = 1  # a scenario missed its threshold, runs are missing, or (compare) a regression beyond chance
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report 128 + SIGINT
EXIT_TERMINATED = 143  # SIGTERM (a CI job cancelled)

DEFAULT_STORE = ".scenario/results.db"
#: Report formats by the extension of --out.
REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".xml": "junit"}
REPORT_FORMATS = ("html", "json", "junit")


class UsageError(Exception):
    """Bad command-line input: printed as ``scenario COMMAND: error: ...`` with exit code 2."""


def open_store(path: str, *, readonly: bool = False) -> ResultStore:
    """The store at ``path``; a file that cannot be used is a usage error saying why."""
    try:
        return ResultStore(path, readonly=readonly)
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def _number(convert: Callable[[str], float], expected: str, check: Callable[[float], bool], rule: str,
            ) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(rule.format(value=value, text=text))
        return value

    return parse


def rate(text: str) -> float:
    """A pass rate: ``0.8`` or ``80%``."""
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pass rate such as 0.8 or 80%, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"pass rate must be between 0 and 1 (or 0% and 100%), got {text!r}")
    return value


positive_int = _number(int, "a whole number", lambda v: v >= 1, "must be at least 1, got {value}")
non_negative_int = _number(int, "a whole number", lambda v: v >= 0, "must be 0 or more, got {value}")
seconds = _number(float, "seconds", lambda v: v > 0, "must be a positive number of seconds, got {text!r}")
port = _number(int, "a port number", lambda v: 0 <= v <= 65535, "a port is 0..65535 (0: any free port), got {value}")
alpha = _number(float, "a significance level such as 0.05", lambda v: 0 < v < 1,
                "the significance level is between 0 and 1 (exclusive), got {text!r}")
