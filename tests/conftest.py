"""Session-wide set-up: compiled code for the subprocesses, and tests grouped for xdist.

Where `PYTHONDONTWRITEBYTECODE` is set (this project's shared machines set it), no
`.pyc` is ever written for the repository's own modules, so every server, worker and
CLI subprocess compiled velocipy, the tests' apps and the bench from source again:
~0.2 s of CPU per start (0.64 -> 0.43 s user+sys for a server's imports), and the
default run starts hundreds. They are compiled once here, into the usual
`__pycache__` beside the sources (ignored by git); the subprocesses still write
nothing, so a file a test writes and rewrites (the reload tests' apps) is never
read from stale bytecode. Under xdist only the controller compiles, before it
starts the workers.

The default run is spread over workers by pytest-xdist (`-n auto --dist loadgroup`
in pyproject.toml). A fixture wider than a function is usually a server or a worker
process: every test that shares one instance of it is put in one xdist group, so the
instance starts once, on one worker, instead of once per worker (and, for a
parametrised one, instead of again each time a worker switches between parameters).
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller compiled the tree before starting it
    if sys.dont_write_bytecode:
        for package in ("velocipy", "tests", "bench", "examples"):
            if (ROOT / package).is_dir():
                compileall.compile_dir(ROOT / package, quiet=1)


def shared_instances(item: pytest.Item) -> set[str]:
    """Names of the costly fixture instances `item` shares with other tests.

    A parametrised fixture of session, package or module scope has one instance per
    parameter; an unparametrised one of module (or class) scope one per module. An
    unparametrised session fixture is left out: every worker may hold its own (a
    broker's address, a certificate), and grouping its users would put them all on
    one worker. No name has a `]`: xdist reads what follows the last `@` of an id as
    its group only when no `]` comes after that `@`.
    """
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    callspec = getattr(item, "callspec", None)
    indices: dict[str, int] = callspec.indices if callspec is not None else {}
    module = item.nodeid.split("::", 1)[0]
    names: set[str] = set()
    for argname in info.names_closure:
        definitions = info.name2fixturedefs.get(argname)
        if not definitions:
            continue
        scope = definitions[-1].scope
        if scope == "function":
            continue
        if argname in indices:
            where = "" if scope == "session" else f"{module}::"
            names.add(f"{where}{argname}:{indices[argname]}")
        elif scope in ("module", "class") and definitions[-1].baseid:
            names.add(f"{module}::{argname}")
    return names


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        for name in sorted(shared_instances(item)):
            item.add_marker(pytest.mark.xdist_group(name))


@pytest.hookimpl(tryfirst=True)  # before xdist sends the ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """Make `--dist loadgroup` group on pytest >= 9.2.

    xdist (3.8) tells its scheduler a test's group by renaming the test `nodeid@group`
    through `item._nodeid`, which pytest 9.2 no longer reads (the id is `item._id`, a
    `NodeId`): without this every test would be a group of its own. Done here, on the
    worker, before the ids go to the controller, only where xdist's rename did not take.
    """
    config = session.config
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9.2, where xdist's own rename works
        return
    for item in session.items:
        groups = {str(mark.args[0]) for mark in item.iter_markers("xdist_group") if mark.args}
        # Only a `NodeId` is replaced: on a pytest whose ids live elsewhere again, the tests
        # still all run, ungrouped (each shared server then starts on each worker).
        if groups and "@" not in item.nodeid and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")
