"""`velocipy run --reload` and `velocipy dev`, on real sockets with real file changes.

Each server test writes an app into a fresh directory, serves it from there
(the default watched directory), edits files and reads what the server says
and serves. The app's processes are found by the pids the watcher logs, so a
test can prove that none outlives the watcher. `ReloadPaths`, the filter on
changed files, and the command-line refusals are checked in-process.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import PYTHON, ServerProcess, free_port, run_server
from velocipy import cli
from velocipy.server._reload_paths import ReloadPaths

pytest.importorskip("watchfiles")

#: Longest wait for a reload to show (a fresh interpreter imports the app on a loaded machine).
RELOAD_TIMEOUT = 40.0

APP = """
import asyncio
import logging
import os
from contextlib import asynccontextmanager

from velocipy import BackgroundTasks, VelociPy

VERSION = {version!r}


@asynccontextmanager
async def lifespan(app):
    print(f"LIFESPAN startup {{VERSION}} pid={{os.getpid()}}", flush=True)
    logging.getLogger("app").debug("app debug line")
    yield
    print(f"LIFESPAN shutdown {{VERSION}} pid={{os.getpid()}}", flush=True)


app = VelociPy(lifespan=lifespan)


@app.get("/version")
def version() -> dict[str, object]:
    return {{"version": VERSION, "pid": os.getpid()}}


async def slow_task(seconds: float, key: str) -> None:
    await asyncio.sleep(seconds)
    print(f"TASK done {{key}} {{VERSION}}", flush=True)


@app.post("/task")
def task(seconds: float, key: str, background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(slow_task, seconds, key)
    return {{"scheduled": True}}
"""


def write_app(directory: Path, version: str, name: str = "app.py") -> None:
    (directory / name).write_text(textwrap.dedent(APP.format(version=version)))


@contextlib.contextmanager
def reloading(directory: Path, *extra: str, command: str = "run", **kw: Any) -> Iterator[Watcher]:
    """`velocipy COMMAND app:app --reload` served from `directory`; every process ends after."""
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", command, "app:app", "--port", str(port), *extra]
    if command == "run":
        argv.append("--reload")
    pids: list[int] = []
    try:
        with run_server(argv, port=port, cwd=directory, **kw) as server:
            watcher = Watcher(server)
            try:
                yield watcher
            finally:
                pids = watcher.app_pids()  # while the log file is still there
    finally:  # run_server stopped the watcher; whatever happened, no app may outlive it
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Watcher:
    """A running `--reload` server and what it logged."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url
        self._logs = ""

    def logs(self) -> str:
        """Everything logged so far (what was last read, once the log file is removed)."""
        with contextlib.suppress(FileNotFoundError):
            self._logs = self.server.logs()
        return self._logs

    def wait_for(self, text: str, count: int = 1, timeout: float = RELOAD_TIMEOUT) -> str:
        """Wait until `text` was logged `count` times; return the logs."""
        deadline = time.monotonic() + timeout
        while (logs := self.logs()).count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged {count} time(s):\n{logs}")
            if self.server.process.poll() is not None:
                raise AssertionError(f"the watcher exited while waiting for {text!r}:\n{logs}")
            time.sleep(0.05)
        return logs

    def app_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"Started the app in process (\d+)", self.logs())]

    def get_version(self) -> str:
        # A new connection each time: a reload must never refuse one.
        response = httpx.get(self.url + "/version", timeout=RELOAD_TIMEOUT)
        assert response.status_code == 200, response.text
        return str(response.json()["version"])

    def wait_until_serving(self, version: str) -> None:
        """Wait for `version` of the app to answer (reloads are not instant)."""
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while (served := self.get_version()) != version:
            if time.monotonic() > deadline:
                raise AssertionError(f"still serving {served!r}, not {version!r}:\n{self.logs()}")
            time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- real servers: the default run ------------------------------------------------------------


