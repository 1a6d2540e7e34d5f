"""Celery as a task backend: the web process publishes, a Celery worker runs.

Web process::

    app = VelociPy(task_backend=CeleryBackend(celery_app, queue="web"))

Worker (a module that imports the task functions' modules, not the web app)::

    celery_app = Celery("tasks", broker="redis://127.0.0.1:6379/0")
    install(celery_app)              # registers the one generic task
    # celery -A that_module worker --pool=solo -Q web

Each request's batch is published as one Celery task message (one per run of
tasks sharing queue, priority and delay) for the generic task, under the first
task's envelope id. The worker runs that one task, then publishes the rest as
the next message under the next task's id (`run_next`): every task is a Celery
task of its own id, in order, whatever the one before did. The generic task is
declared with `acks_late` and `reject_on_worker_lost`: a worker killed mid-task
leaves the message to be delivered again (at least once); so does a worker that
could not publish the rest after its attempts (the message is rejected and requeued).

Publishing goes through one `BatchPublisher` thread per process. On a Redis
broker, the messages of every batch waiting when the thread is free are written
in one pipeline, one `LPUSH` per queue, for the queues where that is exactly
what `send_task` would do (a direct exchange, no route elsewhere; others go
through `send_task`, a fanout exchange is refused): Celery's own message (protocol 2, the
JSON body kombu's Redis transport reads), built here from a template rather than
by `send_task`, whose ~1,600 Python calls and two round trips per message cost
several times a small request. On other brokers (RabbitMQ), the thread calls
Celery's `send_task` for each message, on one producer per round.
Needs `pip install 'velocipy[celery]'`.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import functools
import itertools
import json
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from celery import Celery
from celery.exceptions import Reject

from velocipy.contrib._redis_loop import LoopRedis
from velocipy.contrib._redis_wire import RedisWire, lpush_chunks
from velocipy.core import Task
from velocipy.core._envelopes import ENVELOPE_VERSION, Envelope, engine_batches
from velocipy.core._envelopes import _chunks as _c_chunks
from velocipy.tasks._publisher import BatchingBackend, LoopSender, Pending
from velocipy.tasks._worker import ForwardFailed, batch_runner, describe

#: The name of the generic task every batch is sent to.
TASK_NAME = "velocipy.run_batch"

logger = logging.getLogger("velocipy")

#: JSON text of a string: the C function `json.dumps` ends in, called directly.
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


#: `json.dumps`'s C encoder (`"".join(_chunks(value, 0))` is `json.dumps(value)` for
#: JSON-ready values), or the same through `json.dumps` where there is none.
_chunks: Any = _c_chunks if _c_chunks is not None else (lambda value, level: [json.dumps(value)])

#: The third part of a protocol-2 body: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: A protocol-2 body: the generic task's one argument (the batch), no keyword arguments.
_BODY = "[[[%s]], {}, " + json.dumps(_EMBED) + "]"
#: `_BODY` around its one field, for a concatenation (cheaper than `%` of it).
_BODY_HEAD, _BODY_TAIL = _BODY.split("%s")
#: A Celery task message as kombu's Redis transport stores it: what `send_task` writes,
#: except that the body is the JSON text itself, as a JSON string, where kombu writes it
#: base64-encoded. kombu's virtual transport decodes the body only when the message names
#: a `body_encoding` (every version since 4.0: `decode_body` returns the body as it is for
#: none), and its workers read either form; this one is shorter, and most of its escaped
#: text is written once per task and route (`_Shape`) instead of encoded per message.
#: Fields: body, id, eta, id, argsrepr, origin, id, routing key, priority, delivery tag.
_WIRE = (
    '{"body": %s, "content-encoding": "utf-8", "content-type": "application/json", '
    '"headers": {"lang": "py", "task": "' + TASK_NAME + '", "id": %s, "shadow": null, '
    '"eta": %s, "expires": null, "group": null, "group_index": null, "retries": 0, '
    '"timelimit": [null, null], "root_id": %s, "parent_id": null, "argsrepr": %s, '
    '"kwargsrepr": "{}", "origin": %s, "ignore_result": false, '
    '"replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, '
    '"properties": {"correlation_id": %s, "reply_to": "", "delivery_mode": 2, '
    '"delivery_info": {"exchange": "", "routing_key": %s}, "priority": %s, '
    '"body_encoding": null, "delivery_tag": %s}}'
)


#: `_WIRE` cut at its fields: a message is one join of these and the fields (a `%` of the
#: whole template parsed its 600 characters once per message, three times the join's cost).
(_W0, _W1, _W2, _W3, _W4, _W5, _W6, _W7, _W8, _W9, _W10) = _WIRE.split("%s")


def _escaped(text: str) -> str:
    """`text` as it reads inside a JSON string, without the quotes around it."""
    return _quote(text)[1:-1]


class _Shape:
    """The constant text of a one-task message, for one task, route, queue and origin.

    A one-task message is one join of these and the fields that vary per request:
    the envelope id (four times: in the body, the `id` and `root_id` headers and the
    correlation id), its arguments, keyword arguments and carried context (each as
    escaped JSON inside the body string), the `eta` and the delivery tag. The rest
    of the body (`_BODY` around `Envelope.to_json`'s text, as `json.dumps` writes it)
    is escaped here, once: escaping goes character by character, so the escaped
    pieces joined are the escaped whole. Bytes, ASCII (JSON's escapes): what is sent.
    The id goes in between quotes as it is, when JSON needs no escape in it (a fresh
    id never does; `_message` checks).
    """

    __slots__ = ("body", "args", "kwargs", "context", "head", "eta", "root", "tail", "end")

    def __init__(self, first: Envelope, name: str, priority: int, origin: str) -> None:
        def text(value: Any) -> str:
            return "null" if value is None else json.dumps(value)

        def data(text: str) -> bytes:
            return text.encode("ascii")

        self.body = data(_W0 + '"' + _escaped(f'{_BODY_HEAD}{{"v": {ENVELOPE_VERSION}, "id": "'))
        self.args = data(
            _escaped(f'", "task": {_quote(first.task)}, "name": {_quote(first.name)}, "args": ')
        )
        self.kwargs = data(_escaped(', "kwargs": '))
        self.context = data(
            _escaped(
                f', "route": {_quote(first.route)}, "method": {_quote(first.method)}, '
                f'"timeout": {text(first.timeout)}, "queue": {text(first.queue)}, '
                f'"priority": {text(first.priority)}, "delay": {text(first.delay)}, '
                '"context": '
            )
        )
        self.head = data(_escaped("}" + _BODY_TAIL) + '"' + _W1 + '"')
        self.eta = data('"' + _W2)
        self.root = data(_W3 + '"')
        argsrepr = _quote(f"(velocipy batch: {first.name})")
        self.tail = data('"' + _W4 + argsrepr + _W5 + origin + _W6 + '"')
        self.end = data(f'"{_W7}{_quote(name)}{_W8}{priority}{_W9}')


#: The end of every message.
_END = _W10.encode()


#: Shapes kept at most; an app with more tasks, routes and queues than this builds anew.
_SHAPES_MAX = 1024


class CeleryBackend(BatchingBackend):
    """Publish each request's tasks to Celery.

    Args:
        celery_app: The `Celery` app whose broker receives the batches.
        queue: The Celery queue for tasks that name none (default: the app's
            `task_default_queue`).
        retries: Publishing attempts after the first, on connection errors, all
            within the backend's `deadline`.
        **options: `publish`, `deadline`, `on_failure`, `context_vars`: see `TaskBackend`.
    """

    supports_defer = True
    supports_priority = True
    supports_get_result = True

    def __init__(
        self, celery_app: Celery, *, queue: str | None = None, retries: int = 2, **options: Any
    ) -> None:
        self.celery_app = celery_app
        # Connection errors of the broker's transport (made lazily: nothing connects here).
        self.retryable = (OSError, *celery_app.connection_for_write().connection_errors)
        # Resolved here, so that every envelope names its queue and a worker forwards
        # a request's later tasks to the queue the web process chose.
        default = queue or str(celery_app.conf.task_default_queue)
        super().__init__(queue=default, retries=retries, **options)
        if type(self).validate_task is CeleryBackend.validate_task:
            # Its checks look at a task's queue, delay and priority, none set at `add_task`
            # (and at async tasks, which it runs): `add_task` need not call it.
            self.checks_new_tasks = not (
                self.supports_defer and self.supports_priority and self.supports_async_task
            )
        #: Per queue name: whether writing to its Redis list is exactly what `send_task`
        #: would do (decided once, from the Celery app's queues and routes).
        self._direct: dict[str, bool] = {}
        self._routes_directly(default)  # refuses a queue it cannot serve, here
        #: The publishing thread's own connection and what it has declared on it.
        self._connection: Any = None
        self._channel: Any = None
        self._link: Any = None
        #: Our own connection for the LPUSHes (None: not made yet; False: redis-py's).
        self._wire: RedisWire | bool | None = None
        self._declared: set[str] = set()
        self._redis = False
        self._tags = _Tags()
        #: Per (queue, priority) the thread has declared and routes straight to its
        #: list: the Redis key (prefixed) an event loop may LPUSH to itself.
        self._keys: dict[tuple[str, int], str] = {}
        #: Where an event loop connects to Redis for that (None: not yet known, or not
        #: plain TCP: the thread sends everything).
        self._loop_settings: RedisWire | None = None
        #: Per task, route, queue and origin: the constant text of a one-task message.
        self._shapes: dict[tuple[Any, ...], _Shape] = {}

    def loop_sender(self, loop: asyncio.AbstractEventLoop) -> LoopSender | None:
        return _LoopSender(self, loop)

    def send_batches(self, pendings: Sequence[Pending]) -> None:
        """Runs on the publishing thread only."""
        try:
            if self._connection is None:
                self._connect()
            if self._redis:
                self._send_redis(pendings)
            else:
                self._send_with_celery(pendings)
        except BaseException:
            self._disconnect()  # the next attempt starts from a fresh connection
            raise

    def _connect(self) -> None:
        connection = self.celery_app.connection_for_write()
        connection.ensure_connection(max_retries=1)
        channel = connection.default_channel
        self._connection, self._channel = connection, channel
        self._declared = set()
        # The template is the Redis transport's format; anything it would do beyond one
        # LPUSH per message (queues that expire) goes through Celery itself.
        self._redis = (
            connection.transport.driver_type == "redis"
            and self.celery_app.conf.task_protocol == 2
            and hasattr(channel, "_q_for_pri")
            and not getattr(channel, "_expires", None)
        )

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        link, self._link = self._link, None
        if link is not None:
            link.disconnect()
        writer, self._wire = self._wire, None
        if isinstance(writer, RedisWire):
            writer.close()
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                pass

    def validate_task(self, task: Task) -> None:
        # Celery honours a delay, a priority and async tasks: `TaskBackend`'s checks refuse
        # nothing here (unless a subclass says otherwise), and this runs per `add_task`.
        if not (self.supports_defer and self.supports_priority and self.supports_async_task):
            super().validate_task(task)
        queue = getattr(task, "queue", None)
        if queue is not None:
            self._routes_directly(queue)

    def _routes_directly(self, name: str) -> bool:
        """Whether `send_task(..., queue=name)` goes to the queue `name` itself, as the
        Redis fast path writes; raise `ValueError` for a queue no backend can serve.

        Celery publishes to the anonymous direct exchange, keyed by the queue's name,
        when the queue's exchange is direct and no route names both an exchange and a
        routing key: then the message lands in that queue alone. Anything else (a
        topic or headers exchange, `task_routes` sending the generic task elsewhere, a
        route that adds options) is routed by the broker's bindings, which only
        `send_task` follows: those queues are published through Celery itself.
        """
        known = self._direct.get(name)
        if known is not None:
            return known
        try:
            options = self.celery_app.amqp.router.route({"queue": name}, TASK_NAME, (), {})
        except KeyError as error:  # QueueNotFound: a queue missing from `task_queues`
            raise ValueError(f"Celery queue {name!r}: {error}") from error
        queue = options["queue"]
        exchange = getattr(queue, "exchange", None)
        kind = options.get("exchange_type") or getattr(exchange, "type", None) or "direct"
        if kind == "fanout":
            raise ValueError(
                f"Celery queue {name!r} is routed through the fanout exchange "
                f"{getattr(exchange, 'name', '')!r}, which copies every message to each "
                "queue bound to it: a request's later tasks, published by the worker "
                "after the first, would run once per copy. Give VelociPy's tasks a queue "
                "on a direct exchange."
            )
        direct = (
            kind == "direct"
            and not (options.get("exchange") and options.get("routing_key"))
            and set(options) <= {"queue", "exchange", "routing_key", "exchange_type"}
        )
        self._direct[name] = direct
        return direct

    def _queue_name(self, envelope: Envelope) -> str:
        return envelope.queue or str(self.celery_app.conf.task_default_queue)

    def _declare(self, name: str) -> None:
        """Declare a queue once per connection, as Celery does before its first publish."""
        if name not in self._declared:
            self.celery_app.amqp.queues[name](self._channel).declare()
            self._declared.add(name)

    def _send_redis(self, pendings: Sequence[Pending]) -> None:
        channel = self._channel
        origin, next_tag = self._tags.start()
        by_key: dict[str, list[bytes]] = {}
        routed: list[list[Envelope]] = []  # for queues only Celery's own publish routes
        for pending in pendings:
            for batch in engine_batches(pending.envelopes):
                first = batch[0]
                name = self._queue_name(first)
                direct = self._direct.get(name)  # known after the first batch: no call
                if not (self._routes_directly(name) if direct is None else direct):
                    routed.append(batch)
                    continue
                self._declare(name)
                priority = first.priority or 0
                key = channel._q_for_pri(
                    name, channel._get_message_priority({"properties": {"priority": priority}})
                )
                wire = self._message(batch, name, priority, origin, next_tag())
                messages = by_key.get(key)
                if messages is None:
                    by_key[key] = [wire]
                else:
                    messages.append(wire)
        if routed:
            self._publish_with_celery(routed)
            if not by_key:
                return
        # One LPUSH per queue: its values go in in order, and workers pop the other end.
        # Written on one connection the thread keeps, packed and answered by hand
        # (`_redis_wire`): redis-py's client and pipeline layers cost ~800 Python calls
        # a round trip, its connection alone ~80, this ~10.
        prefix = channel.global_keyprefix  # what kombu's prefixing client would add
        writer = self._wire
        if writer is None:
            writer = self._wire = RedisWire.for_pool(channel.pool) or False
        if isinstance(writer, RedisWire):
            writer.lpush([(prefix + key, messages) for key, messages in by_key.items()])
            # Declared and answered: from now on an event loop may push to these itself.
            for pending in pendings:
                for envelope in pending.envelopes:
                    name = self._queue_name(envelope)
                    if self._direct.get(name):
                        priority = envelope.priority or 0
                        self._keys[name, priority] = prefix + channel._q_for_pri(
                            name,
                            channel._get_message_priority({"properties": {"priority": priority}}),
                        )
            self._loop_settings = writer
            return
        # Not plain TCP (TLS, a Unix socket...): redis-py's own connection.
        link = self._link
        if link is None:
            link = self._link = channel.pool.get_connection()
        commands = [("LPUSH", prefix + key, *messages) for key, messages in by_key.items()]
        link.send_packed_command(link.pack_commands(commands))
        for _ in commands:
            link.read_response()  # raises the server's error, if it answered one

    def _message(
        self, batch: Sequence[Envelope], name: str, priority: int, origin: str, tag: bytes
    ) -> bytes:
        """The Celery task message for `batch` (one run of equal options), as kombu's
        Redis transport stores it; its body is `json.dumps([[[envelope.to_dict() ...]],
        {}, _EMBED])`, the same text, as a JSON string."""
        first = batch[0]
        ident = _quote(first.id)
        eta = _eta(first.delay) if first.delay else "null"
        # One task, whose id JSON writes as it is (a fresh id, always): the shape's text.
        if len(batch) == 1 and len(ident) == len(first.id) + 2:
            key = (
                first.task,
                first.name,
                first.route,
                first.method,
                first.timeout,
                first.queue,
                first.priority,
                first.delay,
                name,
                priority,
                origin,
            )
            shape = self._shapes.get(key)
            if shape is None:
                if len(self._shapes) >= _SHAPES_MAX:
                    self._shapes.clear()
                shape = self._shapes[key] = _Shape(first, name, priority, origin)
            args, kwargs, context = first.args, first.kwargs, first.context
            ident_data = first.id.encode()
            return b"".join(
                (
                    shape.body,
                    ident_data,
                    shape.args,
                    # `_dumps(...)`, inlined: one Python call less per message.
                    _quote("".join(_chunks(args, 0)))[1:-1].encode() if args else b"[]",
                    shape.kwargs,
                    _quote("".join(_chunks(kwargs, 0)))[1:-1].encode() if kwargs else b"{}",
                    shape.context,
                    _quote("".join(_chunks(context, 0)))[1:-1].encode() if context else b"{}",
                    shape.head,
                    ident_data,
                    shape.eta,
                    b"null" if eta == "null" else eta.encode(),
                    shape.root,
                    ident_data,
                    shape.tail,
                    ident_data,
                    shape.end,
                    tag,
                    _END,
                )
            )
        body = _BODY_HEAD + ", ".join([envelope.to_json() for envelope in batch]) + _BODY_TAIL
        names = ", ".join([envelope.name for envelope in batch])
        return "".join(
            (
                _W0,
                _quote(body),
                _W1,
                ident,
                _W2,
                eta,
                _W3,
                ident,
                _W4,
                _quote(f"(velocipy batch: {names})"),
                _W5,
                origin,
                _W6,
                ident,
                f"{_W7}{_quote(name)}{_W8}{priority}{_W9}",
                tag.decode(),
                _W10,
            )
        ).encode()

    def _send_with_celery(self, pendings: Sequence[Pending]) -> None:
        self._publish_with_celery(
            [batch for pending in pendings for batch in engine_batches(pending.envelopes)]
        )

    def _publish_with_celery(self, batches: Sequence[Sequence[Envelope]]) -> None:
        """`send_task` per message, on one producer: Celery routes each one itself."""
        with self.celery_app.producer_or_acquire() as producer:
            for batch in batches:
                first = batch[0]
                options: dict[str, Any] = {"queue": self._queue_name(first)}
                if first.priority is not None:
                    options["priority"] = first.priority
                if first.delay:
                    options["countdown"] = first.delay
                self.celery_app.send_task(
                    TASK_NAME,
                    args=[[envelope.to_dict() for envelope in batch]],
                    task_id=first.id,
                    retry=False,  # the publishing thread retries, within the deadline
                    producer=producer,
                    **options,
                )

    def get_state(self, queue_id: str) -> str | None:
        """Celery's state of the message `queue_id` went in (needs a result backend)."""
        return str(self.celery_app.AsyncResult(queue_id).state)

    def close(self) -> None:
        super().close()
        self._disconnect()
        self.celery_app.close()


def _eta(delay: float | None) -> str:
    """The `eta` header: JSON null, or when a delayed batch may run (as `countdown` would)."""
    if not delay:
        return "null"
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delay)
    return _quote(at.isoformat())


class _Tags:
    """Delivery tags, unique per message as kombu needs them (it tracks unacknowledged
    messages by tag): a random prefix per process and a counter, cheaper than a UUID
    each; and the `origin` header Celery gives (`gen<pid>@<host>`). Used by the
    publishing thread and the event loops: `next()` of an `itertools.count` is one C
    call, atomic under the GIL, where `+= 1` on an attribute is not."""

    def __init__(self) -> None:
        self._pid = 0
        self._origin = ""
        #: The tags, as JSON text: `"<prefix>.<n>"` for n = 1, 2, ... Made in C alone (a
        #: `map` of the template's `%` over a count), so `next()` of it is one C call,
        #: atomic under the GIL, where a Python method per tag cost ~2,000 instructions.
        self._tags: Iterator[bytes] = iter(())
        self._next: Callable[[], bytes] = functools.partial(next, self._tags)

    def start(self) -> tuple[str, Callable[[], bytes]]:
        """The origin header and the tag maker, for one round trip."""
        if self._pid != os.getpid():  # first use, or a forked worker: its own prefix
            self._pid = os.getpid()
            self._origin = _quote(f"gen{self._pid}@{socket.gethostname()}")
            template = b'"%b.%%d"' % os.urandom(8).hex().encode()
            self._tags = map(template.__mod__, itertools.count(1))
            self._next = functools.partial(next, self._tags)
        return self._origin, self._next

    def one(self) -> tuple[str, bytes]:
        """The origin header and one tag: `start()` for a round trip of one message."""
        if self._pid != os.getpid():
            self.start()
        return self._origin, next(self._tags)


class _LoopSender:
    """An event loop's own publishing to Redis (`velocipy.tasks._publisher.LoopSender`).

    It takes a request's batch when the publishing thread has already sent to each of
    its queues (and priorities) on plain TCP: the queue was declared there, its route
    checked and its Redis key worked out, so what is left is the message and one
    LPUSH per key, written on the loop's own connection (`LoopRedis`). Anything else
    (the first batch for a queue, routed queues, TLS or Unix sockets, another broker)
    it hands back, and the thread sends it as before.
    """

    __slots__ = ("_backend", "_loop", "_redis")

    def __init__(self, backend: CeleryBackend, loop: asyncio.AbstractEventLoop) -> None:
        self._backend = backend
        self._loop = loop
        self._redis: LoopRedis | None = None

    def send(
        self, pendings: list[Pending], done: Callable[[BaseException | None], None]
    ) -> list[Pending] | None:
        backend = self._backend
        settings = backend._loop_settings
        if settings is None:
            return pendings
        keys = backend._keys
        default = backend.queue or ""
        redis = self._redis
        if redis is None:
            redis = self._redis = LoopRedis(self._loop, settings)
        if len(pendings) == 1:  # one request's batch of one task (light load): one LPUSH
            envelopes = pendings[0].envelopes
            if len(envelopes) == 1:
                first = envelopes[0]
                name = first.queue or default
                priority = first.priority or 0
                key = keys.get((name, priority))
                if key is not None:
                    origin, tag = backend._tags.one()
                    redis.lpush(key, backend._message(envelopes, name, priority, origin, tag), done)
                    return None
        origin, next_tag = backend._tags.start()
        message = backend._message
        by_key: dict[str, list[bytes]] = {}
        rest: list[Pending] | None = None
        for pending in pendings:
            envelopes = pending.envelopes
            if len(envelopes) == 1:
                # One task, the common case: one message, with no list of them to build.
                first = envelopes[0]
                name = first.queue or default
                priority = first.priority or 0
                key = keys.get((name, priority))
                if key is not None:
                    wire = message(envelopes, name, priority, origin, next_tag())
                    listed = by_key.get(key)
                    if listed is None:
                        by_key[key] = [wire]
                    else:
                        listed.append(wire)
                    continue
            messages = []
            for batch in engine_batches(envelopes):
                first = batch[0]
                name = first.queue or default
                priority = first.priority or 0
                key = keys.get((name, priority))
                if key is None:
                    break
                messages.append((key, message(batch, name, priority, origin, next_tag())))
            else:
                for key, wire in messages:
                    listed = by_key.get(key)
                    if listed is None:
                        by_key[key] = [wire]
                    else:
                        listed.append(wire)
                continue
            if rest is None:
                rest = [pending]
            else:
                rest.append(pending)
        if not by_key:  # nothing it can send (or batches without envelopes): the thread's
            return pendings
        redis.send(lpush_chunks(list(by_key.items())), len(by_key), done)
        return rest

    def reset(self) -> None:
        if self._redis is not None:
            self._redis.reset()

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def install(
    celery_app: Celery,
    *,
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    on_task_error: Iterable[Callable[..., Any]] = (),
    forward_attempts: int = 6,
    forward_backoff: float = 0.5,
    forward_max_backoff: float = 8.0,
    forward_deadline: float = 10.0,
) -> Any:
    """Register the generic task that runs published batches on `celery_app`'s workers.

    `context_vars` are restored on the worker besides `request_id` and
    `traceparent`; `on_task_error` hooks are called as `hook(task, exception)`
    for each failed task, as in process. Returns the Celery task.

    After its task, a message publishes the rest of its request's tasks: up to
    `forward_attempts` times, `forward_backoff` seconds apart at first, doubling up
    to `forward_max_backoff`, each attempt waiting at most `forward_deadline` seconds
    for the broker (the web process's `deadline`, for a worker). If every attempt
    fails, the message is rejected and requeued: Celery delivers it again, its task
    runs again and the rest is forwarded then (at least once).
    """
    # The worker forwards through a backend of its own, made on first use in the
    # process that forwards (a forked pool child makes its own): the same message and
    # routing as the web process's, at a tenth of what `send_task` costs per message.
    forwarders: list[CeleryBackend] = []

    def forward(rest: Sequence[Mapping[str, Any]]) -> None:
        # The continuation: the next task, as a message of its own under its own id, to
        # the queue the web process chose (always named in the envelope). The run's
        # delay was waited once, before its first task: the rest go out undelayed.
        envelopes = [Envelope.from_dict({**data, "delay": None}) for data in rest]
        if not forwarders:
            # No retries inside: `run_next` retries, and logs each attempt.
            forwarders.append(
                CeleryBackend(
                    celery_app, queue=envelopes[0].queue, deadline=forward_deadline, retries=0
                )
            )
        forwarders[0].publish(envelopes)

    run = batch_runner(
        forward,
        context_vars=context_vars,
        on_task_error=on_task_error,
        forward_attempts=forward_attempts,
        forward_backoff=forward_backoff,
        forward_max_backoff=forward_max_backoff,
    )

    def run_velocipy_batch(batch: list[dict[str, Any]]) -> str:
        try:
            task = run(batch)
        except ForwardFailed as failed:
            # Failing would acknowledge the message (acks_late acks failures too) and
            # lose the rest; requeued, it is delivered again, reruns its task and
            # forwards then. If the broker cannot take the reject either, the message
            # stays unacknowledged, and the broker hands it out again (Redis after its
            # visibility timeout, RabbitMQ when the channel closes).
            logger.error(
                "requeueing the Celery message %s: its task %s will run again, then "
                "publish the rest (%s)",
                batch[0].get("id"),
                batch[0].get("task"),
                describe(failed.rest),
            )
            raise Reject(str(failed), requeue=True) from failed
        # The message's result (with a result backend): how its one task ended.
        return task.state.value

    return celery_app.task(
        name=TASK_NAME,
        acks_late=True,
        reject_on_worker_lost=True,
        serializer="json",
    )(run_velocipy_batch)
