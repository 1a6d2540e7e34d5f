"""The core must stay pure: no module under velocipy/core may import anything I/O-bound."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import velocipy.core

CORE = Path(velocipy.core.__file__).parent
FORBIDDEN = {
    "asyncio",
    "anyio",
    "threading",
    "_thread",
    "socket",
    "select",
    "selectors",
    "concurrent",
    "h11",
    "trio",
    "multiprocessing",
    "subprocess",
    "uvicorn",
    "gunicorn",
    "time",
}
MODULES = sorted(CORE.rglob("*.py"))


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            roots.add("__import__")
    return roots


def test_the_core_has_modules_to_check() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_core_module_imports_nothing_io_bound(module: Path) -> None:
    bad = imported_roots(module.read_text()) & (FORBIDDEN | {"__import__"})
    assert not bad, f"{module.name} imports {sorted(bad)}"


def test_the_checker_catches_a_forbidden_import() -> None:
    assert "asyncio" in imported_roots("import asyncio.tasks")
    assert "threading" in imported_roots("from threading import Thread")
    assert "h11" in imported_roots("def f():\n    import h11\n")