@pytest.mark.server
def test_an_edit_serves_the_new_code_in_a_fresh_process_with_its_lifespan(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup one")
        assert watcher.get_version() == "one"
        write_app(tmp_path, "two")
        watcher.wait_until_serving("two")
        logs = watcher.logs()
    assert "Changes detected in 'app.py': reloading" in logs
    first, second = watcher.app_pids()
    assert first != second
    # The old process shut down (lifespan included) before the new one started.
    assert logs.index(f"LIFESPAN shutdown one pid={first}") < logs.index(
        f"LIFESPAN startup two pid={second}"
    )
    assert logs.count("LIFESPAN startup") == 2


@pytest.mark.server
def test_a_syntax_error_keeps_the_watcher_and_the_next_good_save_serves(tmp_path: Path) -> None:
    write_app(tmp_path, "good")
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup good")
        (tmp_path / "app.py").write_text("def broken(:\n")
        logs = watcher.wait_for("waiting for a change to start it again")
        assert "velocipy: error: importing app:app failed" in logs
        assert "SyntaxError" in logs and 'app.py", line 1' in logs
        assert "_bootstrap" not in logs  # importlib's frames are left out
        assert watcher.server.process.poll() is None  # the watcher is alive
        write_app(tmp_path, "fixed")
        watcher.wait_until_serving("fixed")
        assert len(watcher.app_pids()) == 3  # good, broken, fixed


@pytest.mark.server
def test_sigterm_stops_the_watcher_and_the_app_leaving_no_process(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    key = uuid.uuid4().hex[:8]
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup one")
        httpx.post(watcher.url + "/task", params={"seconds": 1, "key": key}, timeout=10)
        [pid] = watcher.app_pids()
        assert watcher.server.stop(signal.SIGTERM, timeout=20) == 0
        logs = watcher.logs()
    assert not alive(pid)
    assert f"TASK done {key}" in logs  # the app drained its task before exiting
    assert logs.index(f"TASK done {key}") < logs.index("LIFESPAN shutdown one")
    assert "Reloader process" in logs and "stopped" in logs


ENV_APP = """
import os

from velocipy import VelociPy

app = VelociPy()


@app.get("/version")
def version() -> dict[str, object]:
    return {"version": os.environ.get("GREETING", "-") + "/" + os.environ.get("FROM_SHELL", "-")}
"""


@pytest.mark.server
def test_an_edited_env_file_reloads_and_its_new_values_hold(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(ENV_APP)
    env_file = tmp_path / ".env"
    env_file.write_text("GREETING=one\nFROM_SHELL=file\n")
    # A variable of the shell's own still wins over the file's, as without --reload.
    with reloading(tmp_path, "--env-file", ".env", env={"FROM_SHELL": "shell"}) as watcher:
        watcher.wait_until_serving("one/shell")
        env_file.write_text("GREETING=two\nFROM_SHELL=file\n")
        watcher.wait_until_serving("two/shell")
        env_file.write_text("FROM_SHELL=file\n")  # a variable removed from the file is gone
        watcher.wait_until_serving("-/shell")
        logs = watcher.logs()
    assert "Changes detected in '.env': reloading" in logs
    assert len(watcher.app_pids()) == 3


@pytest.mark.server
def test_dev_serves_with_reload_debug_logs_and_a_banner(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    with reloading(tmp_path, command="dev") as watcher:
        logs = watcher.wait_for("press CTRL+C to stop")
        assert "VelociPy dev server: app:app" in logs
        assert f"Serving at:  {watcher.url}" in logs
        assert f"API docs:    {watcher.url}/docs" in logs
        assert httpx.get(watcher.url + "/docs", timeout=10).status_code == 200
        write_app(tmp_path, "two")
        watcher.wait_until_serving("two")
        logs = watcher.logs()
    assert "DEBUG:    app: app debug line" in logs  # --log-level debug, the app's too
    assert "watchfiles" not in logs  # its per-event lines are kept out


# -- real servers: slower cases (-m slow) ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.server
def test_a_reload_drains_the_old_process_tasks(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    key = uuid.uuid4().hex[:8]
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup one")
        httpx.post(watcher.url + "/task", params={"seconds": 2, "key": key}, timeout=10)
        write_app(tmp_path, "two")
        watcher.wait_until_serving("two")
        logs = watcher.logs()
    assert "Waiting for background tasks: 1 running (app.slow_task)" in logs
    # The task finished in the old process, before the new one started.
    assert logs.index(f"TASK done {key} one") < logs.index("LIFESPAN startup two")


@pytest.mark.slow
@pytest.mark.server
def test_a_reload_names_the_tasks_it_abandons_past_the_graceful_timeout(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    key = uuid.uuid4().hex[:8]
    with reloading(tmp_path, "--graceful-timeout", "0.5") as watcher:
        watcher.wait_for("LIFESPAN startup one")
        httpx.post(watcher.url + "/task", params={"seconds": 60, "key": key}, timeout=10)
        write_app(tmp_path, "two")
        watcher.wait_until_serving("two")
        logs = watcher.logs()
    assert "Graceful timeout (0.5s) reached: cancelling 1 background task flow(s)" in logs
    assert "app.slow_task" in logs.split("Graceful timeout", 1)[1]
    assert f"TASK done {key}" not in logs


@pytest.mark.slow
@pytest.mark.server
def test_excluded_files_and_unwatched_directories_do_not_reload(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "other").mkdir()
    write_app(tmp_path, "one")
    args = ("--reload-dir", "src", "--reload-dir", "other", "--reload-exclude", "other")
    args += ("--reload-exclude", "scratch_*.py", "--reload-include", "*.toml")
    with reloading(tmp_path, *args) as watcher:
        logs = watcher.wait_for("LIFESPAN startup one")
        assert f"watching {(tmp_path / 'src').resolve()} (" in logs
        (tmp_path / "outside.py").write_text("x = 1\n")  # not in a watched directory
        (tmp_path / "src" / "scratch_notes.py").write_text("x = 1\n")  # excluded by name
        (tmp_path / "other" / "module.py").write_text("x = 1\n")  # excluded directory
        (tmp_path / "src" / "notes.txt").write_text("not included\n")
        time.sleep(3)  # several checks' worth: none of these may reload
        assert "Changes detected" not in watcher.logs()
        (tmp_path / "src" / "settings.toml").write_text("x = 1\n")  # included
        watcher.wait_for("LIFESPAN startup one", count=2)
        logs = watcher.logs()
    assert "Changes detected in 'src/settings.toml': reloading" in logs
    assert logs.count("Changes detected") == 1


@pytest.mark.slow
@pytest.mark.server
def test_no_connection_is_refused_while_reloading(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    errors: list[str] = []
    versions: list[str] = []
    done = threading.Event()
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup one")

        def hammer() -> None:
            while not done.is_set():
                try:
                    versions.append(watcher.get_version())
                except Exception as error:  # collected: the assertion below shows them
                    errors.append(repr(error))
                time.sleep(0.02)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            time.sleep(0.3)
            write_app(tmp_path, "two")
            watcher.wait_for("LIFESPAN startup two")
            deadline = time.monotonic() + RELOAD_TIMEOUT
            while "two" not in versions[-3:] and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            done.set()
            thread.join(RELOAD_TIMEOUT)
    assert errors == []
    assert versions[0] == "one" and versions[-1] == "two"


@pytest.mark.slow
@pytest.mark.server
def test_ctrl_c_on_the_terminal_stops_gracefully_once(tmp_path: Path) -> None:
    """The app ignores SIGINT: the group's Ctrl+C reaches it through the watcher, once."""
    write_app(tmp_path, "one")
    key = uuid.uuid4().hex[:8]
    with reloading(tmp_path, own_process_group=True) as watcher:
        watcher.wait_for("LIFESPAN startup one")
        httpx.post(watcher.url + "/task", params={"seconds": 1, "key": key}, timeout=10)
        [pid] = watcher.app_pids()
        process = watcher.server.process
        os.killpg(process.pid, signal.SIGINT)  # what a terminal does
        assert process.wait(20) == 0
        logs = watcher.logs()
    assert not alive(pid)
    assert f"TASK done {key}" in logs
    assert "exiting now" not in logs  # never counted as a second signal


@pytest.mark.slow
@pytest.mark.server
def test_the_app_stops_when_its_watcher_is_killed(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    with reloading(tmp_path) as watcher:
        watcher.wait_for("LIFESPAN startup one")
        [pid] = watcher.app_pids()
        watcher.server.process.kill()
        watcher.server.process.wait(10)
        deadline = time.monotonic() + 20
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        logs = watcher.logs()
        assert not alive(pid), logs
    assert "LIFESPAN shutdown one" in logs


@pytest.mark.slow
@pytest.mark.server
def test_a_retired_app_process_is_replaced(tmp_path: Path) -> None:
    write_app(tmp_path, "one")
    with reloading(tmp_path, "--limit-max-requests", "2") as watcher:
        watcher.wait_for("LIFESPAN startup one")
        for _ in range(2):
            watcher.get_version()
        watcher.wait_for("retired: starting a fresh one")
        assert watcher.get_version() == "one"
        assert len(watcher.app_pids()) == 2


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "app:app", "--reload", "--workers", "2"], "cannot be used with --workers"),
        (["run", "app:app", "--reload-dir", "."], "--reload-dir needs --reload"),
        (["run", "app:app", "--reload-exclude", "x"], "--reload-exclude needs --reload"),
        (["run", "app:app", "--reload-delay", "1"], "--reload-delay needs --reload"),
        (["run", "app:app", "--reload", "--server", "uvicorn"], "--reload is an option of the"),
        (["dev", "app:app", "--server", "gunicorn"], "velocipy dev serves with the built-in"),
        (["run", "app:app", "--reload", "--reload-dir", "no/such/dir"], "not a directory"),
        (["dev", "app:app", "--no-reload", "--reload-include", "*.x"], "needs --reload"),
    ],
)
def test_reload_mistakes_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("velocipy: error: ") and "\n" not in err, err
    assert fragment in err, err


def test_dev_defaults_to_reload_and_debug_logs() -> None:
    options = cli.build_parser().parse_args(["dev", "app:app"])
    assert options.reload is True and options.log_level == "debug"
    options = cli.build_parser().parse_args(["run", "app:app"])
    assert options.reload is False and options.log_level == "info"
    assert options.reload_delay == 0.25  # uvicorn's


# -- which changes reload (uvicorn's semantics) -----------------------------------------------


def test_by_default_python_files_reload_and_hidden_compiled_and_backup_files_do_not(
    tmp_path: Path,
) -> None:
    paths = ReloadPaths.resolve(cwd=tmp_path)
    assert paths.dirs == (tmp_path.resolve(),)
    assert paths(tmp_path / "app.py")
    assert paths(tmp_path / "pkg" / "models.py")
    for name in ("app.pyc", "notes.txt", ".app.py", "~app.py", "app.py.swp", "settings.toml"):
        assert not paths(tmp_path / name), name


def test_includes_and_excludes_override_each_others_defaults(tmp_path: Path) -> None:
    paths = ReloadPaths.resolve(includes=["*.toml", ".*"], excludes=["*.py"], cwd=tmp_path)
    assert not paths(tmp_path / "app.py")  # *.py excluded, so no longer a default include
    assert paths(tmp_path / "settings.toml")
    assert paths(tmp_path / ".secrets.toml")  # ".*" given as an include: no longer excluded


def test_an_include_naming_a_file_wins_over_the_default_excludes(tmp_path: Path) -> None:
    paths = ReloadPaths.resolve(includes=[".env"], cwd=tmp_path)
    assert paths(tmp_path / ".env")
    assert not paths(tmp_path / ".other")


def test_directories_in_the_patterns(tmp_path: Path) -> None:
    for name in ("src", "src/inner", "build", "docs"):
        (tmp_path / name).mkdir()
    paths = ReloadPaths.resolve(
        dirs=["src", "src/inner", "build"], includes=["docs"], excludes=["build"], cwd=tmp_path
    )
    # Nested directories are watched once; an excluded one not at all; an included one too.
    assert paths.dirs == ((tmp_path / "docs").resolve(), (tmp_path / "src").resolve())
    assert paths.exclude_dirs == ((tmp_path / "build").resolve(),)
    assert not paths(tmp_path / "build" / "gen.py")
    assert paths(tmp_path / "src" / "inner" / "app.py")


def test_only_excluded_directories_left_means_the_current_one(tmp_path: Path) -> None:
    (tmp_path / "vendor").mkdir()
    paths = ReloadPaths.resolve(dirs=["vendor"], excludes=["vendor"], cwd=tmp_path)
    assert paths.dirs == (tmp_path.resolve(),)
    assert not paths(tmp_path / "vendor" / "lib.py")
    assert paths(tmp_path / "app.py")


def test_a_reload_dir_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file.py").write_text("")
    with pytest.raises(ValueError, match="--reload-dir file.py: not a directory"):
        ReloadPaths.resolve(dirs=["file.py"], cwd=tmp_path)
