"""Envelopes: a background task as data that can cross a process boundary.

A queue backend does not get a callable and Python objects; it gets an
`Envelope`: the task's import path (`"module:qualname"`), its arguments as
JSON-ready values, its options and an allow-list of context variables. This
module builds them (`task_path`, `to_json`) in the web process, where a
mistake can still be reported inside the handler, and turns them back into a
call (`rebuild_arguments`) on the worker, from the function's annotations.

Pure: no I/O; `sys.modules` is only read, never imported into.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import itertools
import json
import sys
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import register_at_fork, urandom
from typing import Any

#: The version of the envelope layout; a worker refuses a layout it does not know.
ENVELOPE_VERSION = 1

#: A request id your middleware or dependency sets; it travels with queued tasks.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "velocipy.request_id", default=None
)
#: The W3C `traceparent` of the request; it travels with queued tasks.
traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "velocipy.traceparent", default=None
)
#: On a worker, the envelope id of the task being run (the handle's `id` in the web
#: process, and the engine's message id): a key for making a task idempotent.
current_task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "velocipy.current_task_id", default=None
)
#: The context variables carried to the worker by default.
CARRIED_CONTEXT: tuple[contextvars.ContextVar[Any], ...] = (request_id, traceparent)


class TaskNotPortable(TypeError):
    """A task cannot be sent to a queue: its function is not importable by name on a
    worker, or an argument is not JSON. Raised in the handler, naming route and task."""


@dataclass(slots=True)
class Envelope:
    """One queued task as data. `to_dict()` is what travels (JSON only)."""

    id: str
    task: str
    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    route: str = ""
    method: str = ""
    timeout: float | None = None
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": ENVELOPE_VERSION,
            "id": self.id,
            "task": self.task,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
            "route": self.route,
            "method": self.method,
            "timeout": self.timeout,
            "queue": self.queue,
            "priority": self.priority,
            "delay": self.delay,
            "context": self.context,
        }

    def to_json(self) -> str:
        """`json.dumps(self.to_dict())`, the same text, written from a template: the
        JSON encoder's walk of the dict cost several times this, once per task sent."""
        args, kwargs, context = self.args, self.kwargs, self.context
        timeout, queue, priority, delay = self.timeout, self.queue, self.priority, self.delay
        return _JSON_TEMPLATE % (
            _quote(self.id),
            _quote(self.task),
            _quote(self.name),
            _dumps(args) if args else "[]",
            _dumps(kwargs) if kwargs else "{}",
            _quote(self.route),
            _quote(self.method),
            "null" if timeout is None else _dumps(timeout),
            "null" if queue is None else _quote(queue),
            "null" if priority is None else _dumps(priority),
            "null" if delay is None else _dumps(delay),
            _dumps(context) if context else "{}",
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Envelope:
        version = data.get("v")
        if version != ENVELOPE_VERSION:
            raise ValueError(f"unknown envelope version {version!r} (this worker reads 1)")
        return cls(
            id=str(data["id"]),
            task=str(data["task"]),
            name=str(data.get("name") or data["task"]),
            args=list(data.get("args") or []),
            kwargs=dict(data.get("kwargs") or {}),
            route=str(data.get("route") or ""),
            method=str(data.get("method") or ""),
            timeout=data.get("timeout"),
            queue=data.get("queue"),
            priority=data.get("priority"),
            delay=data.get("delay"),
            context=dict(data.get("context") or {}),
        )


#: `Envelope.to_json`'s text: `to_dict()`'s keys, in order, as `json.dumps` writes them.
_JSON_TEMPLATE = (
    '{"v": ' + str(ENVELOPE_VERSION) + ', "id": %s, "task": %s, "name": %s, "args": %s, '
    '"kwargs": %s, "route": %s, "method": %s, "timeout": %s, "queue": %s, "priority": %s, '
    '"delay": %s, "context": %s}'
)
#: JSON text of a string (`json.dumps`'s own C function for it).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
#: `json.dumps`'s C encoder itself, with its default settings, without the three Python
#: calls around it per use.
_chunks: Any = (
    _c_make_encoder(None, None, _quote, None, ": ", ", ", False, False, True)
    if _c_make_encoder is not None
    else None
)


def _dumps(value: Any) -> str:
    """`json.dumps(value)`, for JSON-ready values (nothing to convert, no cycles)."""
    if _chunks is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(value)
    return "".join(_chunks(value, 0))


def new_envelope_id() -> str:
    """A fresh id: the handle's `id`, the envelope's and the engine message's id.

    A version 4 UUID in its usual text form (what `str(uuid.uuid4())` looks like):
    its first 20 hex digits are random per process (74 random bits, drawn again in
    a forked child), its last 12 count the ids this process made. Unique across
    processes and hosts as random UUIDs are, and one C call and a format per id
    where `uuid.uuid4()` (or even `os.urandom(16)` formatted) cost several Python
    steps and a system call: this runs for every queued task.
    """
    return f"{_id_prefix}{next(_id_counter):012x}"


def _new_id_prefix() -> None:
    """Draw this process's random part of the ids (at import, and in a forked child,
    which must not repeat its parent's ids)."""
    global _id_prefix, _id_counter
    text = urandom(10).hex()
    variant = "89ab"[int(text[16], 16) & 3]  # RFC 9562: the variant's bits are 10xx
    _id_prefix = f"{text[:8]}-{text[8:12]}-4{text[12:15]}-{variant}{text[17:20]}-"
    _id_counter = itertools.count()


_id_prefix = ""
_id_counter: Iterator[int] = itertools.count()
_new_id_prefix()
register_at_fork(after_in_child=_new_id_prefix)


# -- the web side: what may be queued ------------------------------------------------------------


def task_path(func: Callable[..., Any]) -> str:
    """`"module:qualname"` of `func`, if a worker can import it by that name; else raise.

    Refused: lambdas, functions defined inside functions (closures), partials,
    bound methods of objects (a request-scoped object cannot travel), and
    anything defined in `__main__` (the worker's `__main__` is the worker).
    """
    if isinstance(func, functools.partial):
        raise TaskNotPortable("a functools.partial cannot be imported by name on a worker")
    if isinstance(func, types.MethodType) and not isinstance(func.__self__, type):
        raise TaskNotPortable(
            f"a bound method of a {type(func.__self__).__name__} object cannot be imported "
            "by name on a worker (the object stays in this process)"
        )
    qualname = getattr(func, "__qualname__", None)
    module = getattr(func, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise TaskNotPortable(f"{func!r} has no module-level name a worker could import")
    if "<lambda>" in qualname:
        raise TaskNotPortable("a lambda cannot be imported by name on a worker")
    if "<locals>" in qualname:
        raise TaskNotPortable(
            "a function defined inside another function (a closure) cannot be imported "
            "by name on a worker"
        )
    if module == "__main__":
        raise TaskNotPortable(
            "a function defined in __main__ cannot be imported by a worker; move it into a module"
        )
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is None or (target is not func and getattr(target, "__func__", target) is not func):
        if not (isinstance(func, types.MethodType) and target == func):
            raise TaskNotPortable(
                f"{module}.{qualname} is not what that name refers to in its module "
                "(shadowed or wrapped), so a worker would import something else"
            )
    return f"{module}:{qualname}"


def to_json(value: Any, where: str = "argument") -> Any:
    """`value` as JSON-ready data: dataclasses, pydantic models, datetimes, UUIDs,
    Decimals and Enums become plain values; anything else not JSON raises."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if kind is list or kind is tuple:
        return [to_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if kind is dict:
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TaskNotPortable(f"{where} has a non-string key {key!r}: JSON has none")
            result[key] = to_json(item, f"{where}[{key!r}]")
        return result
    if isinstance(value, enum.Enum):
        return to_json(value.value, where)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: to_json(getattr(value, item.name), f"{where}.{item.name}")
            for item in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if dump is not None and callable(dump):  # a pydantic model
        return dump(mode="json")
    if isinstance(value, (str, int, float)):  # subclasses of the plain kinds
        return to_json(kind.__mro__[-2](value), where)
    raise TaskNotPortable(f"{where} is a {kind.__name__}, which is not JSON")


def carried_context(variables: Iterable[contextvars.ContextVar[Any]]) -> dict[str, Any]:
    """The current values of `variables` that are set and JSON-ready, by variable name."""
    carried: dict[str, Any] = {}
    for variable in variables:
        value = variable.get(None)
        if value is not None:
            carried[variable.name] = to_json(value, f"context variable {variable.name}")
    return carried


# -- the worker side: back to a call -------------------------------------------------------------


def restored_context(
    carried: Mapping[str, Any], variables: Iterable[contextvars.ContextVar[Any]]
) -> contextvars.Context:
    """A fresh context with the allow-listed `variables` set from `carried`."""
    context = contextvars.Context()
    for variable in variables:
        if variable.name in carried:
            context.run(variable.set, carried[variable.name])
    return context


def rebuild_arguments(
    func: Callable[..., Any], args: list[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments for `func`, rebuilt from JSON by its parameters' annotations."""
    try:
        hints = typing.get_type_hints(func)
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError, NameError):  # no signature or unresolvable hints: as is
        return tuple(args), dict(kwargs)
    positional: list[Any] = []
    by_name = {parameter.name: parameter for parameter in parameters}
    ordered = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    rest = next((p for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    for index, value in enumerate(args):
        parameter = ordered[index] if index < len(ordered) else rest
        annotation = hints.get(parameter.name, Any) if parameter is not None else Any
        positional.append(revive(value, annotation))
    keywords = next((p for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    named: dict[str, Any] = {}
    for name, value in kwargs.items():
        parameter = by_name.get(name, keywords)
        annotation = hints.get(parameter.name, Any) if parameter is not None else Any
        named[name] = revive(value, annotation)
    return tuple(positional), named


def revive(value: Any, annotation: Any) -> Any:
    """`value` (JSON) as an instance of `annotation`, where the annotation says how."""
    if value is None or annotation is Any or annotation is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        for option in arguments:
            if option is type(None):
                continue
            try:
                return revive(value, option)
            except (TypeError, ValueError, KeyError):
                continue
        return value
    if origin is tuple and isinstance(value, list):
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(revive(item, arguments[0]) for item in value)
        return tuple(revive(item, kind) for item, kind in zip(value, arguments, strict=False))
    if origin in (list, set, frozenset) and isinstance(value, list):
        item_type = arguments[0] if arguments else Any
        return origin(revive(item, item_type) for item in value)
    if origin is dict and isinstance(value, dict) and len(arguments) == 2:
        return {key: revive(item, arguments[1]) for key, item in value.items()}
    if not isinstance(annotation, type):
        return value
    if isinstance(value, annotation) and not dataclasses.is_dataclass(annotation):
        return value
    if annotation in (tuple, set, frozenset) and isinstance(value, list):
        return annotation(value)
    if issubclass(annotation, enum.Enum):
        return annotation(value)
    if annotation is datetime.datetime:
        return datetime.datetime.fromisoformat(value)
    if annotation is datetime.date:
        return datetime.date.fromisoformat(value)
    if annotation is datetime.time:
        return datetime.time.fromisoformat(value)
    if annotation is uuid.UUID:
        return uuid.UUID(value)
    if annotation is decimal.Decimal:
        return decimal.Decimal(value)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        return annotation(**{k: revive(v, hints.get(k, Any)) for k, v in value.items()})
    validate = getattr(annotation, "model_validate", None)
    if validate is not None and isinstance(value, dict):  # a pydantic model
        return validate(value)
    return value


def engine_batches(envelopes: Sequence[Envelope]) -> list[list[Envelope]]:
    """`envelopes` cut into runs that share queue, priority and delay: each run is one
    engine message, so its tasks run in order on one worker. A request whose tasks
    name different queues or delays is published as several messages."""
    batches: list[list[Envelope]] = []
    for envelope in envelopes:
        key = (envelope.queue, envelope.priority, envelope.delay)
        if batches and (batches[-1][0].queue, batches[-1][0].priority, batches[-1][0].delay) == key:
            batches[-1].append(envelope)
        else:
            batches.append([envelope])
    return batches
