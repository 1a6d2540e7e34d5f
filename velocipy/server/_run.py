"""Running a `Server` to completion on a chosen event loop, as `velocipy run` does.

Picks the anyio backend for `--loop`, serves with signal handling, and makes
sure the process can exit afterwards even if a sync task abandoned at the
shutdown deadline is still running in a worker thread.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio

from ._config import LOOPS, ServerConfig
from ._server import STOP_SIGNALS, Server

logger = logging.getLogger("velocipy.server")


class LoopUnavailable(ValueError):
    """The loop asked for is unknown or not installed."""


def backend_for(loop: str) -> tuple[str, dict[str, Any]]:
    """The anyio backend name and options for `--loop`; raises `LoopUnavailable`."""
    if loop not in LOOPS:
        raise LoopUnavailable(f"unknown loop {loop!r}; choose from {', '.join(LOOPS)}")
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    if loop == "uvloop":
        if importlib.util.find_spec("uvloop") is None:
            raise LoopUnavailable("--loop uvloop needs uvloop: pip install uvloop")
        return "asyncio", {"use_uvloop": True}
    if loop == "trio":
        if importlib.util.find_spec("trio") is None:
            raise LoopUnavailable("--loop trio needs trio: pip install trio")
        return "trio", {}
    return "asyncio", {}


def run_server(
    app: Any,
    config: ServerConfig,
    sock: socket.socket,
    *,
    loop: str = "auto",
    ready: Callable[[], None] | None = None,
    parent: int | None = None,
    stop_signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
) -> int:
    """Serve `app` (VelociPy or ASGI) on `sock` until SIGINT/SIGTERM; return the exit code.

    `parent`: in a worker process, its master's pid; `stop_signals`: the signals that
    stop it (see `Server.serve`).
    """
    backend, options = backend_for(loop)
    server = Server(app, config)

    async def main() -> int:
        return await server.serve(
            sock, handle_signals=True, ready=ready, parent=parent, stop_signals=stop_signals
        )

    code: int = anyio.run(main, backend=backend, backend_options=options)
    logger.info("Stopped")
    _exit_despite_stuck_threads(code)
    return code


def _exit_despite_stuck_threads(code: int) -> None:
    """If abandoned worker threads are still running, exit now instead of joining them."""
    stuck = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and thread.is_alive() and not thread.daemon
    ]
    if stuck:
        logger.warning("Exiting with %d worker thread(s) still running", len(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
