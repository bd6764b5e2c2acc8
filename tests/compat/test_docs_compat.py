"""The Python snippets of docs/migrating.md, docs/red-teaming.md and docs/clients.md run.

Each ```python block runs as written (top-level ``await`` allowed) against the session mock model,
with two names a reader supplies themselves predefined: ``MyAgent`` (an echo agent) and
``MODEL_BASE_URL`` (the mock server's URL).
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import scenario

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["migrating.md", "red-teaming.md", "clients.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _blocks():
    for page in PAGES:
        for index, code in enumerate(BLOCK.findall((DOCS / page).read_text())):
            yield pytest.param(page, code, id=f"{page}#{index + 1}")


class MyAgent(scenario.AgentAdapter):
    async def call(self, input: scenario.AgentInput) -> str:
        return f"echo: {input.last_new_user_message_str()}"


@pytest.mark.asyncio
@pytest.mark.parametrize("page,code", list(_blocks()))
async def test_doc_snippet_runs(page, code, configured, mock_server):
    namespace = {"MyAgent": MyAgent, "MODEL_BASE_URL": mock_server.base_url, "__name__": "doc_snippet"}
    compiled = compile(code, f"docs/{page}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    value = eval(compiled, namespace)  # noqa: S307 - our own documentation
    if inspect.isawaitable(value):
        await value


def test_the_pages_have_snippets_and_the_migration_table_lists_every_peer_name():
    assert len(list(_blocks())) >= 2
    from tests.compat.test_compat_names import PEER_ALL

    text = (DOCS / "migrating.md").read_text()
    missing = [name for name in PEER_ALL if f"| `scenario.{name}` |" not in text]
    assert not missing, f"docs/migrating.md's table lacks {missing}"
