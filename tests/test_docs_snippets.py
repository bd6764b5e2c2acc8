"""Docs that cannot rot: every ```python, ```yaml and ```toml block of README.md and docs/ runs here.

Policy:

- A Python block runs as written, offline, against the mock model: ``OPENAI_API_BASE`` and
  ``OPENAI_API_KEY`` point litellm's OpenAI provider at it, so ``configure(default_model=
  "openai/gpt-4o-mini")`` in a snippet works unchanged. A page's blocks run in order in one
  namespace (a later block may use what an earlier one defined), top-level ``await`` allowed, in
  a temporary working directory. Names a reader supplies themselves are predefined: ``MyAgent``
  (an echo agent taking any arguments), ``my_agent`` (an object whose ``reply``/``respond``
  return a string) and ``MODEL_BASE_URL`` (the mock's URL).
- A YAML or TOML block that is a suite (it has ``scenarios``) must load as one, agents resolved
  from examples/; any other such block must parse.
- A block that cannot run (a fragment with ``...``, a sketch needing your infrastructure) is
  marked in the Markdown source, on the line before its fence, with
  ``<!-- illustrative: why it cannot run -->``; the reason is required.
- docs/migrating.md, docs/red-teaming.md and docs/clients.md are run by tests/compat/test_docs_compat.py.

A block that defines tests (the README's headline example, docs/pytest.md's first test) is also
run the way a reader would: saved as a test file and run under pytest, where every test must
pass (test_test_blocks_pass_under_pytest); ``MyAgent`` is imported for it from a helper module.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

import scenario

REPO = Path(__file__).resolve().parent.parent
COVERED_ELSEWHERE = {"docs/migrating.md", "docs/red-teaming.md", "docs/clients.md"}  # tests/compat/test_docs_compat.py
FENCE = re.compile(r"^```(python|yaml|yml|toml)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!--\s*illustrative:(.*?)-->\s*$")

pytest_plugins = ["pytester"]


def pages() -> list[str]:
    found = ["README.md"] + sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))
    return [page for page in found if page not in COVERED_ELSEWHERE]


def blocks(page: str) -> list[tuple[int, str, str, str]]:
    """(line, language, code, illustrative reason or "") for every block of a page."""
    text = (REPO / page).read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text[: match.start()].count("\n") + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        found.append((line, match.group(1), match.group(2), marker.group(1).strip() if marker else ""))
    return found


class MyAgent(scenario.AgentAdapter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


class _ReadersAgent:
    async def reply(self, messages: Any) -> str:
        return "I'm sorry about that: I can refund you or send a replacement right away."

    respond = reply


def _fill_store_for_cli_page() -> None:
    """docs/cli.md reads a store written by 'scenario run' of the support-bot suite."""
    spec = scenario.Scenario(name="greeting", description="A user says hi.", agents=[MyAgent],
                             script=[scenario.user("hi"), scenario.agent(), scenario.succeed()])
    asyncio.run(scenario.run_batch([spec], runs=2, suite="support-bot", store=".scenario/results.db"))


SETUP = {"docs/cli.md": _fill_store_for_cli_page}


@pytest.fixture
def reader_env(tmp_path, monkeypatch, mock_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_BASE", mock_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "mock")
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    return mock_server


@pytest.mark.parametrize("page", pages())
def test_every_block_of_the_page_runs_or_says_why_not(page: str, reader_env: Any) -> None:
    namespace: dict[str, Any] = {"__name__": "doc_snippet", "MyAgent": MyAgent, "my_agent": _ReadersAgent(),
                                 "MODEL_BASE_URL": reader_env.base_url}
    if page in SETUP:
        SETUP[page]()
    for line, language, code, illustrative in blocks(page):
        where = f"{page}:{line}"
        if illustrative or MARKER.search(code.splitlines()[0] if code else ""):
            continue
        if language == "python":
            _run_python(code, where, namespace)
        elif language in ("yaml", "yml"):
            _check_data(yaml.safe_load(code), code, where, ".yaml")
        else:
            _check_data(tomllib.loads(code), code, where, ".toml")


def test_illustrative_markers_give_a_reason() -> None:
    for page in pages() + sorted(COVERED_ELSEWHERE):
        text = (REPO / page).read_text()
        for number, line in enumerate(text.splitlines(), start=1):
            if "illustrative" in line and "<!--" in line:
                match = MARKER.search(line)
                assert match and len(match.group(1).strip()) >= 10, f"{page}:{number}: say why the block cannot run"


def _run_python(code: str, where: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    value = eval(compiled, namespace)  # noqa: S307 - our own documentation
    if inspect.isawaitable(value):
        asyncio.run(_awaited(value))


async def _awaited(value: Any) -> Any:
    return await value


def _check_data(data: Any, code: str, where: str, suffix: str) -> None:
    assert data is not None, f"{where}: empty block"
    if isinstance(data, dict) and "scenarios" in data:
        from scenario.suite import load_suite

        path = Path(f"snippet{suffix}")
        path.write_text(code)
        suite = load_suite(path)
        assert suite.scenarios, f"{where}: the suite has no scenarios"


OFFLINE_CONFTEST = """
import pytest
import scenario


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", {base_url!r})
    monkeypatch.setenv("OPENAI_API_KEY", "mock")
    scenario.configure(default_model="openai/gpt-4o-mini")
"""

READER_HELPERS = """
import scenario


class MyAgent(scenario.AgentAdapter):
    async def call(self, input):
        return "echo: " + input.last_new_user_message_str()
"""

TEST_DEF = re.compile(r"^(async )?def test_", re.MULTILINE)


def _blocks_with_tests() -> list[Any]:
    found = []
    for page in pages():
        for line, language, code, illustrative in blocks(page):
            if language == "python" and not illustrative and TEST_DEF.search(code):
                found.append(pytest.param(code, id=f"{page}:{line}"))
    return found


@pytest.mark.parametrize("code", _blocks_with_tests())
def test_test_blocks_pass_under_pytest(code: str, pytester: pytest.Pytester, mock_server: Any) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(OFFLINE_CONFTEST.format(base_url=mock_server.base_url))
    pytester.makepyfile(reader_helpers=READER_HELPERS)
    prelude = "from reader_helpers import MyAgent\n" if "MyAgent" in code and "class MyAgent" not in code else ""
    pytester.makepyfile(test_from_docs=prelude + code)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    tests = len(TEST_DEF.findall(code))
    outcome.assert_outcomes(passed=tests)


def test_the_readme_headline_example_is_among_them() -> None:
    assert any(p.id.startswith("README.md:") for p in _blocks_with_tests())
