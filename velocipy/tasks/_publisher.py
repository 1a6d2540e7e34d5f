"""One publishing thread per backend and process: many requests' batches, one round trip.

Publishing each request's batch by itself costs a hop to a worker thread and a
round trip to the broker per request. A `BatchPublisher` instead keeps one
thread that takes every batch waiting when it is free and hands them to the
backend's `send` together, so under load one round trip (a Redis pipeline)
carries the batches of many requests, and the event loop only queues a batch
and awaits a future: it never waits on the broker.

What each caller keeps:

- its own deadline: the wait ends with `TaskTimedOut` when the backend's
  `deadline` passes, whatever the thread is doing (a broker that stopped
  answering holds the thread, never a request);
- its outcome: the thread reports each batch's success or failure to the
  caller that queued it, after the round trip that carried it;
- its order: a batch's messages stay together and in order within one `send`.

A batch whose caller gave up before the thread took it is dropped, so a request
that answered 503 at its deadline leaves nothing behind; one already being sent
when the deadline passed may still reach the broker (at least once: the docs say
so). The thread starts on first use and again after a fork, so a server that
forks its workers after importing the app gets one thread per worker.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from os import getpid
from typing import Any, Protocol

import anyio

from velocipy.core._backends import TaskBackend
from velocipy.core._envelopes import Envelope
from velocipy.core._errors import ContainedBaseException, TaskTimedOut
from velocipy.core._events import Call
from velocipy.core._queue import Settlement

logger = logging.getLogger("velocipy")

#: Batches one `send` may carry at most; the rest wait for the next round trip.
MAX_BATCHES = 512


class Pending:
    """One caller's batch on its way: its envelopes, how to wake the caller, the outcome."""

    __slots__ = (
        "envelopes",
        "loop",
        "future",
        "event",
        "settlement",
        "settled",
        "error",
        "abandoned",
        "sent",
    )

    def __init__(self, envelopes: Sequence[Envelope]) -> None:
        self.envelopes = envelopes
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[None] | None = None
        self.event: threading.Event | None = None
        #: A detached batch's caller, who is not waiting: told on its loop instead.
        self.settlement: Settlement | None = None
        #: Set on the loop once a detached batch was settled (sent, failed or expired).
        self.settled = False
        #: Why it failed, set by the thread before it wakes the caller.
        self.error: BaseException | None = None
        #: Set by the caller that stopped waiting (deadline, cancellation): not sent
        #: if the thread has not taken it yet.
        self.abandoned = False
        #: Set by a `send` that sends batches one by one, for each it sent: a retry
        #: after a later one failed leaves it out.
        self.sent = False


#: A bare instance, its fields set by the caller (`apublish_detached`).
_new_pending = object.__new__

Send = Callable[[Sequence[Pending]], None]


class LoopSender(Protocol):
    """A backend's way to send batches from an event loop itself, without the thread.

    `send(pendings, done)` starts one round trip on the loop for the batches it can
    send and returns the ones it cannot (None when it took them all), which go to
    the thread; unless it took none, it calls `done(error)` once, on the loop, when
    the engine has answered (`error` None) or the round trip failed. `reset()` drops
    its connection (nobody waits for the round trip in flight any more: the broker
    stopped answering); `close()` releases it.
    """

    def send(
        self, pendings: list[Pending], done: Callable[[BaseException | None], None]
    ) -> list[Pending] | None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


_STOP = object()


