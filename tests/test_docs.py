"""The user docs stay true: every ```python block of these pages runs, in order, and the
`test_*` functions a page defines are called."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXECUTED_PAGES = [
    "background-tasks.md",
    "guide.md",
    "middleware.md",
    "openapi.md",
    "security.md",
    "wsgi.md",
    "task-queues.md",
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_page_examples_run(page: str) -> None:
    found = blocks(page)
    assert found, f"{page} has no python examples"
    # A real module, so dataclasses and type hints can find the page's names.
    module = types.ModuleType(f"docs_{page.replace('-', '_').removesuffix('.md')}")
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    # Registered until the page's tests have run: a queued task is imported by name.
    try:
        for index, source in enumerate(found):
            code = compile(source, f"{page} (block {index + 1})", "exec")
            exec(code, namespace)
        tests = [value for name, value in namespace.items() if name.startswith("test_")]
        assert tests, f"{page} defines no test_ functions to check its claims"
        for test in tests:
            test()
    finally:
        del sys.modules[module.__name__]


def test_the_block_finder_finds_blocks() -> None:
    assert len(blocks("background-tasks.md")) >= 8
