"""Running a coroutine for another thread without letting its `SystemExit` stop the loop.

asyncio re-raises `SystemExit` and `KeyboardInterrupt` out of the event loop when
a task ends with one, which stops the loop's thread: every later async call of
the process would fail. When user code raises them (a task calling `sys.exit()`),
only its own call should fail. `guarded` awaits a coroutine and turns those two
into a `Carried` exception, an ordinary one that asyncio hands to whoever waits;
`unwrap_carried` (in the waiting thread) raises the original again.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Carried(Exception):
    """A coroutine's `SystemExit` or `KeyboardInterrupt`, on its way to the waiting thread."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


async def guarded(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await `coroutine`; its `SystemExit` or `KeyboardInterrupt` comes out as `Carried`."""
    try:
        return await coroutine
    except (SystemExit, KeyboardInterrupt) as error:
        raise Carried(error) from None


def unwrap_carried(wait: Callable[[], T]) -> T:
    """Return `wait()`, raising the original exception of a `Carried` it raises."""
    try:
        return wait()
    except Carried as carried:
        raise carried.error from None
