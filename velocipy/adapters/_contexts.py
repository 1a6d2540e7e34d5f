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

- The built-in server serves a connection's requests in the connection's own
  context, with no switch at all, and checks after each request whether it left
  a value there (`CleanContext`: the usual handler sets nothing). One that did
  ends that context's turn: the connection goes on in a fresh copy of the
  context as it was before any request (O(1): contexts are immutable maps),
  where the same holds again (`ConnectionBase.run` in `velocipy.server`).
- `await InContext(context, coroutine)` steps a coroutine in `context`, one
  `Context.run` per step: how the server runs a connection's loop in such a copy.
  It is the core's own class (`velocipy.core._tasks`, where background tasks
  are stepped in their contexts the same way), re-exported here.
- `iterate_in(context, chunks)` pulls a sync iterator's items (a streamed body)
  in the request's context, so the stream sees what the handler set, and closes
  the iterator there too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import TypeVar

from velocipy.core._tasks import InContext

__all__ = ["CleanContext", "InContext", "copy_context", "iterate_in"]

T = TypeVar("T")

copy_context = contextvars.copy_context

#: Values whose identity cannot matter: one equal to another is as good as it.
_ATOMS = frozenset({str, bytes, int, float, bool, type(None)})


class CleanContext:
    """The context of a connection before any request ran in it, and whether one changed it.

    Made in the connection's task before its first request. `changed()` after a
    request served in that context (or in a copy of `clean`) says whether the
    request left anything in it (a variable set and not reset): then the
    connection goes on in a fresh `clean.copy()`, so nothing of one request shows
    in the next, nor in the server's own log lines for it. (A value left in the
    connection task's own context, by the first request that left one, stays
    referenced by the task until the connection closes; nothing reads it but the
    connection's last-resort error log.)

    The check is cheap when nothing changed: a context is an immutable map, a copy
    of an unchanged one holds the very same map, and `==` compares maps by identity
    first. A request that replaced a value by an equal one compares equal as a
    whole, so values whose identity can matter (anything but str, bytes, numbers,
    None: a list, a span) are also compared by identity, one by one. Contexts hold
    few of them before a request (anyio's `sniffio` name, a string): usually none.

    On the hot path the connection inlines the usual case, `copy_context() !=
    clean.clean or (clean.watched and clean.changed())`: a method call costs
    more than the comparison itself (~700 instructions against ~500).
    """

    __slots__ = ("clean", "watched")

    def __init__(self) -> None:
        self.clean = copy_context()
        #: The values compared by identity: (variable, value) pairs.
        self.watched = tuple(
            (var, value) for var, value in self.clean.items() if type(value) not in _ATOMS
        )

    def changed(self) -> bool:
        """Whether the current context is no longer the one this was made in."""
        now = copy_context()
        if now != self.clean:
            return True
        for var, value in self.watched:
            if now[var] is not value:
                return True
        return False


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
