"""What a ``@pytest.mark.scenario`` test should do: runs, pass-rate threshold, concurrency.

Values come from four places, most specific first: the closest ``scenario`` marker that sets
the key (function, then class, then module ``pytestmark``), the command line, the ini file
(``pyproject.toml``/``pytest.ini``), and the built-in defaults. Every value is checked here so a
typo fails at collection or start-up with a message naming the culprit, never mid-run.
"""

from __future__ import annotations

import argparse
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest

MARKER = "scenario"
MARKER_KEYS = ("runs", "min_pass_rate", "max_concurrency")

# (command-line flag, ini key) per setting.
OPTION_NAMES: dict[str, tuple] = {
    "runs": ("--scenario-runs", "scenario_runs"),
    "min_pass_rate": ("--scenario-min-pass-rate", "scenario_min_pass_rate"),
    "max_concurrency": ("--scenario-max-concurrency", "scenario_max_concurrency"),
}
REPORT_OPTION = ("--scenario-report", "scenario_report")

MARKER_HELP = (
    "scenario(runs=1, min_pass_rate=1.0, max_concurrency=None): run the test body `runs` times "
    "concurrently (at most max_concurrency at once) and pass when the share of passing runs reaches "
    "min_pass_rate. Command-line --scenario-* options and scenario_* ini keys set the defaults."
)


class SettingError(ValueError):
    """A setting has a value we cannot use; the message says which, where and what to write."""


@dataclass(frozen=True)
class RepeatSettings:
    """The resolved settings of one marked test."""

    runs: int = 1
    min_pass_rate: float = 1.0
    max_concurrency: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "min_pass_rate": self.min_pass_rate, "max_concurrency": self.max_concurrency}


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def check_runs(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError(f"{_at(where)}runs={value!r} is not allowed; runs must be a whole number >= 1 (e.g. runs=5).")
    return value


def check_min_pass_rate(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0.0 <= value <= 1.0:
        raise SettingError(
            f"{_at(where)}min_pass_rate={value!r} is not allowed; it is a fraction between 0 and 1 "
            "(0.8 means at least 80% of runs must pass)."
        )
    return float(value)


def check_max_concurrency(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError(
            f"{_at(where)}max_concurrency={value!r} is not allowed; it must be a whole number >= 1, "
            "or None for all runs at once."
        )
    return value


_CHECKS = {"runs": check_runs, "min_pass_rate": check_min_pass_rate, "max_concurrency": check_max_concurrency}


# -- command line and ini ------------------------------------------------------------------------
def _parse_text(key: str, text: str, where: str) -> Any:
    """Turn option/ini text into a checked value (ini values arrive as strings)."""
    raw = text.strip()
    if key == "max_concurrency" and raw.lower() in ("", "none"):
        return None
    try:
        value: Any = float(raw) if key == "min_pass_rate" else int(raw)
    except ValueError:
        kind = "a number between 0 and 1" if key == "min_pass_rate" else "a whole number"
        raise SettingError(f"{_at(where)}{raw!r} is not {kind}.") from None
    return _CHECKS[key](value, where)


def argparse_type(key: str):
    """An argparse ``type=`` converter so bad flags fail like any other pytest usage error."""

    def convert(text: str) -> Any:
        try:
            return _parse_text(key, text, "")  # argparse already names the option
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = key  # argparse names the converter in its own messages
    return convert


def session_defaults(config: pytest.Config) -> RepeatSettings:
    """Defaults for every marked test: command line over ini over built-in.

    Raises ``pytest.UsageError`` for an unusable ini value.
    """
    values: dict[str, Any] = {}
    for key, (flag, ini) in OPTION_NAMES.items():
        from_cli = config.getoption(flag)
        if from_cli is not None:
            values[key] = from_cli
            continue
        text = config.getini(ini)
        if text not in (None, ""):
            try:
                values[key] = _parse_text(key, str(text), f"ini option {ini} (in {config.inipath or 'the ini file'})")
            except SettingError as exc:
                raise pytest.UsageError(str(exc)) from None
    return replace(RepeatSettings(), **values)


def report_path(config: pytest.Config) -> str | None:
    flag, ini = REPORT_OPTION
    path = config.getoption(flag) or config.getini(ini)
    return str(path) if path else None


# -- markers ---------------------------------------------------------------------------------------
def check_marker(mark: pytest.Mark, where: str) -> dict[str, Any]:
    """The keys one ``scenario`` marker sets, checked. Raises SettingError."""
    if mark.args:
        raise SettingError(
            f"{_at(where)}@pytest.mark.scenario takes keyword arguments only, got positional {mark.args!r}; "
            "write e.g. @pytest.mark.scenario(runs=5, min_pass_rate=0.8)."
        )
    for key in mark.kwargs:
        if key not in MARKER_KEYS:
            close = difflib.get_close_matches(key, MARKER_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SettingError(
                f"{_at(where)}@pytest.mark.scenario got an unknown argument {key!r}.{hint} "
                f"It accepts {', '.join(MARKER_KEYS)}."
            )
    return {key: _CHECKS[key](value, where) for key, value in mark.kwargs.items()}


def resolve(marks: Iterable[pytest.Mark], defaults: RepeatSettings, where: str) -> RepeatSettings:
    """Merge markers (closest first) over the session defaults. Raises SettingError."""
    chosen: dict[str, Any] = {}
    for mark in marks:
        for key, value in check_marker(mark, where).items():
            chosen.setdefault(key, value)
    return replace(defaults, **chosen)
