"""The request parsers a connection can use: h11 (the reference) and httptools (llhttp, faster).

`connection_class(http)` turns the `--http` choice into the class that serves one
socket. Both classes run the same hardening (`velocipy.server._hardening`) on the
raw head and the parsed fields, so a hostile request gets the same answer on both;
only the parsing and the response framing differ, each in its own module.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._channel import Channel
    from .._server import Server


class Connection(Protocol):
    """What the server needs of a connection, whichever parser it uses."""

    #: IDLE, HEAD or BUSY (see `_connection`).
    phase: int
    #: When the sweeper is to close it (None: never).
    deadline: float | None
    #: True until its first request head has been read.
    fresh: bool

    def expire(self) -> None:
        """Close it now."""
        ...

    async def run(self) -> None:
        """Serve its requests until it ends; never raises for what a client does."""
        ...


class ConnectionClass(Protocol):
    def __call__(
        self,
        server: Server,
        channel: Channel,
        client: tuple[str, int] | None,
        local: tuple[str, int] | None,
    ) -> Connection: ...


def httptools_available() -> bool:
    """Whether the httptools package (the `speed` extra) is installed."""
    return importlib.util.find_spec("httptools") is not None


def resolve_http(http: str) -> str:
    """The parser `http` ("auto", "h11", "httptools") stands for here; raises if not installed."""
    if http == "auto":
        return "httptools" if httptools_available() else "h11"
    if http == "httptools" and not httptools_available():
        raise ValueError("--http httptools needs httptools: pip install 'velocipy[speed]'")
    return http


def connection_class(http: str) -> ConnectionClass:
    """The connection class for the parser `http` (see `resolve_http`)."""
    if resolve_http(http) == "httptools":
        from .httptools import HttptoolsConnection

        return HttptoolsConnection
    from .._connection import HTTPConnection

    return HTTPConnection
