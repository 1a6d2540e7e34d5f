"""The `velocipy` command: `velocipy run MODULE:APP` serves an app (also `python -m velocipy`).

MODULE:APP is a VelociPy app or any ASGI 3 app (Starlette, a bare function).
The built-in HTTP/1.1 server is the default; `--server uvicorn` and `--server
gunicorn` hand the app to those servers instead (imported only when asked
for). `velocipy dev MODULE:APP` is `run --reload --log-level debug` with a
banner; under `--reload` this process only watches files and the app runs in a
child started with the same command line (see `velocipy.server._reload`). Every
mistake on the command line (a bad flag value, a module or
attribute that does not exist, a port already in use) ends with exit code 2
and one line saying what is wrong, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import inspect
import json
import logging
import os
import platform
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from velocipy.server import _config as defaults

PROG = "velocipy"
SERVERS = ("velocipy", "uvicorn", "gunicorn")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RELOAD_DELAY = 0.25  # uvicorn's default
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of usage + message
        raise UsageError(message)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(text: str) -> int:
    """A byte count: `65536`, `64k`, `64KiB`, `16M`, `16MiB` (binary units)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a size in bytes: {text!r} (e.g. 65536, 64KiB, 16MiB)"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a usable number of seconds: {text!r}")
    return value


def rate(text: str) -> float:
    """A number of bytes per second, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of bytes per second: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a usable number of bytes per second: {text!r}")
    return value


def count(text: str) -> int:
    """A whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `velocipy` argument parser: `run`, and `dev` (the same with reload and debug logs)."""
    parser = _Parser(prog=PROG, description="Serve a VelociPy application.")
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    run = commands.add_parser(
        "run",
        help="serve MODULE:APP",
        description="Serve a VelociPy application (see docs/server.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_serve_arguments(run, dev=False)
    dev = commands.add_parser(
        "dev",
        help="serve MODULE:APP for development: reload on changes, debug logs",
        description="Serve a VelociPy application while you work on it: restarted on "
        "every change, debug logs (see docs/server.md, Development).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_serve_arguments(dev, dev=True)
    return parser


def _add_serve_arguments(run: argparse.ArgumentParser, *, dev: bool) -> None:
    """The flags of `run` and `dev`; `dev` only changes the defaults of reload and log level."""
    run.add_argument("target", metavar="MODULE:APP", help="the app, e.g. examples.app:app")
    run.add_argument("--version", action="version", version=version_line())
    run.add_argument("--host", default=defaults.DEFAULT_HOST, help="interface to bind")
    run.add_argument("--port", type=port_number, default=defaults.DEFAULT_PORT, help="TCP port")
    run.add_argument(
        "--log-level", choices=LOG_LEVELS, default="debug" if dev else "info", help="logging level"
    )
    run.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log one line per request on velocipy.access",
    )
    run.add_argument(
        "--freeze-gc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="built-in server: keep what startup built out of garbage collections, and young "
        "collections small while many tasks are in flight",
    )
    run.add_argument(
        "--server", choices=SERVERS, default="velocipy", help="which HTTP server to run"
    )
    run.add_argument(
        "--loop",
        choices=defaults.LOOPS,
        default="auto",
        help="event loop of the built-in server (auto: uvloop when installed)",
    )
    run.add_argument(
        "--http",
        choices=defaults.HTTP_PARSERS,
        default="auto",
        help="request parser of the built-in server (auto: httptools when installed, "
        "else h11; both give the same answers)",
    )
    run.add_argument(
        "--workers",
        type=count,
        default=1,
        help="worker processes sharing the socket (built-in server: POSIX only)",
    )
    run.add_argument(
        "--threads",
        type=count,
        default=None,
        help="threads for sync handlers (built-in: "
        f"{defaults.DEFAULT_HANDLER_THREADS}; gunicorn: threads per worker, default 1)",
    )
    run.add_argument(
        "--log-config",
        metavar="FILE",
        default=None,
        help="logging configuration: a dictConfig file (.json, .yaml/.yml) or an .ini file",
    )
    run.add_argument(
        "--env-file",
        metavar="FILE",
        default=None,
        help="load environment variables from this .env file before importing the app",
    )
    socket_group = run.add_argument_group("where the built-in server listens (one of)")
    socket_group.add_argument("--uds", metavar="PATH", default=None, help="a unix socket")
    socket_group.add_argument(
        "--fd", type=int, default=None, help="an inherited listening socket's file descriptor"
    )
    tls = run.add_argument_group("TLS (HTTPS) of the built-in server")
    tls.add_argument("--ssl-certfile", metavar="FILE", default=None, help="PEM certificate")
    tls.add_argument("--ssl-keyfile", metavar="FILE", default=None, help="PEM private key")
    tls.add_argument("--ssl-keyfile-password", default=None, help="password of the key file")
    tls.add_argument(
        "--ssl-ca-certs", metavar="FILE", default=None, help="CA bundle for client certificates"
    )
    tls.add_argument("--ssl-ciphers", default="TLSv1", help="OpenSSL cipher list")
    tls.add_argument(
        "--ssl-cert-reqs",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="client certificates: 0 none, 1 optional, 2 required",
    )
    proxy = run.add_argument_group("behind a proxy (built-in server)")
    proxy.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="take client address and scheme from Forwarded / X-Forwarded-* of trusted peers",
    )
    proxy.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="comma-separated addresses or networks trusted with proxy headers, or * "
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1)",
    )
    proxy.add_argument("--root-path", default="", help="the path prefix the app is mounted at")
    responses = run.add_argument_group("responses of the built-in server")
    responses.add_argument(
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header sent on every response (repeatable)",
    )
    responses.add_argument(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send `Server: velocipy`",
    )
    responses.add_argument(
        "--date-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send a `Date` header",
    )
    limits = run.add_argument_group("limits of the built-in server")
    limits.add_argument(
        "--max-head-size",
        type=size,
        default=defaults.DEFAULT_MAX_HEAD_SIZE,
        help="largest request head in bytes (431 beyond)",
    )
    limits.add_argument(
        "--max-request-line",
        type=size,
        default=defaults.DEFAULT_MAX_REQUEST_LINE,
        help="longest request line in bytes (414 beyond)",
    )
    limits.add_argument(
        "--max-headers",
        type=count,
        default=defaults.DEFAULT_MAX_HEADERS,
        help="most header fields per request (431 beyond)",
    )
    limits.add_argument(
        "--max-body-size",
        type=size,
        default=defaults.DEFAULT_MAX_BODY_SIZE,
        help="largest request body in bytes (413 beyond, then the connection closes)",
    )
    limits.add_argument(
        "--header-timeout",
        type=seconds,
        default=defaults.DEFAULT_HEADER_TIMEOUT,
        help="seconds to receive a whole request head (408 and close beyond)",
    )
    limits.add_argument(
        "--body-timeout",
        type=seconds,
        default=defaults.DEFAULT_BODY_TIMEOUT,
        help="longest pause in seconds while reading a request body (408 and close)",
    )
    limits.add_argument(
        "--min-body-rate",
        type=rate,
        default=defaults.DEFAULT_MIN_BODY_RATE,
        help="slowest request body in bytes/s, averaged over --body-rate-window "
        "(408 and close below it; 0: off)",
    )
    limits.add_argument(
        "--body-rate-window",
        type=seconds,
        default=defaults.DEFAULT_BODY_RATE_WINDOW,
        help="seconds --min-body-rate is averaged over",
    )
    limits.add_argument(
        "--keepalive-timeout",
        "--timeout-keep-alive",
        dest="keepalive_timeout",
        type=seconds,
        default=defaults.DEFAULT_KEEPALIVE_TIMEOUT,
        help="seconds an idle keep-alive connection stays open",
    )
    limits.add_argument(
        "--max-connections",
        type=count,
        default=defaults.DEFAULT_MAX_CONNECTIONS,
        help="connections served at once; more wait in the listen backlog",
    )
    limits.add_argument(
        "--backlog", type=count, default=defaults.DEFAULT_BACKLOG, help="listen backlog"
    )
    limits.add_argument(
        "--graceful-timeout",
        type=seconds,
        default=defaults.DEFAULT_GRACEFUL_TIMEOUT,
        help="seconds a stop waits for requests and background tasks",
    )
    limits.add_argument(
        "--limit-max-requests",
        type=count,
        default=None,
        help="stop after this many requests, background tasks drained (with --workers: "
        "a fresh worker replaces it)",
    )
    limits.add_argument(
        "--task-threads",
        type=count,
        default=defaults.DEFAULT_TASK_THREADS,
        help="threads for sync background tasks (separate from handler threads)",
    )
    reload = run.add_argument_group("reloading on changes (built-in server; needs watchfiles)")
    reload.add_argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=dev,
        help="restart the app in a fresh process when a watched file changes",
    )
    reload.add_argument(
        "--reload-dir",
        dest="reload_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory to watch instead of the current one (repeatable)",
    )
    reload.add_argument(
        "--reload-include",
        dest="reload_includes",
        action="append",
        default=[],
        metavar="GLOB",
        help="files that restart the app, besides *.py (repeatable)",
    )
    reload.add_argument(
        "--reload-exclude",
        dest="reload_excludes",
        action="append",
        default=[],
        metavar="GLOB",
        help="files or directories that do not, besides .* .py[cod] .sw.* ~* (repeatable)",
    )
    reload.add_argument(
        "--reload-delay",
        type=seconds,
        default=RELOAD_DELAY,
        help="seconds between two checks for changes",
    )


def load_app(target: str, *, require_velocipy: bool = True) -> Any:
    """Import `MODULE:ATTRIBUTE` from the current directory; `UsageError` when it is not there."""
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"the app must be given as MODULE:APP, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise UsageError(
                f"cannot import module {module_name!r}: no module named {missing!r}"
            ) from None
        raise  # the module exists but imports something missing: show where
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if require_velocipy:
        from velocipy.core import Application

        if not isinstance(app, Application):
            raise UsageError(f"{target} is not a VelociPy application (it is {type(app).__name__})")
    return app


def version_line() -> str:
    """`velocipy X.Y.Z with CPython 3.x on Linux`, as `--version` prints it."""
    from velocipy import __version__

    return (
        f"{PROG} {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )


def load_env_file(path: str, *, check_only: bool = False) -> None:
    """Put the variables of the .env file `path` into `os.environ` (set ones are kept).

    `check_only`: refuse a missing file or a missing python-dotenv, load nothing
    (the `--reload` watcher: each app process it starts reads the file itself).
    """
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise UsageError(
            "--env-file needs python-dotenv: pip install 'velocipy[standard]'"
        ) from None
    if not os.path.isfile(path):
        raise UsageError(f"--env-file: no such file: {path}")
    if not check_only:
        load_dotenv(path, override=False)


def load_log_config(path: str) -> None:
    """Apply a logging configuration file: dictConfig as JSON or YAML, or fileConfig (.ini)."""
    import logging.config

    if not os.path.isfile(path):
        raise UsageError(f"--log-config: no such file: {path}")
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise UsageError(
                    "--log-config with YAML needs PyYAML: pip install 'velocipy[standard]'"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except UsageError:
        raise
    except Exception as error:  # a bad file is the operator's mistake: one line, exit 2
        raise UsageError(f"--log-config {path}: {error}") from None


class _Formatter(logging.Formatter):
    """uvicorn-like lines: `INFO:     message`."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelprefix = f"{record.levelname}:".ljust(9)
        return super().format(record)


