"""Each request in a `contextvars` context of its own, on drivers that serve many in one place.

A value a handler or a dependency sets in a `ContextVar` (a request id, a tenant,
a tracing span) must die with its request. Under uvicorn and FastAPI it does:
each request runs in a task of its own, and a task runs in a copy of the
context it was created in. Our drivers serve many requests in one long-lived
place instead: the built-in server answers every request of a keep-alive
connection on that connection's task, and a WSGI server (and the TestClient)
on a thread it reuses. Run as they are, a value set by one request would be
what the next one finds. These helpers run a request's code in a copy of the
context the serving place had, without a task or a thread per request:

- `await InContext(context, coroutine)` steps the coroutine in `context` (a copy
  of the connection's, made per request: O(1), contexts are immutable maps); each
  step costs one `Context.run`, so the server wraps only the app's parts (the
  drive, a streamed body) and not its own writes. The server runs the drive's
  first step itself (`context.run(flow.send, None)`): a handler that never waits
  then costs one switch and no wrapper object.
- `iterate_in(context, chunks)` pulls a sync iterator's items (a streamed body)
  in the request's context, so the stream sees what the handler set, and closes
  the iterator there too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

copy_context = contextvars.copy_context

_NOTHING: Any = object()


class InContext(Generator[Any, Any, T]):
    """A coroutine driven step by step in one context; `await` it to get its result.

    `await` delegates every send, throw and close to this object (PEP 380); each
    one steps the coroutine inside `context`. The coroutine's `StopIteration`
    (its return value) comes out of `Context.run` as it is and ends the `await`.

    `waiting`, when given, is what the coroutine yielded in a first step the
    caller already ran in `context` (see `first_step`): it goes to the event loop
    first, and the coroutine resumes from there.
    """

    __slots__ = ("_context", "_coroutine", "_waiting")

    def __init__(
        self,
        context: contextvars.Context,
        coroutine: Coroutine[Any, Any, T],
        waiting: Any = _NOTHING,
    ) -> None:
        self._context = context
        self._coroutine = coroutine
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        waiting = self._waiting
        if waiting is not _NOTHING:
            self._waiting = _NOTHING
            return waiting
        return self._context.run(self._coroutine.send, value)

    def throw(self, *error: Any) -> Any:
        self._waiting = _NOTHING
        return self._context.run(self._coroutine.throw, *error)

    def close(self) -> None:
        self._context.run(self._coroutine.close)


def iterate_in(context: contextvars.Context, chunks: Iterator[T]) -> Iterator[T]:
    """The items of `chunks`, each taken inside `context`; closing closes `chunks` there too."""
    take = chunks.__next__
    run = context.run
    try:
        while True:
            try:
                item = run(take)
            except StopIteration:
                return
            yield item
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            run(close)
