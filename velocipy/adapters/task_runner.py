"""The bounded task runner: runs the rest of exchanges (their background tasks) on threads.

The WSGI adapter hands an exchange here once its response has been sent
completely. A pool of daemon threads picks exchanges off a bounded queue and
drives each to its end with the sync driver: the request's tasks in order, then
its dependencies' cleanup. Async tasks run on the shared event-loop thread
while the runner thread waits for them.

Jobs whose tasks are all async run on the event loop instead (the async
driver, with any sync cleanup in a thread): awaiting there holds no thread.

Limits and policy:

- Up to `threads` threads run exchanges; an exchange's tasks run one after
  another on one thread, so a request's tasks keep their order. Threads start
  on demand and stop after `idle_timeout` seconds without work. The first
  starts with the first exchange; more start only when exchanges wait while
  some thread has been busy with one exchange for `SLOW` seconds, or while
  exchanges have been waiting without a break for `SLOW` seconds (the threads
  are not keeping up, however short each task is), and then one for each
  waiting exchange (up to the cap). That is checked at each submission, and
  `SLOW` seconds after one that found the threads busy. So quick tasks in a
  short burst keep one thread (more would only contend for the GIL and cost a
  thread switch each), while a steady stream of short tasks that one thread
  cannot keep up with, and tasks that wait on slow I/O, get parallelism up to
  the cap. The drain at exit starts every thread the backlog can use at once.
  (A blocked thread costs about 17 KiB of memory; the cap is there because
  CPU-bound tasks gain nothing from more threads and take the GIL from the
  server's threads.)
- `queue_size` exchanges may wait for a thread. A waiting exchange holds its
  request (head, parsed parameters, body): about 4.5 KiB for a small JSON
  request with a browser's headers, so the default of 10,000 is a burst buffer
  of about 45 MiB. When the queue is full, the exchange runs right away in the
  submitting thread (the server's), which slows that server thread to the
  tasks' pace: backpressure rather than loss. A warning says so (at most one
  every `WARN_EVERY` seconds, with a count). To refuse tasks instead, set the
  app's `max_pending_tasks`: the core then marks the excess abandoned and logs
  each one.
- The app's `max_tasks_in_flight` (tasks pending or running, counted
  together; 1,000 by default) comes first: once a submission leaves the app at
  it, the runner is `paused`, and the adapter makes each server thread wait in
  `wait_for_room` before it serves its next request, until tasks finish.
- `drain(deadline)` (at process exit, or at the deadline itself: see
  `_wsgi_process`) stops taking new work, waits until every queued and running
  exchange is done or `deadline` passes, then logs by name every task it
  abandons: the tasks of exchanges never started, the task still running (a
  thread cannot be interrupted; it dies with the process) and those after it,
  which are marked abandoned so the exchange skips them. Work submitted after
  the deadline (a request the server was still finishing) is abandoned by name
  too; before it, it runs in the submitting thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.to_thread

from velocipy.adapters._drive import RunSync, call_now, drive_async, drive_sync
from velocipy.adapters._wsgi_loop import LoopStopped, LoopThread
from velocipy.core import Call, Exchange, Task
from velocipy.core._registry import TaskRegistry
from velocipy.core._tasks import TaskState, log_abandoned

logger = logging.getLogger("velocipy")

RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]

#: Seconds between two "queue full" warnings.
WARN_EVERY = 5.0

#: Defaults: the most runner threads, exchanges that may wait for one, and how long an
#: idle thread stays (see the module docstring for why these sizes).
DEFAULT_THREADS = 64
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_IDLE_TIMEOUT = 60.0

#: Seconds between two looks at the task counts while a server thread waits for room.
ROOM_RECHECK = 0.5

#: Seconds one exchange must have kept a thread busy before waiting ones get more threads.
SLOW = 0.1


def _no_body(limit: int) -> bytes:  # pragma: no cover - the body was read before Respond
    raise RuntimeError("the request body was already read")


async def _no_body_async(limit: int) -> bytes:  # pragma: no cover
    raise RuntimeError("the request body was already read")


class Job:
    """The rest of one exchange after its response: its tasks, then its dependencies' cleanup.

    The tasks' own states (`Task.state`) tell the drain which one is running
    and which have not started.
    """

    __slots__ = ("exchange", "tasks")

    def __init__(self, exchange: Exchange, tasks: Sequence[Task]) -> None:
        self.exchange = exchange
        self.tasks = tasks

    @property
    def label(self) -> str:
        """The request, for logs: method and path."""
        head = self.exchange.head
        return f"{head.method} {head.path}"

    @property
    def all_async(self) -> bool:
        """Whether every task is async: then the whole job can live on the event loop."""
        for task in self.tasks:  # a loop, not all(<generator>): this runs per request
            if not task.is_async:
                return False
        return True

    async def run_async(self, run_sync: RunSync) -> None:
        """Like `run`, on the event loop; a cancellation (the drain) is thrown into the
        exchange, so the core logs the interrupted task and the abandoned ones."""
        exchange = self.exchange
        try:
            await drive_async(
                exchange, exchange.send(None), read_body=_no_body_async, run_sync=run_sync
            )
        except Exception:  # the flow logs task failures itself; this would be a bug
            logger.exception("Running the background tasks of %s failed", self.label)

    def run(self, run_coroutine: RunCoroutine) -> None:
        """Resume the exchange (its response was sent) and drive it to its end here."""
        exchange = self.exchange
        try:
            drive_sync(
                exchange, exchange.send(None), read_body=_no_body, run_coroutine=run_coroutine
            )
        except Exception:  # the flow logs task failures itself; this would be a bug
            logger.exception("Running the background tasks of %s failed", self.label)
        except asyncio.CancelledError:
            pass  # the event loop stopped at exit; the core logged the tasks it cut off

    def abandon(self) -> None:
        """Log every task of this job that has not finished and will not: by name.

        A task still running is logged too (its thread cannot be interrupted and
        dies with the process); those not started are marked abandoned, so the
        exchange skips them if its thread gets that far.
        """
        tasks = self.tasks
        route = next((task.route for task in tasks if task.route), self.label)
        running = [task for task in tasks if task.state is TaskState.RUNNING]
        log_abandoned(running, route, "still running at the drain deadline; cut off at exit")
        log_abandoned(tasks, route, "the server stopped first")


def _interrupted(job: Job, error: BaseException) -> None:
    """A job's flow was stopped by `error`: quiet for the event loop's cancellation at
    exit (the core logged the tasks it cut off), logged for anything else."""
    if not isinstance(error, asyncio.CancelledError):
        logger.error("Running the background tasks of %s stopped", job.label, exc_info=error)


class TaskRunner:
    """A bounded pool of threads running exchanges' background tasks; drained at exit.

    Args:
        loop: The event-loop thread async tasks run on.
        threads: The most threads running tasks (exchanges run in parallel, up to
            this); they start on demand.
        queue_size: How many exchanges may wait for a thread (and how many
            all-async ones may run on the loop) before the policy for a full
            queue applies: run in the submitting thread.
        idle_timeout: Seconds a thread without work waits before it stops.
        name: Prefix of the threads' names.
    """

    def __init__(
        self,
        loop: LoopThread,
        *,
        threads: int = DEFAULT_THREADS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        name: str = "velocipy-tasks",
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        self.threads = threads
        self.queue_size = queue_size
        self.idle_timeout = idle_timeout
        self._loop = loop
        self._run_coroutine = loop.run_coroutine
        self._name = name
        self._new_lock()
        self._reset()
        _RUNNERS.add(self)

    def _new_lock(self) -> None:
        # Submitting and finishing take the plain lock (a Condition's `with` costs two
        # Python-level calls each time); only the drain waits on the condition, so it
        # is notified only while draining.
        self._lock = threading.Lock()
        self._state = threading.Condition(self._lock)

    def _reset(self) -> None:
        # A SimpleQueue is a fraction of Queue's cost; `_queued` bounds it instead.
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._queued = 0
        #: Threads waiting for an exchange (or started to take one): each queued
        #: exchange needs one, else a new thread starts (up to the cap).
        self._idle = 0
        self._started = 0  # threads ever started, for their names
        self._rechecking = False  # a timer will look at the queue again
        #: Since when (`time.monotonic()`) exchanges have waited for a thread without a
        #: break, or None when none waits: a backlog older than SLOW adds threads.
        self._backlog_since: float | None = None
        self._workers: set[threading.Thread] = set()
        #: Exchanges running on threads, with when each started (`time.monotonic()`).
        self._running: dict[Job, float] = {}
        #: Jobs living on the event loop, with the asyncio task driving each.
        self._on_loop: dict[Job, asyncio.Task[Any]] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self._pending = 0  # queued + running, threads and loop
        self._draining = False
        self._deadline = float("inf")  # the drain's, once it has begun
        self._closed = False
        self._overflow = 0
        self._last_warning = -WARN_EVERY
        #: True while the app's tasks in flight are at its bound: see `wait_for_room`.
        self.paused = False
        self._room_waiters = 0

    @property
    def pending(self) -> int:
        """Exchanges queued or running right now."""
        return self._pending

    @property
    def thread_count(self) -> int:
        """Runner threads alive right now."""
        return len(self._workers)

    def submit(self, exchange: Exchange, tasks: Sequence[Task]) -> None:
        """Run the rest of `exchange` (its response was sent) on a runner thread.

        When every task is async the exchange runs on the event loop instead, where
        waiting holds no thread. Returns at once, unless the queue is full or the
        runner is draining: then the exchange runs here, in the calling thread,
        before this returns.
        """
        job = Job(exchange, tasks)
        for task in tasks:  # `job.all_async`, inline: this runs on every request
            if not task.is_async:
                break
        else:
            if not self._submit_to_loop(job):
                self._run_here(job)
            return
        with self._lock:
            if not self._draining and self._queued < self.queue_size:
                self._queued += 1
                self._pending += 1
                self._queue.put(job)
                if self._queued > self._idle and len(self._workers) < self.threads:
                    self._add_workers()
                return
        self._run_here(job)

    def _run_here(self, job: Job) -> None:
        """No room for `job`, or the runner is draining: run it in the calling thread.

        Past the drain's deadline its tasks are abandoned by name instead (the
        process is about to be killed; run here they would die unnamed): the
        exchange then only runs its dependencies' cleanup.
        """
        if not self._draining:
            self._overflowed()
        elif time.monotonic() >= self._deadline:
            job.abandon()
        job.run(self._run_coroutine)

    def wait_for_room(self, registry: TaskRegistry) -> None:
        """Block until `registry` has room for more tasks in flight (a server thread's wait)."""
        with self._state:
            self._room_waiters += 1
            try:
                while not registry.has_room():
                    # Woken as exchanges finish; tasks abandoned elsewhere are seen
                    # at the next look.
                    self._state.wait(ROOM_RECHECK)
            finally:
                self._room_waiters -= 1
            self.paused = False

    def _submit_to_loop(self, job: Job) -> bool:
        with self._state:
            if self._draining or len(self._on_loop) >= self.queue_size:
                return False
            self._pending += 1
        try:
            self._loop.spawn(self._run_on_loop(job))
        except LoopStopped:
            with self._state:
                self._pending -= 1
            return False
        return True

    def _overflowed(self) -> None:
        with self._state:
            self._overflow += 1
            now = time.monotonic()
            if now - self._last_warning < WARN_EVERY:
                return
            count, self._overflow, self._last_warning = self._overflow, 0, now
        logger.warning(
            "Background task queue full (%d waiting, %d threads busy): ran the tasks of %d "
            "request(s) in the server thread instead, which delays its next request",
            self.queue_size,
            self.threads,
            count,
        )

    async def _run_on_loop(self, job: Job) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._state:
            closed = self._closed
            if not closed:
                self._on_loop[job] = task
        try:
            if closed:  # spawned just as the drain gave up
                job.abandon()
                return
            await job.run_async(self._run_sync)
        except asyncio.CancelledError:
            pass  # the drain cancelled it; the core has logged what it interrupted
        finally:
            with self._lock:
                self._on_loop.pop(job, None)
                self._pending -= 1
                if self._draining or self._room_waiters:
                    self._state.notify_all()

    async def _run_sync(self, call: Call) -> Any:
        """A sync call of a loop-resident job (a `yield` dependency's cleanup): in a thread."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(
            call_now, call, limiter=self._limiter, abandon_on_cancel=True
        )

    def _add_workers(self) -> None:
        """Exchanges wait for a thread (lock held): start the first thread, or, if the
        running tasks are slow, one per waiting exchange, up to the cap."""
        if self._workers:
            slow_since = time.monotonic() - SLOW
            backlog_since = self._backlog_since
            if backlog_since is None:
                self._backlog_since = backlog_since = slow_since + SLOW
            for started in self._running.values():
                if started < slow_since:
                    break
            else:
                if backlog_since < slow_since:
                    # Many short exchanges, none slow, but the queue has not emptied
                    # for SLOW seconds: one thread is not keeping up.
                    self._grow()
                    return
                # The threads are on tasks that have not been slow so far: they will
                # likely get to the queue soon. Look again in SLOW seconds (one timer
                # at a time), in case no other submission comes to do it.
                if not self._rechecking:
                    self._rechecking = True
                    timer = threading.Timer(SLOW, self._recheck)
                    timer.daemon = True
                    timer.start()
                return
        self._grow()

    def _grow(self) -> None:
        """Start one thread per waiting exchange, up to the cap (lock held)."""
        while self._queued > self._idle and len(self._workers) < self.threads:
            self._start_worker()
        if self._queued <= self._idle:
            self._backlog_since = None

    def _recheck(self) -> None:
        with self._lock:
            self._rechecking = False
            if (
                not self._draining
                and self._queued > self._idle
                and len(self._workers) < self.threads
            ):
                self._add_workers()

    def _start_worker(self) -> None:
        """One more thread, counted idle at once so the next submission sees it (state held)."""
        worker = threading.Thread(
            target=self._work, name=f"{self._name}-{self._started}", daemon=True
        )
        self._started += 1
        self._idle += 1
        self._workers.add(worker)
        worker.start()

    def after_fork(self) -> None:
        """In a forked child: the threads stayed in the parent, and so does its queue."""
        self._new_lock()
        self._reset()

    def _work(self) -> None:
        jobs = self._queue
        lock = self._lock
        run_coroutine = self._run_coroutine
        me = threading.current_thread()
        while True:
            try:
                job = jobs.get(timeout=self.idle_timeout)
            except queue.Empty:
                with lock:
                    # Stop, unless that would leave a queued exchange without a thread
                    # (it was queued while this one was timing out).
                    if self._queued < self._idle:
                        self._idle -= 1
                        self._workers.discard(me)
                        return
                continue
            if job is None:  # the drain is over
                with lock:
                    self._idle -= 1
                    self._workers.discard(me)
                return
            with lock:
                self._queued -= 1
                self._idle -= 1
                closed = self._closed
                if not closed:
                    self._running[job] = time.monotonic()
            if closed:  # taken off the queue just as the drain gave up
                job.abandon()
                with lock:
                    self._pending -= 1
                    self._idle += 1
                continue
            exchange = job.exchange
            try:  # `job.run`, inline: one Python call less per request
                drive_sync(
                    exchange, exchange.send(None), read_body=_no_body, run_coroutine=run_coroutine
                )
            except Exception:  # the flow logs task failures itself; this would be a bug
                logger.exception("Running the background tasks of %s failed", job.label)
            except BaseException as error:
                # A task's own BaseException is contained by the driver; what comes here
                # is a stop (the event loop cancelled an async task at exit), which the
                # core has logged. Either way this thread lives on for the next job.
                _interrupted(job, error)
            finally:
                with lock:
                    del self._running[job]
                    self._pending -= 1
                    self._idle += 1
                    if self._queued <= self._idle:
                        self._backlog_since = None
                    if self._draining or self._room_waiters:
                        self._state.notify_all()

    def drain(self, deadline: float) -> bool:
        """Finish queued and running exchanges until `deadline` (`time.monotonic()`).

        Afterwards the runner takes no more work: late submissions run in the
        caller, or, past the deadline, are abandoned. Tasks not finished by the
        deadline are logged by name.

        Returns:
            True if everything finished; False if some tasks were abandoned.
        """
        with self._state:
            self._draining = True
            self._deadline = deadline
            # Every thread the backlog can use, now: finishing within the deadline
            # matters more at exit than sparing the GIL a few thread switches.
            self._grow()
            while self._pending and time.monotonic() < deadline:
                self._state.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            if not self._pending:
                self._stop_workers()
                return True
            running = list(self._running)
            waiting: list[Job] = []
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    waiting.append(job)
            self._queued -= len(waiting)
            self._pending -= len(waiting)  # they will never run
            self._closed = True
            on_loop = list(self._on_loop.values())
        for job in running + waiting:
            job.abandon()
        # Cancelling is thrown into each exchange, so the core logs the interrupted
        # task and the abandoned ones; wait a moment for those logs.
        for task in on_loop:
            self._loop.call_soon(task.cancel)
        with self._state:
            until = time.monotonic() + 1.0
            while self._on_loop and time.monotonic() < until:
                self._state.wait(0.05)
        return False

    def _stop_workers(self) -> None:
        for _ in range(len(self._workers)):
            self._queue.put(None)


#: Every runner in this process, for the drain at exit.
_RUNNERS: weakref.WeakSet[TaskRunner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runner in list(_RUNNERS):
        runner.after_fork()


# gunicorn forks its workers; with --preload the app (and its runner) exists before.
os.register_at_fork(after_in_child=_after_fork_in_child)


def drain_all(deadline: float) -> bool:
    """Drain every task runner of this process until `deadline`; True if nothing was abandoned."""
    finished = True
    for runner in list(_RUNNERS):
        finished = runner.drain(deadline) and finished
    return finished
