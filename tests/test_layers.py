"""The package's shape is checked, not hoped for: layers, one-way imports, no hidden imports.

The layer contract lives in pyproject.toml ([tool.importlinter]) and is drawn in
docs/architecture.md. Imports of our own modules sit at the top of a module, where a reader and
the contract see them; an import inside a function hides an edge (and usually a cycle).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scenario"

# Imports of our own modules inside a function that are still to be lifted (issue 9). Every
# entry here is a debt; the list only shrinks.
PENDING_LAZY_IMPORTS = {
    ("scenario.batch.fingerprint", "scenario.messages"),
    ("scenario.batch.runner", "scenario.batch.stored"),
    ("scenario.batch.stored", "scenario.batch.runner"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_inside_functions() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("scenario")):
                    found.add((_module_name(path), node.module or "."))
                elif isinstance(node, ast.Import):
                    found.update((_module_name(path), alias.name) for alias in node.names
                                 if alias.name.startswith("scenario"))
    return found


def test_the_layer_contract_holds():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([lint], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_new_imports_of_our_own_modules_hide_inside_functions():
    new = sorted(_imports_inside_functions() - PENDING_LAZY_IMPORTS)
    assert not new, (
        "imports of the package's own modules inside functions (move them to the top of the module; "
        f"if that makes a cycle, the cycle is the bug): {new}"
    )


def test_the_pending_list_only_names_imports_that_still_exist():
    # A lifted import must leave the list, so the list shows the debt that is left.
    gone = sorted(PENDING_LAZY_IMPORTS - _imports_inside_functions())
    assert not gone, f"remove these from PENDING_LAZY_IMPORTS, they are gone: {gone}"


@pytest.mark.parametrize("tool", ["ruff"])
def test_ruff_is_clean(tool):
    exe = shutil.which(tool) or str(Path(sys.executable).with_name(tool))
    done = subprocess.run([exe, "check", "."], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
