"""The built-in HTTP/1.1 server behind `velocipy run`: h11 over anyio, no other server needed.

Modules, one job each: `_config` (limits and their defaults), `_hardening`
(what is refused before the app runs), `_wire` (Date header, bare error
responses), `_connection` (one socket's requests, in order, parsed by h11;
`protocols.httptools` the same with llhttp; `_connection_base` what the two
share), `_server` (accept
loop, background tasks, graceful stop), `_run` (running it on a loop),
`_workers` (several forked processes on one socket), `_reload` (the `--reload`
watcher and its app process) and `_reload_paths` (what `--reload` watches).
"""

from __future__ import annotations

from ._config import LOOPS, ServerConfig
from ._run import LoopUnavailable, backend_for, run_server
from ._server import (
    EXIT_FORCED,
    EXIT_OK,
    EXIT_STARTUP_FAILED,
    Server,
    bind_socket,
    bind_unix_socket,
    describe,
    socket_from_fd,
)
from ._workers import run_workers

__all__ = [
    "EXIT_FORCED",
    "EXIT_OK",
    "EXIT_STARTUP_FAILED",
    "LOOPS",
    "LoopUnavailable",
    "Server",
    "ServerConfig",
    "backend_for",
    "bind_socket",
    "bind_unix_socket",
    "socket_from_fd",
    "describe",
    "run_server",
    "run_workers",
]
