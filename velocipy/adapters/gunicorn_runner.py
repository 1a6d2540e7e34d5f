"""`velocipy run --server gunicorn`: start gunicorn programmatically with an app's WSGI object.

gunicorn is an optional extra (`pip install 'velocipy[gunicorn]'`, not available
on Windows); this module imports it only when called and says how to install it
when it is missing. It uses gunicorn's custom-application API (`BaseApplication`)
and installs two hooks so background tasks drain within gunicorn's deadlines:
`post_worker_init` tells the adapter which worker it runs in (its
`graceful_timeout` and `timeout`, and when it gets a stop signal) and
`worker_exit` drains the task runner before the worker process ends. Add the
same hooks to a `gunicorn.conf.py` when starting gunicorn yourself::

    from velocipy.adapters.gunicorn_runner import post_worker_init, worker_exit
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

INSTALL_HINT = (
    "gunicorn is not installed; install it with: pip install 'velocipy[gunicorn]' "
    "(gunicorn runs on Unix only)"
)


def run_gunicorn(
    target: str,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    log_level: str,
    access_log: bool,
    graceful_timeout: float,
) -> int:
    """Serve `target` ("module:attribute") with gunicorn until it stops; return an exit code.

    The target is imported once here, before the workers are forked (so an import
    error is reported at once); a VelociPy app is served through its `app.wsgi`,
    any other object must be a WSGI application itself.

    Args:
        target: Import string of the app, e.g. `"examples.background_tasks:app"`
            (`"module"` alone means `"module:app"`).
        host: Interface to bind.
        port: TCP port to bind.
        workers: Number of worker processes.
        threads: Threads per worker: 1 uses gunicorn's `sync` worker, more the `gthread` one.
        log_level: gunicorn's log level ("critical", "error", "warning", "info", "debug").
        access_log: Whether to log each request (to stderr).
        graceful_timeout: Seconds a stopping worker has to finish its requests and
            drain its background tasks before gunicorn kills it (rounded up:
            gunicorn counts whole seconds).

    Returns:
        0 after a clean stop, gunicorn's exit code otherwise, 1 if gunicorn is
        missing or `target` cannot be loaded.
    """
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # not installed, or a platform without fcntl (Windows)
        print(f"velocipy: {INSTALL_HINT}", file=sys.stderr)
        return 1
    try:
        application = load_wsgi(target)
    except (ImportError, AttributeError, TypeError) as error:
        print(f"velocipy: cannot load {target!r}: {error}", file=sys.stderr)
        return 1
    settings: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "loglevel": log_level,
        "accesslog": "-" if access_log else None,
        "graceful_timeout": math.ceil(graceful_timeout),  # gunicorn takes whole seconds
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }

    class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
        def load_config(self) -> None:
            for key, value in settings.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return application

    try:
        _Server().run()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def load_wsgi(target: str) -> Any:
    """The WSGI application named by `target`: `app.wsgi` for a VelociPy app."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in (attribute or "app").split("."):
        obj = getattr(obj, part)
    wsgi = getattr(obj, "wsgi", None)
    if wsgi is not None and callable(wsgi):
        return wsgi
    if not callable(obj):
        raise TypeError(f"{target} is neither a VelociPy app nor a WSGI application")
    return obj


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: tell the WSGI adapter which worker runs it (its deadlines, its signals)."""
    from velocipy.adapters import _wsgi_process

    _wsgi_process.find_server(worker)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: drain background tasks before the worker process ends."""
    from velocipy.adapters import _wsgi_process

    _wsgi_process.shutdown()
