"""Run the ported example's tests against FastAPI, to show their expected values are FastAPI's.

    pip install fastapi
    python tools/check_example_against_fastapi.py

Copies `examples/todo_service.py` and `tests/test_example_todo.py` to a temporary
folder with only their imports changed (`velocipy` -> `fastapi`), and runs pytest
there. The test suite never calls FastAPI; this is how its expected statuses and
JSON bodies were recorded and can be checked again.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

IMPORTS = [
    ("from velocipy import VelociPy as FastAPI", "from fastapi import FastAPI"),
    ("from velocipy import (", "from fastapi import ("),
    ("from velocipy.testing import TestClient", "from fastapi.testclient import TestClient"),
    ("from examples.todo_service import", "from todo_service import"),
]


def port(source: str) -> str:
    for ours, theirs in IMPORTS:
        source = source.replace(ours, theirs)
    if "velocipy" in source.replace('"velocipy', "").split('"""', 2)[-1]:
        raise SystemExit("a velocipy reference is left after the imports were changed")
    return source


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        target = pathlib.Path(folder)
        (target / "todo_service.py").write_text(
            port((ROOT / "examples" / "todo_service.py").read_text())
        )
        (target / "test_example_todo.py").write_text(
            port((ROOT / "tests" / "test_example_todo.py").read_text())
        )
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."]
        return subprocess.call(command, cwd=target)


if __name__ == "__main__":
    sys.exit(main())
