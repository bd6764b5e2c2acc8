"""Tracebacks people can read: the user's frames shown, the library's plumbing folded.

An exception raised deep in an agent (``KeyError: 'choices'``) is only useful with the frame
that raised it. Between that frame and the top of the stack sit the engine, asyncio, the worker
pool and the model client, which say nothing about the user's bug but push their frames off the
screen. So a formatted traceback keeps every frame of the user's code in order and folds each
run of library frames (this package, asyncio and the other standard plumbing, litellm and its
HTTP stack) into one line naming what was folded. The exception chain (``raise ... from``,
and exceptions raised while handling another) is kept, as Python prints it.

The text is computed once, when a run ends, and travels as a string (``ErrorInfo.traceback``,
``RunRecord.error_traceback``): a store, a report or another process needs no live exception.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIRS = tuple(
    os.path.join(os.path.dirname(os.__file__), name) + os.sep
    for name in ("asyncio", "concurrent", "threading.py", "contextlib.py", "runpy.py", "selectors.py")
)
#: Third-party packages between the library and a model: their frames are plumbing too.
_PLUMBING_PACKAGES = ("litellm", "openai", "httpx", "httpcore", "aiohttp", "anyio", "tenacity", "pydantic",
                      "pydantic_core", "_pytest", "pluggy")
#: Library modules whose frames are the user's concern after all (the test helpers users run).
_SHOWN_LIBRARY_DIRS = (os.path.join(_PACKAGE_DIR, "testing") + os.sep,)

MAX_CHARS = 20_000  # a traceback longer than this is cut in the middle (recursion, huge reprs)


def is_library_frame(filename: str) -> bool:
    """True for frames of this package and of the standard/third-party plumbing around it."""
    path = os.path.abspath(filename) if filename and not filename.startswith("<") else filename or ""
    if path.startswith(_PACKAGE_DIR):
        return not path.startswith(_SHOWN_LIBRARY_DIRS)
    if path.startswith(_STDLIB_DIRS) or path.startswith("<frozen "):
        return True
    parts = path.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            at = parts.index(marker)
            if at + 1 < len(parts):
                top = parts[at + 1].split(".")[0]
                return top in _PLUMBING_PACKAGES
    return False


def format_exception(exc: BaseException, *, fold: bool = True) -> str:
    """The exception's traceback (chain included) with library frames folded (see the module docstring)."""
    try:
        te = traceback.TracebackException.from_exception(exc, capture_locals=False)
        text = "".join(_format(te, fold, seen=set()))
    except Exception:  # a broken __str__ or frame: never lose the error over its traceback
        text = "".join(traceback.format_exception_only(type(exc), exc))
    if len(text) > MAX_CHARS:
        half = MAX_CHARS // 2
        text = text[:half] + f"\n... ({len(text) - MAX_CHARS} characters cut) ...\n" + text[-half:]
    return text.rstrip("\n")


def _format(te: traceback.TracebackException, fold: bool, seen: set) -> list[str]:
    lines: list[str] = []
    seen.add(id(te))
    cause = te.__cause__
    context = te.__context__
    if cause is not None and id(cause) not in seen:
        lines += _format(cause, fold, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not te.__suppress_context__ and id(context) not in seen:
        lines += _format(context, fold, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if te.stack:
        lines.append("Traceback (most recent call last):\n")
        lines += _frames(te.stack, fold)
    lines += list(te.format_exception_only())
    return lines


def _frames(stack: Sequence[traceback.FrameSummary], fold: bool) -> list[str]:
    if not fold or all(is_library_frame(f.filename) for f in stack):
        # Nothing of the user's in it (a library bug, or a provider error): show it whole.
        return list(traceback.StackSummary.from_list(list(stack)).format())
    lines: list[str] = []
    folded: list[traceback.FrameSummary] = []

    def flush() -> None:
        if folded:
            where = sorted({_short(f.filename) for f in folded})
            shown = ", ".join(where[:4]) + (", ..." if len(where) > 4 else "")
            lines.append(f"  [{len(folded)} library frame{'s' if len(folded) != 1 else ''} folded: {shown}]\n")
            folded.clear()

    for frame in stack:
        if is_library_frame(frame.filename):
            folded.append(frame)
            continue
        flush()
        lines += traceback.StackSummary.from_list([frame]).format()
    flush()
    return lines


def _short(filename: str) -> str:
    path = os.path.abspath(filename) if filename and not filename.startswith("<") else filename
    if path.startswith(_PACKAGE_DIR):
        return "scenario/" + path[len(_PACKAGE_DIR):]
    parts = path.split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return parts[parts.index(marker) + 1]
    return os.path.basename(path)


def user_location(exc: BaseException) -> str | None:
    """``file.py:42 in call`` for the innermost frame of the user's code, if any."""
    tb = exc.__traceback__
    found: str | None = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if not is_library_frame(code.co_filename):
            found = f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return found