def configure_logging(level: str, log_config: str | None = None) -> None:
    """Send `velocipy`, `velocipy.server` and `velocipy.access` to stderr at `level`.

    The app's own loggers reach stderr at `level` too, unless the root logger
    already has a handler. With `log_config` that file decides where everything
    goes; `level` still sets the `velocipy` loggers' level.
    """
    logger = logging.getLogger("velocipy")
    if log_config is not None:
        load_log_config(log_config)
        logger.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(levelprefix)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False  # an app calling logging.basicConfig() must not double our lines
    # The access log says when (its lines are read later, in files); the others as uvicorn.
    access_handler = logging.StreamHandler(sys.stderr)
    access_handler.setFormatter(_Formatter("%(levelprefix)s %(asctime)s %(message)s"))
    access = logging.getLogger("velocipy.access")
    access.handlers[:] = [access_handler]
    access.propagate = False
    root = logging.getLogger()
    if not root.handlers:  # the app's loggers, visible at the chosen level
        app_handler = logging.StreamHandler(sys.stderr)
        app_handler.setFormatter(_Formatter("%(levelprefix)s %(name)s: %(message)s"))
        root.addHandler(app_handler)
        root.setLevel(level.upper())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `velocipy` console script; returns the exit code."""
    try:
        try:
            options = build_parser().parse_args(argv)
        except SystemExit as done:  # --version and --help print, then exit 0
            return int(done.code or 0)
        return _run(options, list(sys.argv[1:] if argv is None else argv))
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 1


#: Flags only the built-in server understands: given with another server, they are an error
#: (never silently ignored). Each maps to its default.
BUILTIN_ONLY: dict[str, object] = {
    "uds": None,
    "fd": None,
    "ssl_certfile": None,
    "ssl_keyfile": None,
    "ssl_keyfile_password": None,
    "ssl_ca_certs": None,
    "ssl_ciphers": "TLSv1",
    "ssl_cert_reqs": 0,
    "proxy_headers": False,
    "forwarded_allow_ips": None,
    "root_path": "",
    "headers": [],
    "server_header": True,
    "date_header": True,
    "limit_max_requests": None,
    "http": "auto",
    "reload": False,
}

#: Flags that only mean something with `--reload`, and their defaults.
RELOAD_ONLY: dict[str, object] = {
    "reload_dirs": [],
    "reload_includes": [],
    "reload_excludes": [],
    "reload_delay": RELOAD_DELAY,
}


def _run(options: argparse.Namespace, argv: list[str]) -> int:
    if options.env_file is not None:
        # Under --reload the watcher leaves its own environment as the user gave it, so
        # every app process reads the file afresh: an edited .env holds after a reload
        # (and a variable removed from it is gone), while the shell's own still win.
        from velocipy.server._reload import SOCKET_FD_VARIABLE

        watcher = options.reload and SOCKET_FD_VARIABLE not in os.environ
        load_env_file(options.env_file, check_only=watcher)
    configure_logging(options.log_level, options.log_config)
    if options.command == "dev" and options.server != "velocipy":
        raise UsageError("velocipy dev serves with the built-in server: drop --server")
    if not options.reload:
        for name, default in RELOAD_ONLY.items():
            if getattr(options, name) != default:
                flag = "--" + name.replace("_", "-").removesuffix("s")
                raise UsageError(f"{flag} needs --reload")
    if options.server != "velocipy":
        for name, default in BUILTIN_ONLY.items():
            if getattr(options, name) != default:
                flag = "--header" if name == "headers" else "--" + name.replace("_", "-")
                raise UsageError(
                    f"{flag} is an option of the built-in server, not of --server {options.server}"
                )
    if options.server == "uvicorn":
        load_app(options.target, require_velocipy=False)
        return _run_uvicorn(options)
    if options.server == "gunicorn":
        load_app(options.target, require_velocipy=False)
        return _run_gunicorn(options)
    return _run_builtin(options, argv)


def _runner(module: str, function: str, server: str) -> Any:
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--server {server} is not available: {error}") from None


def _run_uvicorn(options: argparse.Namespace) -> int:
    run_uvicorn = _runner("velocipy.adapters.uvicorn_runner", "run_uvicorn", "uvicorn")
    extra: dict[str, Any] = {}
    if "timeout_graceful_shutdown" in inspect.signature(run_uvicorn).parameters:
        extra["timeout_graceful_shutdown"] = options.graceful_timeout
    return int(
        run_uvicorn(
            options.target,
            host=options.host,
            port=options.port,
            workers=options.workers,
            log_level=options.log_level,
            access_log=options.access_log,
            **extra,
        )
    )


def _run_gunicorn(options: argparse.Namespace) -> int:
    run_gunicorn = _runner("velocipy.adapters.gunicorn_runner", "run_gunicorn", "gunicorn")
    return int(
        run_gunicorn(
            options.target,
            host=options.host,
            port=options.port,
            workers=options.workers,
            threads=options.threads or 1,
            log_level=options.log_level,
            access_log=options.access_log,
            graceful_timeout=options.graceful_timeout,
        )
    )


def _run_builtin(options: argparse.Namespace, argv: list[str]) -> int:
    from velocipy.server import LoopUnavailable, ServerConfig, backend_for, describe, run_server
    from velocipy.server._reload import WatchedChild
    from velocipy.server._tls import ssl_context

    if options.workers > 1 and not hasattr(os, "fork"):
        raise UsageError("--workers > 1 needs fork(), which this platform does not have")
    if options.reload and options.workers > 1:
        raise UsageError("--reload cannot be used with --workers: the app reloads in one process")
    try:
        backend_for(options.loop)
    except LoopUnavailable as error:
        raise UsageError(str(error)) from None
    from velocipy.server.protocols import resolve_http

    try:
        resolve_http(options.http)
    except ValueError as error:
        raise UsageError(str(error)) from None
    config = ServerConfig(
        host=options.host,
        port=options.port,
        max_head_size=options.max_head_size,
        max_request_line=options.max_request_line,
        max_headers=options.max_headers,
        max_body_size=options.max_body_size,
        header_timeout=options.header_timeout,
        body_timeout=options.body_timeout,
        min_body_rate=options.min_body_rate,
        body_rate_window=options.body_rate_window,
        keepalive_timeout=options.keepalive_timeout,
        max_connections=options.max_connections,
        backlog=options.backlog,
        graceful_timeout=options.graceful_timeout,
        handler_threads=options.threads or defaults.DEFAULT_HANDLER_THREADS,
        task_threads=options.task_threads,
        access_log=options.access_log,
        freeze_gc=options.freeze_gc,
        http=options.http,
        server_header="velocipy" if options.server_header else "",
        date_header=options.date_header,
        headers=tuple(_header(text) for text in options.headers),
        ssl_certfile=options.ssl_certfile,
        ssl_keyfile=options.ssl_keyfile,
        ssl_keyfile_password=options.ssl_keyfile_password,
        ssl_ca_certs=options.ssl_ca_certs,
        ssl_ciphers=options.ssl_ciphers,
        ssl_cert_reqs=options.ssl_cert_reqs,
        proxy_headers=options.proxy_headers,
        forwarded_allow_ips=options.forwarded_allow_ips
        or os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        root_path=options.root_path.rstrip("/"),
        limit_max_requests=options.limit_max_requests,
    )
    try:
        config.validate()
    except ValueError as error:
        raise UsageError(str(error)) from None
    if options.uds is not None and options.fd is not None:
        raise UsageError("--uds and --fd cannot be used together")
    try:
        ssl_context(config)  # a missing file or a wrong password: say so before serving
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot use the TLS certificate: {error}") from None
    # Under --reload this process only watches; the app runs in a child started with
    # the same command line, which finds the watcher's socket in its environment.
    watched = WatchedChild.from_environment()
    if options.reload and watched is None:
        return _run_reloader(options, argv)
    if watched is not None:
        from velocipy.server import socket_from_fd

        watched.ignore_interrupts()
        try:
            app = _load_served_app(options.target)
        except UsageError:
            raise
        except Exception as error:  # the watcher waits for a fix: show the error, briefly
            print(watched.import_error(error, options.target), file=sys.stderr, flush=True)
            return 1
        sock = socket_from_fd(watched.fd, options.backlog)
    else:
        app = _load_served_app(options.target)
        sock = _listen(options)
    url = describe(sock, "https" if config.ssl_certfile else "http")

    workers = f", {options.workers} workers" if options.workers > 1 else ""

    def ready() -> None:
        if options.command == "dev":
            print(dev_banner(options.target, url, app), flush=True)
            return
        line = f"VelociPy serving {options.target} on {url}{workers} (press CTRL+C to stop)"
        print(line, flush=True)

    if watched is not None:
        code = run_server(
            app,
            config,
            sock,
            loop=options.loop,
            ready=ready,
            parent=watched.watcher,
            stop_signals=(signal.SIGTERM,),
        )
        watched.stopped_serving()  # the next process may start while this one exits
        return code

    if options.workers > 1:
        from velocipy.server import run_workers

        return run_workers(
            app, config, sock, workers=options.workers, loop=options.loop, ready=ready
        )
    return run_server(app, config, sock, loop=options.loop, ready=ready)


def _load_served_app(target: str) -> Any:
    """The app the built-in server serves: a VelociPy application or any ASGI app."""
    app = load_app(target, require_velocipy=False)
    from velocipy.core import Application
    from velocipy.server._asgi_host import is_asgi_app

    if not isinstance(app, Application) and not is_asgi_app(app):
        raise UsageError(
            f"{target} is neither a VelociPy application nor an ASGI app "
            f"(it is {type(app).__name__})"
        )
    return app


def _run_reloader(options: argparse.Namespace, argv: list[str]) -> int:
    """Watch files and run the app in a fresh child process, restarted on every change."""
    import importlib.util

    if importlib.util.find_spec("watchfiles") is None:
        raise UsageError("--reload needs watchfiles: pip install 'velocipy[standard]'")
    if os.name != "posix":
        raise UsageError("--reload is only available on POSIX systems")
    from velocipy.server._reload import Reloader, app_starter
    from velocipy.server._reload_paths import ReloadPaths

    includes = list(options.reload_includes)
    if options.env_file is not None:
        # A saved .env restarts the app too (named outright, so `.*` does not exclude it).
        includes.append(str(Path(options.env_file).resolve()))
    try:
        paths = ReloadPaths.resolve(options.reload_dirs, includes, options.reload_excludes)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if options.env_file is not None and not paths.watches(Path(options.env_file).resolve()):
        logging.getLogger("velocipy.server").warning(
            "--env-file %s is outside the watched directories: saving it does not reload "
            "(add its directory with --reload-dir)",
            options.env_file,
        )
    sock = _listen(options)  # bound once, here: no connection is refused during a reload
    try:
        reloader = Reloader(
            app_starter(argv, sock),
            paths,
            delay=options.reload_delay,
            graceful_timeout=options.graceful_timeout,
        )
        return reloader.run()
    finally:
        sock.close()


def dev_banner(target: str, url: str, app: Any) -> str:
    """What `velocipy dev` prints once the app serves: where, and where its docs are."""
    lines = [f"VelociPy dev server: {target}", f"  Serving at:  {url}"]
    docs_url = getattr(app, "docs_url", None)
    if docs_url and getattr(app, "openapi_url", None):
        lines.append(f"  API docs:    {url}{docs_url}")
    lines.append("  Reloading on changes; press CTRL+C to stop.")
    return "\n".join(lines)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise UsageError(f"--header must be NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _listen(options: argparse.Namespace) -> Any:
    """The listening socket `--uds`, `--fd` or `--host`/`--port` ask for."""
    from velocipy.server import bind_socket, bind_unix_socket, socket_from_fd

    if options.uds is not None:
        where = options.uds
    elif options.fd is not None:
        where = f"file descriptor {options.fd}"
    else:
        where = f"{options.host}:{options.port}"
    try:
        if options.uds is not None:
            return bind_unix_socket(options.uds, options.backlog)
        if options.fd is not None:
            return socket_from_fd(options.fd, options.backlog)
        return bind_socket(options.host, options.port, options.backlog)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(f"cannot listen on {where}: the address is already in use") from None
        reason = error.strerror or str(error)
        raise UsageError(f"cannot listen on {where}: {reason}") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
