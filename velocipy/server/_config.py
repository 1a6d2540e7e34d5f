"""The socket server's settings: every limit and timeout, with its default, in one place.

`ServerConfig` is what `velocipy run` builds from its flags and what tests build
directly with short values. `validate()` names the first bad value, so the
command line can report it in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: Loop implementations `--loop` accepts (uvloop and trio only when installed); "auto" is
#: uvloop when installed, else asyncio.
LOOPS = ("auto", "asyncio", "uvloop", "trio")

#: HTTP/1.1 parsers `--http` accepts: "auto" is httptools when installed, else h11.
HTTP_PARSERS = ("auto", "h11", "httptools")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_HEAD_SIZE = 16 * 1024  # the whole request head, like h11's and uvicorn's default
DEFAULT_MAX_REQUEST_LINE = 8 * 1024  # longer request lines get 414
DEFAULT_MAX_HEADERS = 100  # more header fields get 431 (gunicorn's limit too)
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0  # from the first byte of a head to its last
DEFAULT_BODY_TIMEOUT = 30.0  # longest pause while a request body is being read
#: Slowest request body accepted, in bytes per second over each window (Kestrel's
#: MinRequestBodyDataRate is 240 B/s; a 2G phone uploads over ten times that).
DEFAULT_MIN_BODY_RATE = 240.0
DEFAULT_BODY_RATE_WINDOW = 10.0  # seconds the rate is averaged over
DEFAULT_KEEPALIVE_TIMEOUT = 5.0  # idle time allowed between requests, like uvicorn
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_BACKLOG = 2048
DEFAULT_GRACEFUL_TIMEOUT = 30.0
DEFAULT_HANDLER_THREADS = 40  # anyio's default worker-thread capacity
DEFAULT_TASK_THREADS = 10


@dataclass(frozen=True)
class ServerConfig:
    """Limits and timeouts of the built-in HTTP/1.1 server (see docs/server.md).

    Attributes:
        host: Interface to bind.
        port: TCP port to bind (0 picks a free one).
        max_head_size: Largest request head (request line and headers) in bytes; 431 beyond.
        max_request_line: Longest request line in bytes; 414 beyond.
        max_headers: Most header fields in one request; 431 beyond.
        max_body_size: Largest request body in bytes; 413 beyond, then the connection
            closes. None keeps the app's own `max_body_size`.
        header_timeout: Seconds a client may take to send a whole head once it has
            started; 408 and close beyond.
        body_timeout: Longest pause, in seconds, while a request body is being read
            (408 and close beyond), and longest wait for a client to take any of
            a response being written (the connection is dropped beyond).
        min_body_rate: Slowest request body accepted, in bytes per second,
            averaged over each `body_rate_window` seconds once the server waits
            for body bytes (408 and close below it); 0 turns the check off.
            Together with `body_timeout` (pauses), cuts bodies trickled in.
        body_rate_window: Seconds `min_body_rate` is averaged over.
        keepalive_timeout: Seconds an idle keep-alive connection is kept open.
        max_connections: Connections served at once; further ones wait in the
            listen backlog until a slot frees (they are never answered 503).
        backlog: The listen backlog.
        graceful_timeout: Seconds a stop waits for in-flight responses and
            background tasks before cancelling them.
        handler_threads: Worker threads for sync handlers, dependencies and streams.
        task_threads: Worker threads for sync background tasks (a separate pool).
        access_log: Log one line per response on `velocipy.access`.
        server_header: Value of the `Server` response header ("" sends none).
        http: The request parser: "h11" (pure Python, the reference), "httptools"
            (llhttp, faster; `pip install velocipy[speed]`) or "auto" (httptools when
            installed). The server's own checks give the same answers on both.
        date_header: Send a `Date` header on every response.
        headers: Extra (name, value) headers sent on every response (`--header`).
        ssl_certfile: PEM certificate (chain) file: serve HTTPS (TLS) instead of HTTP.
        ssl_keyfile: PEM private key file (when not inside `ssl_certfile`).
        ssl_keyfile_password: Password of an encrypted `ssl_keyfile`.
        ssl_ca_certs: CA bundle to verify client certificates with (see `ssl_cert_reqs`).
        ssl_ciphers: OpenSSL cipher list (uvicorn's default, "TLSv1").
        ssl_cert_reqs: Whether client certificates are required: `ssl.CERT_NONE` (0),
            `CERT_OPTIONAL` (1) or `CERT_REQUIRED` (2).
        proxy_headers: Take the client address and scheme from `Forwarded` (RFC 7239) or
            `X-Forwarded-For` / `X-Forwarded-Proto`, from trusted peers only.
        forwarded_allow_ips: Comma-separated addresses or networks trusted to send those
            headers ("*": every peer).
        root_path: The path prefix the app is mounted at behind a proxy (ASGI's root_path).
        limit_max_requests: Stop gracefully (background tasks drained) after this many
            requests; with several workers, the master starts a fresh one.
        freeze_gc: Once the app's startup is complete, move every object alive then
            out of the garbage collector's sight (`gc.freeze()`) until shutdown, so
            that collections scan only what requests create; and while many
            background flows are in flight, collect young objects in small steps
            (`velocipy.adapters._gc.ThresholdSwitch`).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_headers: int = DEFAULT_MAX_HEADERS
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    min_body_rate: float = DEFAULT_MIN_BODY_RATE
    body_rate_window: float = DEFAULT_BODY_RATE_WINDOW
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    backlog: int = DEFAULT_BACKLOG
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT
    handler_threads: int = DEFAULT_HANDLER_THREADS
    task_threads: int = DEFAULT_TASK_THREADS
    access_log: bool = True
    server_header: str = "velocipy"
    freeze_gc: bool = True
    http: str = "auto"
    date_header: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    ssl_ciphers: str = "TLSv1"
    ssl_cert_reqs: int = 0
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""
    limit_max_requests: int | None = None

    def validate(self) -> None:
        """Raise `ValueError` naming the first setting that cannot work."""
        positive_ints = ("max_head_size", "max_request_line", "max_headers", "max_connections")
        for name in (*positive_ints, "backlog", "handler_threads", "task_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_body_size is not None and self.max_body_size < 0:
            raise ValueError(f"max_body_size must not be negative, got {self.max_body_size}")
        if not self.min_body_rate >= 0:
            raise ValueError(f"min_body_rate must not be negative, got {self.min_body_rate}")
        for name in ("header_timeout", "body_timeout", "body_rate_window", "keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {getattr(self, name)}")
        if not self.graceful_timeout >= 0:
            raise ValueError(f"graceful_timeout must not be negative, got {self.graceful_timeout}")
        if self.http not in HTTP_PARSERS:
            raise ValueError(f"http must be one of {', '.join(HTTP_PARSERS)}, got {self.http!r}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("ssl_keyfile needs ssl_certfile")
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ValueError(f"ssl_cert_reqs must be 0, 1 or 2, got {self.ssl_cert_reqs}")
        if self.limit_max_requests is not None and self.limit_max_requests < 1:
            raise ValueError(
                f"limit_max_requests must be at least 1, got {self.limit_max_requests}"
            )
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ValueError(f"root_path must start with / and not end with /: {self.root_path!r}")
        for name, value in self.headers:
            if not name or any(c in name + value for c in "\r\n\0") or ":" in name:
                raise ValueError(f"not a usable response header: {name!r}: {value!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
