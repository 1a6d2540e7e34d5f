"""What a WSGI process shares: its event-loop thread, and the drain of background tasks at exit.

At exit (gunicorn's graceful stop on SIGTERM, `max_requests` recycling, Ctrl-C,
or any interpreter exit) `shutdown()` drains every task runner until a
deadline, then stops the loop thread. It runs from `atexit`, and from gunicorn's
`worker_exit` hook when `velocipy run --server gunicorn` installed it; the second
call does nothing.

The deadline: `drain_timeout` when an adapter set one; else, inside a gunicorn
worker, what its `graceful_timeout` and `timeout` allow (see `_wsgi_gunicorn`),
counted from the stop signal when it was seen; else `DEFAULT_DRAIN_TIMEOUT`,
which fits gunicorn's default `graceful_timeout` of 30 s.

The deadline is kept even when the worker's own exit comes too late for it. A
gunicorn gthread worker waits for its open connections (an idle keep-alive one
included) for up to `graceful_timeout` before it exits, which is the moment its
master kills it: a drain started only at exit would never run, and the tasks it
should name would die silently. So once a stop signal is seen, a watchdog thread
(started with the worker, waiting on an event the signal handler sets) drains at
the deadline if the exit has not done so by then: what is unfinished is named
while the process still lives, and later work is abandoned by name too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from typing import Any

from velocipy.adapters import _wsgi_gunicorn
from velocipy.adapters._wsgi_loop import LoopThread
from velocipy.adapters.task_runner import drain_all
from velocipy.core import Application

logger = logging.getLogger("velocipy")

#: Seconds the drain may take when nothing better is known.
DEFAULT_DRAIN_TIMEOUT = 25.0

#: This process's id, kept current across forks (cheaper than calling `os.getpid()`).
PID = os.getpid()


def _forked() -> None:
    global PID
    PID = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """This process's id."""
    return PID


#: The event loop every async call of every WSGI adapter in this process runs on.
LOOP = LoopThread()


class _ProcessState:
    """Per-process facts the drain needs; reset in a forked child."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.drain_timeout: float | None = None
        self.worker: Any | None = None
        self.looked_for_worker = False
        self.stop_time: float | None = None
        #: Set by the stop signal's handler: wakes the watchdog (see `_drain_at_deadline`).
        self.stopping = threading.Event()
        #: Held while draining, so the exit and the watchdog drain once between them.
        self.drain_lock = threading.Lock()
        #: Set once the runners have been drained.
        self.drained = threading.Event()
        self.shut_down = False
        #: Lifespans entered in this process, to leave after the drain.
        self.lifespans: list[contextlib.AbstractContextManager[Any]] = []
        #: Apps served in this process: the drain says what each still has to run.
        self.apps: weakref.WeakSet[Application] = weakref.WeakSet()


_state = _ProcessState()


def _current() -> _ProcessState:
    global _state
    if _state.pid != PID:
        _state = _ProcessState()
    return _state


def set_drain_timeout(seconds: float) -> None:
    """Let the drain at exit take at most `seconds` after the stop began."""
    if seconds < 0:
        raise ValueError(f"drain_timeout must not be negative, got {seconds}")
    _current().drain_timeout = seconds


def note_stop(when: float) -> None:
    """Record that the process was told to stop at `when` (`time.monotonic()`); first wins."""
    state = _current()
    if state.stop_time is None:
        state.stop_time = when
        state.stopping.set()


def find_server(worker: Any | None = None) -> None:
    """Learn the gunicorn worker this process runs (given, or found), once per process.

    Cheap after the first call. From the main thread it also starts watching the
    worker's stop signals.
    """
    state = _current()
    if state.looked_for_worker and worker is None:
        return
    with state.lock:
        if worker is None:
            if state.looked_for_worker:
                return
            worker = _wsgi_gunicorn.current_worker()
        state.looked_for_worker = True
        if worker is None or state.worker is worker:
            return
        state.worker = worker
    if _wsgi_gunicorn.watch_stop_signals(worker, note_stop):
        # Started now, not from the signal handler: starting a thread takes locks the
        # interrupted main thread may hold. Setting an event does not.
        threading.Thread(
            target=_drain_at_deadline, args=(state,), name="velocipy-drain", daemon=True
        ).start()


def _drain_at_deadline(state: _ProcessState) -> None:
    """The watchdog: after a stop signal, drain at the deadline unless the exit did first."""
    state.stopping.wait()
    deadline = drain_deadline(time.monotonic())
    if not state.drained.wait(max(0.0, deadline - time.monotonic())):
        drain(deadline)


def drain_deadline(now: float) -> float:
    """When the drain must be over, if it starts at `now`."""
    state = _current()
    if state.drain_timeout is not None:
        budget = state.drain_timeout
    elif state.worker is not None:
        budget = _wsgi_gunicorn.drain_budget(state.worker)
    else:
        budget = DEFAULT_DRAIN_TIMEOUT
    start = state.stop_time if state.stop_time is not None else now
    return min(start, now) + budget


def serving(app: Application) -> None:
    """Note that this process serves `app`, so the drain at exit reports on its tasks."""
    _current().apps.add(app)


def _report_unfinished(apps: list[Application], deadline: float) -> None:
    """Say, by name, what the drain is about to wait for (a warning: it delays the exit)."""
    for app in apps:
        if app.tasks.unfinished:
            logger.warning(
                "Waiting up to %.1fs for background tasks: %s",
                max(0.0, deadline - time.monotonic()),
                app.tasks.describe(),
            )
            app.tasks.log_every_name(logger)


def drain(deadline: float) -> None:
    """Drain every task runner until `deadline`, once per process (the exit or the watchdog)."""
    state = _current()
    with state.drain_lock:
        if state.drained.is_set():
            return
        try:
            _report_unfinished(list(state.apps), deadline)
            drain_all(deadline)
        finally:
            state.drained.set()


def has_lifespan(app: Application) -> bool:
    """Whether `app` has startup or shutdown code to run."""
    if app.lifespan is not None or app.on_startup or app.on_shutdown:
        return True
    return any(
        isinstance(mount.app, Application) and has_lifespan(mount.app) for mount in app.mounts
    )


def enter_lifespan(app: Application) -> None:
    """Run `app`'s lifespan startup on the loop thread; its shutdown runs in `shutdown()`.

    Raises what the startup raised.
    """
    manager = LOOP.portal().wrap_async_context_manager(app.lifespan_context())
    manager.__enter__()
    _current().lifespans.append(manager)


def shutdown() -> None:
    """Drain the task runners until the deadline, leave the lifespans, stop the loop thread.

    Once per process; later calls return at once.
    """
    state = _current()
    with state.lock:
        if state.shut_down:
            return
        state.shut_down = True
    deadline = drain_deadline(time.monotonic())
    try:
        drain(deadline)
        while state.lifespans:
            try:
                state.lifespans.pop().__exit__(None, None, None)
            except Exception:
                logger.exception("Application shutdown failed")
    finally:
        LOOP.stop(timeout=max(0.5, min(5.0, deadline - time.monotonic())))


atexit.register(shutdown)
