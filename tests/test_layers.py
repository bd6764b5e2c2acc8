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

PACKAGE = Path(__file__).resolve().parents[1] / "scenario"

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
    done = subprocess.run([_tool("lint-imports")], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_import_of_our_own_modules_hides_inside_a_function():
    # Lazy loading is for heavy third-party libraries (litellm, rich, ray, the web stack), inside
    # the one module of ours that needs them; scenario/__init__'s lazy map loads by name.
    hidden = sorted(_imports_inside_functions())
    assert not hidden, (
        "imports of the package's own modules inside functions (move them to the top of the module; "
        f"if that makes a cycle, the cycle is the bug): {hidden}"
    )


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def test_ruff_is_clean():
    done = subprocess.run([_tool("ruff"), "check", "."], cwd=PACKAGE.parent, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]


def test_mypy_is_clean():
    # pyproject.toml [tool.mypy]: the whole package, the public API modules under strict's flags.
    done = subprocess.run([_tool("mypy")], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]