class BatchPublisher:
    """Queue batches from any thread or event loop; one thread sends them.

    Args:
        send: Sends every batch of the list in one go, or raises (all of them
            failed). It may set `pending.error` on some to fail only those.
        retryable: Errors of `send` worth another attempt (connection errors).
        retries: Attempts after the first, `backoff` seconds apart, growing.
        name: The thread's name.
        loop_sender: Makes, per event loop, a `LoopSender` that sends from the loop
            itself; None (or a None answer for a loop): every batch goes to the thread.
    """

    def __init__(
        self,
        send: Send,
        *,
        retryable: tuple[type[BaseException], ...] = (),
        retries: int = 2,
        backoff: float = 0.1,
        name: str = "velocipy-publisher",
        loop_sender: Callable[[asyncio.AbstractEventLoop], LoopSender | None] | None = None,
    ) -> None:
        self._send = send
        self._loop_sender = loop_sender
        self._retryable = retryable
        self._retries = retries
        self._backoff = backoff
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        #: The deadline watch of each event loop (and deadline) that has published, and
        #: the last one used, which is nearly always the one wanted.
        self._watches: dict[tuple[asyncio.AbstractEventLoop, float], _Watch] = {}
        self._watch: _Watch | None = None

    # -- the callers' side --------------------------------------------------------------------

    async def apublish(self, envelopes: Sequence[Envelope], deadline: float) -> None:
        """Queue `envelopes` and wait on this event loop until they are sent; raise
        `TaskTimedOut` after `deadline` seconds, or what sending them raised."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): wait in a thread instead
            await anyio.to_thread.run_sync(
                self.publish, envelopes, deadline, abandon_on_cancel=True
            )
            return
        pending = Pending(envelopes)
        pending.loop = loop
        future = pending.future = loop.create_future()
        if self._pid != getpid():  # first use, or a forked child: start our own thread
            self._start()
        watch = self._watch
        if watch is None or watch.loop is not loop or watch.deadline != deadline:
            watch = self._watch = self._watch_for(loop, deadline)
        watch.add(pending, loop.time() + deadline)
        try:
            await future
        except BaseException:
            pending.abandoned = True  # the deadline passed, or the request was cancelled
            raise

    async def apublish_detached(
        self, envelopes: Sequence[Envelope], deadline: float, settlement: Settlement
    ) -> bool:
        """Queue `envelopes` and return True at once (see `detach`).

        Off asyncio (trio) there is no loop to tell later: it waits as `apublish`
        does and returns False (the caller settles the tasks).
        """
        if self.detach(envelopes, deadline, settlement):
            return True
        await anyio.to_thread.run_sync(self.publish, envelopes, deadline, abandon_on_cancel=True)
        return False

    def detach(
        self, envelopes: Sequence[Envelope], deadline: float, settlement: Settlement
    ) -> bool:
        """Queue `envelopes` and return True, on the thread of the running event loop:
        `settlement` is told on this loop when they are sent, or when sending failed or
        passed `deadline` (then its failure flow is driven here: logging and the app's
        error hooks). False, queuing nothing, where no asyncio loop runs in this thread.

        Not a coroutine: the core calls it in the request's flow itself (see
        `TaskBackend.detach`), so a detached publish costs no effect, no coroutine and
        no resumption of the flow's generators.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        # `Pending(envelopes)`, built bare with its loop and settlement: calling the class
        # cost ~1,500 instructions more, per request.
        pending = _new_pending(Pending)
        pending.envelopes = envelopes
        pending.loop = loop
        pending.future = pending.event = pending.error = None
        pending.settlement = settlement
        pending.settled = pending.abandoned = pending.sent = False
        if self._pid != getpid():  # first use, or a forked child: start our own thread
            self._start()
        watch = self._watch
        if watch is None or watch.loop is not loop or watch.deadline != deadline:
            watch = self._watch = self._watch_for(loop, deadline)
        # `watch.add(pending, loop.time() + deadline)`, inlined: a call less per request.
        gathered = watch._gathered
        gathered.append(pending)
        if len(gathered) == 1:  # the first of this pass: hand them over at its end
            loop.call_soon(watch._hand_over)
        expires = loop.time() + deadline
        watch._queue.append((expires, pending))
        if not watch._armed:
            watch._armed = True
            loop.call_at(expires, watch._check)
        return True

    def publish(self, envelopes: Sequence[Envelope], deadline: float) -> None:
        """Queue `envelopes` and block this thread until they are sent (see `apublish`)."""
        pending = Pending(envelopes)
        event = pending.event = threading.Event()
        self._submit([pending])
        if not event.wait(deadline):
            pending.abandoned = True
            raise TaskTimedOut(deadline)
        if pending.error is not None:
            raise pending.error

    def close(self) -> None:
        """Send what is queued, then stop the thread (within a few seconds); close the
        event loops' own connections."""
        for watch in list(self._watches.values()):
            watch.close()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._queue.put(_STOP)
            thread.join(5)

    def _watch_for(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Watch:
        watch = self._watches.get((loop, deadline))
        if watch is None:
            for key in [key for key in self._watches if key[0].is_closed()]:
                del self._watches[key]  # loops come and go (a test client's, say)
            watch = self._watches[loop, deadline] = _Watch(loop, deadline, self)
        return watch

    def _submit(self, pendings: list[Pending]) -> None:
        if self._pid != getpid():  # first use, or a forked child: start our own thread
            self._start()
        self._queue.put(pendings)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.SimpleQueue()  # a parent's leftovers are the parent's
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    # -- the thread's side --------------------------------------------------------------------

    def _run(self) -> None:
        source = self._queue
        while True:
            first = source.get()
            stop = first is _STOP
            taken: list[Pending] = [] if stop else list(first)
            # Everything that queued up during the last round trip goes in this one.
            # `empty()` first: this thread alone takes from the queue, and an Empty
            # raised per round trip cost more than the rest of this loop.
            while not stop and len(taken) < MAX_BATCHES and not source.empty():
                item = source.get_nowait()
                if item is _STOP:
                    stop = True
                else:
                    taken.extend(item)
            if taken:
                self._flush(taken)
            if stop:
                return

    def _flush(self, taken: list[Pending]) -> None:
        live = [pending for pending in taken if not pending.abandoned]
        attempt = 0
        while live:
            try:
                self._send(live)
            except self._retryable as error:
                if attempt >= self._retries:
                    _fail(live, error)
                    break
                attempt += 1
                time.sleep(self._backoff * attempt)
                live = [p for p in live if not (p.abandoned or p.sent)]
            except BaseException as error:  # reported to each caller, never lost here
                _fail(live, error)
                break
            else:
                break
        _wake(taken, self._settle_on_loop)

    def _settle_on_loop(self, pendings: Sequence[Pending]) -> None:
        """On the callers' loop: settle `pendings` (the thread's answer), then drop the
        answered callers from the deadline queues of that loop (see `_Watch._trim`)."""
        _settle(pendings)
        loop = pendings[0].loop
        # A copy (one C call): another thread's loop may add a watch meanwhile.
        for watch in list(self._watches.values()):
            if watch.loop is loop:
                watch._trim()


def _fail(pendings: Sequence[Pending], error: BaseException) -> None:
    for pending in pendings:
        if pending.error is None:
            pending.error = error


def _wake(pendings: Sequence[Pending], settle: Callable[[Sequence[Pending]], None]) -> None:
    """Tell each caller its outcome: one wake-up per event loop, not one per request
    (`settle(group)` called on each loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Pending]] = {}
    for pending in pendings:
        if pending.loop is not None:
            group = by_loop.get(pending.loop)
            if group is None:
                by_loop[pending.loop] = [pending]
            else:
                group.append(pending)
        elif pending.event is not None:
            pending.event.set()
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, group)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            _orphaned(group)


def _orphaned(pendings: Sequence[Pending]) -> None:
    """On the thread: detached batches that failed after their event loop closed (a
    server that stopped meanwhile) cannot be settled there; say so here rather than
    lose them silently."""
    for pending in pendings:
        settlement = pending.settlement
        if settlement is not None and pending.error is not None and not pending.settled:
            logger.error(
                "Publishing background tasks (%s) for %s failed (%r) after their event "
                "loop had closed; they will not run",
                ", ".join(envelope.name for envelope in pending.envelopes),
                settlement.route,
                pending.error,
            )


def _settle(pendings: Sequence[Pending]) -> None:
    """On the callers' loop: resolve their futures, or settle their detached batches."""
    for pending in pendings:
        pending.envelopes = ()  # sent or failed: the watch may hold the rest a while
        settlement = pending.settlement
        if settlement is not None:
            # Let go of the request's tasks: the watch may hold the entry a while.
            pending.settlement = None
            if not pending.settled:  # else it expired at its deadline: reported then
                pending.settled = True
                if pending.error is None:
                    settlement.published()
                else:
                    _report(settlement.failed(pending.error))
            continue
        future = pending.future
        if future is None or future.done():
            continue
        if pending.error is None:
            future.set_result(None)
        else:
            future.set_exception(pending.error)


class _Watch:
    """One event loop's callers of a publisher: their hand-over and their deadlines.

    The batches queued during one pass of the loop are sent together, in one
    hand-over at the end of the pass: to the backend's `LoopSender` when it has one
    for this loop (no thread at all), else to the thread, in one wake-up of it (and
    one GIL hand-off) for all of them, not one each.

    On the loop, one round trip is in flight at a time, as on the thread: batches
    queued meanwhile go together in the next, and one whose caller gave up before
    then is never sent. A round trip failing on a connection error is tried again,
    `retries` times, `backoff` seconds apart, growing (a timer, not a sleep); when
    every caller of the round trip in flight has passed its deadline, the sender's
    connection is dropped (the broker stopped answering) and the next round trip
    connects afresh.

    A timer per request would cost a heap push and a cancel each (with Python-level
    comparisons in asyncio's heap); one deadline for all the callers of a watch means
    they expire in the order they came, so a queue and a timer for its head suffice.
    Callers answered in time are dropped when the timer next passes them.
    """

    __slots__ = (
        "loop",
        "deadline",
        "_publisher",
        "_gathered",
        "_queue",
        "_armed",
        "_sender",
        "_flying",
        "_next",
        "_attempt",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline: float, publisher: BatchPublisher
    ) -> None:
        self.loop = loop
        self.deadline = deadline
        self._publisher = publisher
        self._gathered: list[Pending] = []
        self._queue: collections.deque[tuple[float, Pending]] = collections.deque()
        self._armed = False
        make = publisher._loop_sender
        self._sender = make(loop) if make is not None else None
        #: The batches of the round trip in flight on the loop (None: none in flight).
        self._flying: list[Pending] | None = None
        #: Batches waiting for it to end.
        self._next: list[Pending] = []
        self._attempt = 0

    def add(self, pending: Pending, expires: float) -> None:
        """Take `pending` (its caller waits until `expires`); `apublish_detached` inlines
        this."""
        gathered = self._gathered
        gathered.append(pending)
        if len(gathered) == 1:  # the first of this pass: hand them over at its end
            self.loop.call_soon(self._hand_over)
        self._queue.append((expires, pending))
        if not self._armed:
            self._armed = True
            self.loop.call_at(expires, self._check)

    def _hand_over(self) -> None:
        gathered, self._gathered = self._gathered, []
        if self._sender is None:
            self._publisher._queue.put(gathered)
        elif self._flying is None:
            self._attempt = 0
            self._send(gathered)
        else:
            self._next += gathered

    def _send(self, pendings: list[Pending]) -> None:
        """One round trip on the loop for `pendings` (those the sender cannot take go to
        the thread)."""
        assert self._sender is not None
        if len(pendings) == 1:  # one request's batch (a light load): no list to build
            live = pendings if not pendings[0].abandoned else []
        else:
            live = [pending for pending in pendings if not pending.abandoned]
        if not live:
            self._after()
            return
        self._flying = live
        try:
            rest = self._sender.send(live, self._answered)
        except Exception as error:  # building the messages failed: theirs, not lost
            self._flying = None
            _fail(live, error)
            _settle(live)
            self._after()
            return
        if rest:
            self._publisher._queue.put(rest)
            if len(rest) == len(live):
                self._flying = None
                self._after()
                return
            taken = set(map(id, rest))
            self._flying = [pending for pending in live if id(pending) not in taken]

    def _answered(self, error: BaseException | None) -> None:
        flying = self._flying
        if flying is None:  # cannot happen: one answer per round trip
            return
        if error is not None:
            publisher = self._publisher
            if (
                isinstance(error, publisher._retryable)
                and self._attempt < publisher._retries
                and not all(pending.abandoned for pending in flying)  # someone still waits
            ):
                self._attempt += 1
                self.loop.call_later(publisher._backoff * self._attempt, self._retry)
                return
            _fail(flying, error)
        self._flying = None
        _settle(flying)
        self._trim()
        if self._next:  # batches waited for this round trip
            self._after()

    def _trim(self) -> None:
        """Drop the callers answered at the head of the deadline queue now, not when the
        timer next passes them (a deadline later): a detached caller's entry holds its
        request's tasks, envelopes and settlement, and thousands of requests' worth kept
        two seconds outlive the young generation, so the collector scans them again and
        again (measured: ~5 % of the server's CPU time under load, `perf`)."""
        queue = self._queue
        while queue:
            pending = queue[0][1]
            future = pending.future
            if (not future.done()) if future is not None else not pending.settled:
                return
            queue.popleft()

    def _retry(self) -> None:
        flying, self._flying = self._flying, None
        if flying is not None:
            self._send(flying)

    def _after(self) -> None:
        """A round trip ended: the batches that waited for it go in the next."""
        if self._next and self._flying is None:
            waiting, self._next = self._next, []
            self._attempt = 0
            self._send(waiting)

    def _check(self) -> None:
        self._armed = False
        now = self.loop.time()
        queue = self._queue
        expired = False
        while queue:
            expires, pending = queue[0]
            future = pending.future
            if (not future.done()) if future is not None else not pending.settled:
                if expires > now:
                    break
                _expire(pending, self.deadline)
                expired = True
            queue.popleft()
        if queue:
            self._armed = True
            self.loop.call_at(queue[0][0], self._check)
        flying = self._flying
        if expired and flying and self._sender is not None:
            if all(pending.abandoned for pending in flying):
                self._sender.reset()  # nobody waits for it: the broker stopped answering

    def close(self) -> None:
        """Close the loop's own connection (on its loop, from wherever this is called)."""
        sender = self._sender
        if sender is None or self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            sender.close()
        else:
            try:
                self.loop.call_soon_threadsafe(sender.close)
            except RuntimeError:  # closed meanwhile
                pass


def _expire(pending: Pending, deadline: float) -> None:
    """On the caller's loop, at its deadline: stop waiting."""
    pending.abandoned = True
    if pending.settlement is not None:
        pending.settled = True
        _report(pending.settlement.failed(TaskTimedOut(deadline)))
        return
    future = pending.future
    if future is not None and not future.done():
        future.set_exception(TaskTimedOut(deadline))


#: The reports of failed detached batches being driven, kept from the collector.
_REPORTS: set[asyncio.Task[None]] = set()


def _report(flow: Generator[Call, Any, None]) -> None:
    """On the caller's loop: drive a failed batch's flow (it logs the failure and marks
    the tasks failed at once; its calls are the app's `on_task_error` hooks)."""
    task = asyncio.get_running_loop().create_task(_drive_report(flow))
    _REPORTS.add(task)
    task.add_done_callback(_REPORTS.discard)


async def _drive_report(flow: Generator[Call, Any, None]) -> None:
    """Each hook as the drivers call it: awaited, or (sync) in a worker thread; what one
    raises, `BaseException`s included, is that hook's failure, logged by the flow."""
    try:
        call = next(flow)
        while True:
            try:
                if call.is_async:
                    result = await call.fn(*call.args, **call.kwargs)
                else:
                    result = await anyio.to_thread.run_sync(
                        functools.partial(call.fn, *call.args, **call.kwargs),
                        abandon_on_cancel=True,
                    )
            except Exception as error:
                call = flow.throw(error)
            except asyncio.CancelledError:
                flow.close()
                raise
            except BaseException as error:
                call = flow.throw(ContainedBaseException(error))
            else:
                call = flow.send(result)
    except StopIteration:
        pass
    except Exception:  # a flow's own failure: never lost silently
        logger.exception("Reporting a batch that could not be published failed")


class BatchingBackend(TaskBackend):
    """A `TaskBackend` whose batches go through one `BatchPublisher` thread.

    Subclasses implement `send_batches(pendings)`: send every pending batch's
    envelopes (in order within each) in as few round trips as the engine allows,
    or raise; `retryable` names the errors worth another attempt. Publishing is
    awaited on the event loop and bounded by `deadline` here, so the drivers add
    neither a worker-thread hop nor a timer of their own.
    """

    supports_async_publish = True
    bounds_deadline = True
    #: Errors of `send_batches` that another attempt may cure.
    retryable: tuple[type[BaseException], ...] = (OSError,)

    def __init__(self, *, retries: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.retries = retries
        # After the response, with failures only logged and hooked, the request has
        # nothing to wait for: its batch is queued and settled later on its loop.
        self.detaches = self.publish_mode == "after_response" and self.on_failure == "log"
        self.publisher = BatchPublisher(
            self.send_batches,
            retryable=self.retryable,
            retries=retries,
            name=f"velocipy-{type(self).__name__}",
            loop_sender=self.loop_sender,
        )

    def loop_sender(self, loop: asyncio.AbstractEventLoop) -> LoopSender | None:
        """A `LoopSender` for `loop`, if this backend can send from an event loop itself
        (called once per loop); None (the default): its batches go to the thread."""
        return None

    def send_batches(self, pendings: Sequence[Pending]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not send batches")

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.publisher.publish(envelopes, self.deadline)

    def apublish(self, envelopes: Sequence[Envelope]) -> Coroutine[Any, Any, None]:
        # The publisher's coroutine itself, not one more around it: this runs per request.
        return self.publisher.apublish(envelopes, self.deadline)

    def apublish_detached(
        self, envelopes: Sequence[Envelope], settlement: Settlement
    ) -> Coroutine[Any, Any, bool]:
        return self.publisher.apublish_detached(envelopes, self.deadline, settlement)

    def detach(self, envelopes: Sequence[Envelope], settlement: Settlement) -> bool:
        return self.publisher.detach(envelopes, self.deadline, settlement)

    def close(self) -> None:
        self.publisher.close()
