"""What is wrong with a suite file, said with its file, line and key.

Policy: loading a suite collects *every* problem it can find before it gives up, because a user
who fixes one typo only to learn of the next one run by run is wasting time. Each problem names
where it is (``file:line: key:``) and what to do; :class:`SuiteError` carries them all at once.
The helpers here are the shared vocabulary for that: a location (``Loc``, the path of keys and
indexes into the parsed data), its printed form, the YAML line it came from, and "did you mean".

This module knows nothing of the suite format itself: the schema passes in which keys it allows.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scenario.errors import ScenarioConfigError

Loc = tuple[str | int, ...]
"""A place in the parsed suite data: keys and list indexes, e.g. ``("scenarios", 2, "name")``."""


@dataclass(frozen=True)
class SuiteProblem:
    """One thing wrong with a suite file."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class SuiteError(ScenarioConfigError):
    """A suite file could not be used; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[SuiteProblem]):
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in suite file"
        super().__init__(header + ":\n" + "\n".join(f"  {p}" for p in self.problems))


def format_loc(loc: Loc) -> str:
    """``("scenarios", 2, "name")`` -> ``scenarios[2].name``, the key as a user reads it."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, or of its nearest parent that has one (TOML suites have none)."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validation_problems(
    exc: ValidationError, shown: str, lines: dict[Loc, int], allowed_keys: Callable[[Loc], list[str]]
) -> list[SuiteProblem]:
    """One problem per distinct pydantic error, in the user's words; ``allowed_keys(loc)`` lists
    the keys the schema accepts next to an unknown one (for the hint)."""
    problems: list[SuiteProblem] = []
    seen = set()
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        message = _message_for(dict(error), loc, allowed_keys)
        key = (loc, message)
        if key in seen:
            continue
        seen.add(key)
        problems.append(SuiteProblem(shown, format_loc(loc), message, line_for(loc, lines)))
    return problems


def _clean_loc(loc: Sequence[Any]) -> Loc:
    # Pydantic puts validator names ("function-before[...]") into locations of custom types.
    return tuple(part for part in loc if not (isinstance(part, str) and ("[" in part and "]" in part)))


def _message_for(error: dict[str, Any], loc: Loc, allowed_keys: Callable[[Loc], list[str]]) -> str:
    kind = error.get("type", "")
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = [k for k in allowed_keys(loc) if k != "kind"]
        hint = did_you_mean(name, allowed)
        listing = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"unknown key {name!r}{hint}{listing}"
    if kind == "missing":
        return f"required key {str(loc[-1])!r} is missing" if loc else "required value is missing"
    message = error.get("msg", "invalid value")
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind not in ("value_error", "assertion_error") and not isinstance(value, (dict, list)):
        message = f"{message}, got {value!r}"
    return message
