"""Running a coroutine for another thread without letting its `SystemExit` stop the loop.

asyncio re-raises `SystemExit` and `KeyboardInterrupt` out of the event loop when
a task ends with one, which stops the loop's thread: every later async call of
the process would fail. An anyio blocking portal (the TestClient's) lets every
`BaseException` that is not an `Exception` through, which stops the portal.
When user code raises one (a handler or a task calling `sys.exit()`), only its
own call should fail. `guarded` awaits a coroutine and turns such an exception
into a `Carried` one, an ordinary exception that the loop hands to whoever
waits; `unwrap_carried` (in the waiting thread) raises the original again. The
loop's own cancellation (at exit) passes as itself: the waiting side must see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Carried(Exception):
    """A coroutine's `BaseException`, on its way to the waiting thread."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


async def guarded(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await `coroutine`; a `BaseException` other than a cancellation comes out as `Carried`."""
    try:
        return await coroutine
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as error:
        raise Carried(error) from None


def unwrap_carried(wait: Callable[[], T]) -> T:
    """Return `wait()`, raising the original exception of a `Carried` it raises."""
    try:
        return wait()
    except Carried as carried:
        raise carried.error from None
