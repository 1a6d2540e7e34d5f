"""`velocipy run --reload`: a watcher process that restarts the app in a fresh process on changes.

Theory of operation. The process the user started becomes the *watcher*: it
binds the listening socket once, never imports the app, and starts the app in
a child process (`python -m velocipy` with the same command line) that serves
on the inherited socket. On a change that passes the filter (`ReloadPaths`),
the watcher stops the child gracefully (SIGTERM: the ordinary stop, so its
background tasks are drained within `--graceful-timeout` and named if
abandoned) and starts a new one, which imports the app afresh and runs its
lifespan again. The socket stays bound throughout: connections that arrive
between two children wait in the listen backlog and are served by the next
one, never refused.

A child that fails (a syntax error, an import error, a failed startup) prints
its error and exits; the watcher says so and waits for the next change. A
child that retires on its own with exit code 0 (`--limit-max-requests`) is
replaced at once.

Signals. The child stays in the terminal's foreground process group, so that
a `breakpoint()` in the app can read the terminal; it therefore ignores SIGINT
(a Ctrl+C reaches the watcher and the child alike) and stops on SIGTERM only,
which the watcher sends: once on the first SIGINT/SIGTERM it receives
(graceful), again on the second (at once). A child whose watcher is killed
outright notices within a second and stops gracefully.

Watching uses `watchfiles` (`velocipy[standard]`), as uvicorn does.
"""

from __future__ import annotations

import importlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ._reload_paths import ReloadPaths
from ._server import STOP_SIGNALS

logger = logging.getLogger("velocipy.server")

#: Environment variables that tell a child it serves under a watcher: the listening
#: socket's file descriptor, and the watcher's pid. The child removes them at once.
SOCKET_FD_VARIABLE = "VELOCIPY_RELOAD_SOCKET_FD"
WATCHER_PID_VARIABLE = "VELOCIPY_RELOAD_WATCHER_PID"
#: The write end of a pipe the child closes once it has stopped serving (see `Reloader`).
DONE_FD_VARIABLE = "VELOCIPY_RELOAD_DONE_FD"

#: Longest wait, in seconds, for file events before the watcher checks on its child.
POLL_INTERVAL = 0.5
#: Seconds past `--graceful-timeout` before a child that has not stopped is told again
#: (which makes it stop at once), and then before it is killed.
STOP_MARGIN = 5.0

#: Starts a child serving the app: the process, and the read end of its "done" pipe (or None).
StartApp = Callable[[], "tuple[subprocess.Popen[bytes], int | None]"]


