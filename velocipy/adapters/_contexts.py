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

- `in_fresh_context(coroutine)`, awaited, steps the coroutine in a copy of the
  current context. The copy is O(1) (contexts are immutable maps), and each step
  costs one `Context.run`: a request that never waits costs one.
- `iterate_in(context, chunks)` pulls a sync iterator's items (a streamed body)
  in the request's context, so the stream sees what the handler set, and closes
  the iterator there too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_copy_context = contextvars.copy_context


class _InContext(Generator[Any, Any, T]):
    """A coroutine driven step by step in one context; `await` it to get its result.

    `await` delegates every send, throw and close to this object (PEP 380); each
    one steps the coroutine inside `context`. The coroutine's `StopIteration`
    (its return value) comes out of `Context.run` as it is and ends the `await`.
    """

    __slots__ = ("_context", "_coroutine")

    def __init__(self, context: contextvars.Context, coroutine: Coroutine[Any, Any, T]) -> None:
        self._context = context
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, Any, T]:
        return self

    def __next__(self) -> Any:
        return self._context.run(self._coroutine.send, None)

    def send(self, value: Any) -> Any:
        return self._context.run(self._coroutine.send, value)

    def throw(self, *error: Any) -> Any:
        return self._context.run(self._coroutine.throw, *error)

    def close(self) -> None:
        self._context.run(self._coroutine.close)


def in_fresh_context(coroutine: Coroutine[Any, Any, T]) -> _InContext[T]:
    """`coroutine`, to be awaited, run in a copy of the context current now."""
    return _InContext(_copy_context(), coroutine)


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
