"""Knowing gunicorn from inside a worker: its deadlines, and when it was told to stop.

The drain at exit must end before gunicorn's master kills the worker: within
`graceful_timeout` of a stop signal, and within `timeout` of the worker's last
heartbeat when it recycles itself after `max_requests`. This module finds the
gunicorn worker running this process (the bound method gunicorn installs as the
SIGTERM handler belongs to it), derives the drain budget from its settings, and
wraps its stop-signal handlers so the budget counts from the signal, not from
the moment the worker has finished its last request.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

#: Signals after which a gunicorn worker stops: graceful (TERM) and quick (INT, QUIT).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def current_worker() -> Any | None:
    """The gunicorn worker object of this process, or None if this is not one."""
    handler = signal.getsignal(signal.SIGTERM)
    worker = getattr(handler, "__self__", None)
    if worker is None or not type(worker).__module__.startswith("gunicorn.workers"):
        return None
    if getattr(worker, "cfg", None) is None:
        return None
    return worker


def drain_budget(worker: Any) -> float:
    """Seconds the drain may take after a stop: the tighter of gunicorn's two deadlines,
    less a margin (a tenth, at least one second) for exiting and logging."""
    cfg = worker.cfg
    limit = float(cfg.graceful_timeout)
    timeout = float(getattr(cfg, "timeout", 0) or 0)
    if timeout > 0:
        limit = min(limit, timeout)
    if math.isinf(limit) or limit <= 0:
        return 0.0
    return max(0.0, limit - max(1.0, limit / 10))


def watch_stop_signals(worker: Any, on_stop: Callable[[float], None]) -> bool:
    """Call `on_stop(time.monotonic())` when the worker gets a stop signal, then let
    gunicorn handle it as before. Only possible from the main thread; returns whether
    the handlers were wrapped."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if getattr(previous, "__self__", None) is not worker:
            continue  # not gunicorn's handler (or already wrapped)
        signal.signal(signum, _chained(previous, on_stop))
    return True


def _chained(previous: Any, on_stop: Callable[[float], None]) -> Callable[[int, Any], None]:
    def handle(signum: int, frame: Any) -> None:
        on_stop(time.monotonic())
        previous(signum, frame)

    return handle
