"""`velocipy run --server uvicorn`: start uvicorn programmatically on an app's import string.

uvicorn is an optional extra (`pip install 'velocipy[uvicorn]'`); this module
imports it only when called, and says how to install it when it is missing.
"""

from __future__ import annotations

import sys
from typing import Any

INSTALL_HINT = "uvicorn is not installed; install it with: pip install 'velocipy[uvicorn]'"


def run_uvicorn(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    access_log: bool,
    timeout_graceful_shutdown: float | None = None,
) -> int:
    """Serve `target` ("module:attribute") with uvicorn until it stops; return an exit code.

    uvicorn picks httptools and uvloop when they are installed. With
    `workers > 1` it starts that many processes, each importing `target`.

    Args:
        target: Import string of the app, e.g. `"examples.background_tasks:app"`.
        host: Interface to bind.
        port: TCP port to bind.
        workers: Number of worker processes.
        log_level: uvicorn's log level ("critical", "error", "warning", "info", "debug").
        access_log: Whether to log each request.
        timeout_graceful_shutdown: Seconds to wait for running requests and their
            background tasks at shutdown before cancelling them (each abandoned
            task is then logged by name); None waits as long as they take.

    Returns:
        0 after a clean stop, uvicorn's exit code otherwise (3 when the app's startup
        failed), 1 if uvicorn is missing. Stopped by SIGTERM or SIGINT, uvicorn
        re-raises that signal once it has drained, so the process ends by it
        (status -15 for SIGTERM) and this function does not return.
    """
    try:
        import uvicorn
    except ImportError:
        print(f"velocipy: {INSTALL_HINT}", file=sys.stderr)
        return 1
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "log_level": log_level,
        "access_log": access_log,
        # VelociPy apps implement lifespan: a failing startup must stop the server.
        "lifespan": "on",
    }
    if timeout_graceful_shutdown is not None:
        options["timeout_graceful_shutdown"] = timeout_graceful_shutdown
    try:
        uvicorn.run(target, **options)
    except SystemExit as exit_:  # uvicorn exits with 3 when the app fails to start
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
