"""Reading suite text into data, keeping the line of every key.

Policy: YAML is composed to nodes first so each key's line is known (problems then point at
``file:line``), and duplicate keys are reported instead of the last one silently winning, which
is what a plain ``yaml.safe_load`` would do. TOML has no positions to offer; its problems name
the key only. Only safe YAML constructors are used: a suite file is data, never code.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from scenario.suite.problems import Loc, SuiteError, SuiteProblem, format_loc


def parse_yaml(text: str, shown: str) -> tuple[Any, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError([SuiteProblem(shown, "", f"invalid YAML: {problem}", line)]) from None
    if node is None:
        raise SuiteError([SuiteProblem(shown, "", "the file is empty; see docs/cli.md for the suite format", 1)])
    lines: dict[Loc, int] = {}
    duplicates: list[SuiteProblem] = []
    _index_yaml(node, (), lines, duplicates, shown)
    if duplicates:
        raise SuiteError(duplicates)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SuiteError([SuiteProblem(shown, "", f"invalid YAML: {exc}", mark.line + 1 if mark else None)]) from None
    finally:
        loader.dispose()
    return data, lines


def _index_yaml(node: Any, loc: Loc, lines: dict[Loc, int], duplicates: list[SuiteProblem], shown: str) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            child = loc + (key,)
            if key in seen:
                duplicates.append(SuiteProblem(shown, format_loc(child), f"duplicate key (first at line {seen[key]})", line))
                continue
            seen[key] = line
            lines[child] = line
            _index_yaml(value_node, child, lines, duplicates, shown)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_yaml(item, loc + (index,), lines, duplicates, shown)


def parse_toml(text: str, shown: str) -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SuiteError([SuiteProblem(shown, "", "TOML suites need Python 3.11+ or the 'tomli' package (pip install tomli); or use YAML")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        raise SuiteError([SuiteProblem(shown, "", f"invalid TOML: {exc}", int(match.group(1)) if match else None)]) from None
