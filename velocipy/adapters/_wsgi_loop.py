"""The one event-loop thread a WSGI process shares for async user code.

WSGI servers call the application from plain threads, so async handlers,
dependencies, tasks and stream iterators run on a single event loop in a daemon
thread, started on first use and stopped at process exit. One loop per process
(not one per server thread) means async resources created there, such as a
client pool, are usable by every request.

The loop is run by `anyio.run` behind an anyio `BlockingPortal`, which starts and
stops it. Handing a coroutine over does not go through `portal.call`, though:
that costs two cross-thread round trips (about 240 µs here), while scheduling the
coroutine with `call_soon_threadsafe` and waiting on a bare lock costs one
(about 50 µs). Under gunicorn, where a whole request costs about 500 µs, that
difference is most of the adapter's overhead on async routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from velocipy.adapters._carry import guarded, unwrap_carried

logger = logging.getLogger("velocipy")


class LoopStopped(RuntimeError):
    """The loop thread was stopped (the process is exiting); no more coroutines run."""


class LoopThread:
    """An event loop in a daemon thread, started lazily, that runs coroutines for other threads.

    `run_coroutine(coro)` blocks the calling thread until `coro` finishes on the
    loop and returns its result (or raises its exception).
    """

    def __init__(self, name: str = "velocipy-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        _LOOPS.add(self)

    @property
    def running(self) -> bool:
        """Whether the loop thread has been started in this process and not stopped."""
        return self._loop is not None and not self._stopped

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run `coroutine` on the loop; block until it is done; return or raise its outcome."""
        loop = self._loop
        if loop is None:
            loop = self._start()
        done = threading.Lock()
        done.acquire()
        outcome: list[asyncio.Task[Any]] = []

        def finished(task: asyncio.Task[Any]) -> None:
            outcome.append(task)
            done.release()

        def begin() -> None:
            loop.create_task(guarded(coroutine)).add_done_callback(finished)

        try:
            loop.call_soon_threadsafe(begin)
        except RuntimeError:  # the loop closed under us
            coroutine.close()
            raise LoopStopped("the event loop thread has stopped") from None
        done.acquire()
        return unwrap_carried(outcome[0].result)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Start `coroutine` as a task on the loop and return at once (it reports by itself)."""
        loop = self._loop
        if loop is None:
            loop = self._start()
        try:
            loop.call_soon_threadsafe(loop.create_task, _reported(coroutine))
        except RuntimeError:  # the loop closed under us
            coroutine.close()
            raise LoopStopped("the event loop thread has stopped") from None

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` on the loop thread soon (nothing happens if the loop has stopped)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    def after_fork(self) -> None:
        """In a forked child: the loop's thread stayed in the parent; start afresh when needed."""
        self._lock = threading.Lock()
        self._loop = self._portal = self._thread = None
        self._stopped = False

    def portal(self) -> BlockingPortal:
        """The portal of the running loop (started if needed), for context managers."""
        self._start()
        portal = self._portal
        if portal is None:  # pragma: no cover - stopped concurrently
            raise LoopStopped("the event loop thread has stopped")
        return portal

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._stopped:
                raise LoopStopped("the event loop thread has stopped")
            if self._loop is not None:
                return self._loop
            ready = threading.Event()
            failure: list[BaseException] = []

            async def serve() -> None:
                async with BlockingPortal() as portal:
                    self._portal = portal
                    self._loop = asyncio.get_running_loop()
                    ready.set()
                    await portal.sleep_until_stopped()

            def main() -> None:
                try:
                    anyio.run(serve)
                except BaseException as error:  # pragma: no cover - reported to the starter
                    failure.append(error)
                finally:
                    ready.set()

            thread = threading.Thread(target=main, name=self._name, daemon=True)
            thread.start()
            ready.wait()
            if self._loop is None:  # pragma: no cover - anyio.run failed to start
                raise RuntimeError("the event loop thread failed to start") from (
                    failure[0] if failure else None
                )
            self._thread = thread
            return self._loop

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (letting tasks the portal runs finish) and join its thread."""
        with self._lock:
            portal, thread = self._portal, self._thread
            self._stopped = True
            if portal is None or thread is None:
                return
            self._loop = self._portal = self._thread = None
        try:
            portal.call(portal.stop)
        except RuntimeError:  # already stopped
            return
        thread.join(timeout)


async def _reported(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Await a spawned `coroutine`: whatever escapes it is logged, and the loop goes on."""
    try:
        await coroutine
    except (SystemExit, KeyboardInterrupt):
        logger.exception("A coroutine on the event-loop thread raised; the loop goes on")


_LOOPS: weakref.WeakSet[LoopThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for loop in list(_LOOPS):
        loop.after_fork()


# gunicorn forks its workers; with --preload a loop may have started in the parent.
os.register_at_fork(after_in_child=_after_fork_in_child)
