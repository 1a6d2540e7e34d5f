"""Several worker processes on one listening socket: `velocipy run --workers N` (POSIX only).

The master binds the socket and imports the app once, then forks N workers;
each runs the ordinary single-process server on the inherited socket (the
kernel spreads connections over the processes accepting on it). Workers live
in their own process group, so a terminal's Ctrl+C reaches only the master,
which forwards every SIGINT/SIGTERM it gets to every worker: the first starts
each worker's graceful stop, a second forces it, exactly as with one process.
A worker that dies while the server is not stopping is replaced, and so is one
that retires cleanly after `limit_max_requests` (its background tasks drained
first); if workers keep dying at start-up, the master stops them all and exits with 1. A worker
whose master is gone (killed outright) stops gracefully on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._config import ServerConfig
from ._run import run_server
from ._server import STOP_SIGNALS

logger = logging.getLogger("velocipy.server")

#: A worker that exits sooner than this after starting counts as a failed start.
QUICK_DEATH = 1.0
#: Failed starts in a row after which the master gives up.
MAX_QUICK_DEATHS = 5


def run_workers(
    app: Any,
    config: ServerConfig,
    sock: socket.socket,
    *,
    workers: int,
    loop: str = "auto",
    ready: Callable[[], None] | None = None,
) -> int:
    """Serve with `workers` forked processes until stopped; return the exit code.

    Returns:
        0 when every worker stopped cleanly, 1 if any was forced or failed.
    """
    children: dict[int, float] = {}  # pid -> start time
    state = {"stopping": False, "signals": 0}

    def forward(signum: int, frame: FrameType | None) -> None:
        state["signals"] += 1
        if not state["stopping"]:
            state["stopping"] = True
            logger.info("Received %s: stopping %d worker(s)", signal.Signals(signum).name, workers)
        else:
            logger.warning(
                "Received %s again: forcing the workers to exit", signal.Signals(signum).name
            )
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(workers):
            _spawn(app, config, sock, loop, children, state)
        if ready is not None:
            ready()
        code = 0
        quick_deaths = 0
        while children:
            pid, status = os.wait()
            started = children.pop(pid, None)
            if started is None:
                continue
            exit_code = os.waitstatus_to_exitcode(status)
            if state["stopping"]:
                code = max(code, 1 if exit_code else 0)
                continue
            if exit_code == 0:  # retired after --limit-max-requests, its tasks drained
                logger.info("Worker %d retired: starting a fresh one", pid)
                _spawn(app, config, sock, loop, children, state)
                continue
            logger.error("Worker %d exited with code %d", pid, exit_code)
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                logger.error("Workers keep failing at start-up: stopping")
                state["stopping"] = True
                code = 1
                for other in list(children):
                    os.kill(other, signal.SIGTERM)
                continue
            _spawn(app, config, sock, loop, children, state)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _spawn(
    app: Any,
    config: ServerConfig,
    sock: socket.socket,
    loop: str,
    children: dict[int, float],
    state: dict[str, Any],
) -> None:
    """Fork a worker and record it in `children` (pid -> start time), unless stopping."""
    # The stop signals stay blocked from before the fork until the new worker is in
    # `children`: in the master, so that a stop arriving meanwhile is forwarded to it
    # too; in the worker, until its server's own handler is in place (the server then
    # unblocks them), so that such a stop is not its death by SIGTERM.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # Blocking runs the handler of a stop that came just before (CPython checks for
    # signals on return from pthread_sigmask): `forward` has then already signalled
    # every worker there is, and a worker forked now would never hear of the stop,
    # so the master would wait for it forever. Decided here, after the block, because
    # no stop can slip in between this check and the fork.
    if state["stopping"]:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return
    master = os.getpid()
    pid = os.fork()
    if pid:
        children[pid] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        logger.info("Started worker %d", pid)
        return
    # -- in the worker --------------------------------------------------------------------------
    code = 1
    try:
        os.setpgid(0, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        code = run_server(app, config, sock, loop=loop, parent=master)
    except BaseException:
        logger.exception("Worker %d failed", os.getpid())
    finally:
        logging.shutdown()
        os._exit(code)