class Reloader:
    """Runs the app in a child process and restarts it when watched files change.

    Args:
        start_app: Starts a child process serving the app.
        paths: What is watched, and which changes restart the app.
        delay: Seconds to wait before each check for changes (`--reload-delay`).
        graceful_timeout: The child's `--graceful-timeout`: how long its stop may take.
    """

    def __init__(
        self, start_app: StartApp, paths: ReloadPaths, *, delay: float, graceful_timeout: float
    ) -> None:
        self.start_app = start_app
        self.paths = paths
        self.delay = delay
        self.graceful_timeout = graceful_timeout
        #: Set by the first SIGINT/SIGTERM: the watcher stops.
        self.stopping = threading.Event()
        #: SIGINT/SIGTERM received so far.
        self.signals = 0
        self.process: subprocess.Popen[bytes] | None = None
        #: The read end of the current child's "done" pipe: at EOF it has stopped serving.
        self.done: int | None = None
        #: Children that stopped serving and are still exiting (the interpreter's own
        #: teardown, which the next child does not wait for): reaped as they finish.
        self.exiting: list[subprocess.Popen[bytes]] = []
        #: True once the current child's own exit has been reported.
        self._exit_reported = False

    def run(self) -> int:
        """Watch and serve until SIGINT/SIGTERM; return 0, or 1 if the child had to be forced."""
        from watchfiles import watch

        # watchfiles logs every batch of events (INFO, DEBUG): with a log file inside a
        # watched directory, each line would be an event, logged, and so on forever.
        watch_logger = logging.getLogger("watchfiles")
        if watch_logger.level == logging.NOTSET:
            watch_logger.setLevel(logging.WARNING)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            changes = watch(
                *self.paths.dirs,
                watch_filter=None,  # `self.paths` filters, with uvicorn's semantics
                stop_event=self.stopping,
                rust_timeout=int(POLL_INTERVAL * 1000),
                yield_on_timeout=True,
                raise_interrupt=False,
                ignore_permission_denied=True,
            )
            # The first step sets up the operating system's watches, so that a change
            # made once the app is up is never missed; what it reports is old news.
            next(changes, None)
            logger.info("Reloader process %d watching %s", os.getpid(), self.paths.describe())
            if not self.stopping.is_set():
                self._start()
            while not self.stopping.wait(self.delay):
                batch = next(changes, None)
                if batch is None:  # stopped
                    break
                self._check_on_app()
                changed = self.paths.select(path for _, path in batch)
                if changed:
                    logger.warning("Changes detected in %s: reloading", _show(changed))
                    self._stop_app()
                    if not self.stopping.is_set():
                        self._start()
            return self._stop_app(until_exit=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            logger.info("Reloader process %d stopped", os.getpid())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            logger.info("Received %s: stopping the app", signal.Signals(signum).name)
        self.stopping.set()

    def _start(self) -> None:
        self._close_done()
        self.process, self.done = self.start_app()
        self._exit_reported = False
        logger.info("Started the app in process %d", self.process.pid)

    def _check_on_app(self) -> None:
        """Report a child that exited on its own; replace one that retired cleanly."""
        if self.exiting:
            self.exiting = [old for old in self.exiting if old.poll() is None]
        process = self.process
        if process is None or self._exit_reported or process.poll() is None:
            return
        self._exit_reported = True
        if process.returncode == 0:  # retired after --limit-max-requests, tasks drained
            logger.info("The app process %d retired: starting a fresh one", process.pid)
            self._start()
            return
        logger.error(
            "The app process %d exited with code %d: waiting for a change to start it again",
            process.pid,
            process.returncode,
        )

    def _stop_app(self, *, until_exit: bool = False) -> int:
        """Stop the child gracefully, forcing it on a second signal or past its deadline.

        For a reload it is enough that the child has stopped serving (its requests,
        tasks and lifespan shutdown done, its pipe closed): the next one starts
        while it exits, a teardown of a few hundred milliseconds that a reload
        need not wait for. `until_exit` (the watcher stopping) waits for every
        child to be gone. Returns 0 when it stopped cleanly (or had already
        exited), 1 otherwise.
        """
        process = self.process
        if process is None or process.poll() is not None:
            return self._wait_for_exiting() if until_exit else 0
        process.send_signal(signal.SIGTERM)
        forced = False
        deadline = time.monotonic() + self.graceful_timeout + STOP_MARGIN
        while True:
            # Short waits, so that our signal handler runs.
            if not until_exit and self._stopped_serving(0.05):
                self.exiting.append(process)
                return 0
            try:
                process.wait(timeout=0 if self.done is not None and not until_exit else 0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if not forced and (self.signals >= 2 or time.monotonic() >= deadline):
                if self.signals < 2:
                    logger.warning("App process %d still running: stopping it now", process.pid)
                process.send_signal(signal.SIGTERM)  # a second stop signal: at once
                forced = True
                deadline = time.monotonic() + STOP_MARGIN
            elif forced and time.monotonic() >= deadline:
                logger.error("The app process %d did not stop: killing it", process.pid)
                process.kill()
                process.wait()
                break
        if until_exit:
            self._wait_for_exiting()
        return 0 if process.returncode == 0 else 1

    def _stopped_serving(self, timeout: float) -> bool:
        """Whether the current child closes its "done" pipe (or exits) within `timeout`."""
        if self.done is None:
            return False
        readable, _, _ = select.select([self.done], [], [], timeout)
        return bool(readable)

    def _wait_for_exiting(self) -> int:
        """Wait for the children still exiting (killed past `STOP_MARGIN`); 0."""
        for process in self.exiting:
            try:
                process.wait(timeout=STOP_MARGIN)
            except subprocess.TimeoutExpired:
                logger.error("The app process %d did not exit: killing it", process.pid)
                process.kill()
                process.wait()
        self.exiting = []
        self._close_done()
        return 0

    def _close_done(self) -> None:
        if self.done is not None:
            os.close(self.done)
            self.done = None


def app_starter(argv: Sequence[str], sock: socket.socket) -> StartApp:
    """A `start_app` for `Reloader`: `python -m velocipy ARGV`, serving on `sock`."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "velocipy", *argv]

    def start_app() -> tuple[subprocess.Popen[bytes], int | None]:
        done, done_in_child = os.pipe()
        env = {
            **os.environ,
            SOCKET_FD_VARIABLE: str(fd),
            WATCHER_PID_VARIABLE: str(os.getpid()),
            DONE_FD_VARIABLE: str(done_in_child),
        }
        try:
            process = subprocess.Popen(command, pass_fds=(fd, done_in_child), env=env)
        except BaseException:
            os.close(done)
            raise
        finally:
            os.close(done_in_child)  # the child's now: at EOF, it has stopped serving
        return process, done

    return start_app


@dataclass(frozen=True)
class WatchedChild:
    """What a child started by the watcher inherits: the socket's fd and the watcher's pid."""

    fd: int
    watcher: int
    #: The write end of the watcher's "done" pipe (None from an older watcher).
    done: int | None = None

    @classmethod
    def from_environment(cls) -> WatchedChild | None:
        """The inheritance if this process was started by a watcher, else None.

        The variables are removed, so that processes the app starts do not see them.
        """
        fd = os.environ.pop(SOCKET_FD_VARIABLE, None)
        watcher = os.environ.pop(WATCHER_PID_VARIABLE, None)
        done = os.environ.pop(DONE_FD_VARIABLE, None)
        if fd is None or watcher is None:
            return None
        if done is not None:
            os.set_inheritable(int(done), False)  # not for the processes the app starts
        return cls(int(fd), int(watcher), None if done is None else int(done))

    def stopped_serving(self) -> None:
        """Tell the watcher this process has stopped serving: it may start the next one."""
        if self.done is not None:
            os.close(self.done)

    def import_error(self, error: Exception, target: str) -> str:
        """`error`, raised importing the app, with the traceback of the app's code only."""
        report = traceback.TracebackException.from_exception(error)
        # The frames of `velocipy run` and of importlib say nothing about the mistake.
        report.stack = traceback.StackSummary.from_list(
            [frame for frame in report.stack if not _is_machinery(frame.filename)]
        )
        return f"velocipy: error: importing {target} failed:\n" + "".join(report.format())

    def ignore_interrupts(self) -> None:
        """Leave Ctrl+C to the watcher, which stops this process with SIGTERM (see above)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)


#: importlib, and `velocipy/cli.py` (which imports the app).
_MACHINERY = (
    os.path.dirname(importlib.__file__),
    os.path.join(os.path.dirname(os.path.dirname(__file__)), "cli.py"),
)


def _is_machinery(filename: str) -> bool:
    return filename.startswith("<frozen ") or filename.startswith(_MACHINERY)


def _show(paths: Sequence[Path]) -> str:
    cwd = Path.cwd()
    shown = []
    for path in paths:
        try:
            shown.append(f"'{path.relative_to(cwd)}'")
        except ValueError:
            shown.append(f"'{path}'")
    return ", ".join(shown)
