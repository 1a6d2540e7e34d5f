"""Session-wide set-up: the many Python subprocesses the tests start import compiled code.

Where `PYTHONDONTWRITEBYTECODE` is set (this project's shared machines set it), no
`.pyc` is ever written for the repository's own modules, so every server, worker and
CLI subprocess compiled velocipy, the tests' apps and the bench from source again:
~0.2 s of CPU per start (0.64 -> 0.43 s user+sys for a server's imports), and the
default run starts hundreds. They are compiled once here, into the usual
`__pycache__` beside the sources (ignored by git); the subprocesses still write
nothing, so a file a test writes and rewrites (the reload tests' apps) is never
read from stale bytecode.
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    if sys.dont_write_bytecode:
        for package in ("velocipy", "tests", "bench", "examples"):
            if (ROOT / package).is_dir():
                compileall.compile_dir(ROOT / package, quiet=1)
