"""The two drivers: the only code that performs the core's effects.

`drive_sync` serves WSGI and the TestClient (async user code goes to an
injected `run_coroutine`); `drive_async` serves ASGI and the socket server
(sync user code goes to an injected `run_sync`, normally a worker thread).
Both run an exchange until it needs its response sent (`Respond`) or is over
(`Done`), and return that effect; the adapter sends the response, then calls
the driver again with `exchange.send(None)` to run the background tasks and
cleanup wherever it chooses.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

from velocipy.core import Call, Done, Effect, Exchange, ReadBody, Respond, StreamBody

RunSync = Callable[[Call], Awaitable[Any]]
RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]


def drive_sync(
    exchange: Exchange,
    effect: Effect,
    *,
    read_body: Callable[[int], bytes],
    run_coroutine: RunCoroutine,
) -> Respond | Done:
    """Perform effects in this thread until `Respond` or `Done`, and return it."""
    while True:
        kind = type(effect)
        if kind is Call:
            call: Call = effect  # type: ignore[assignment]
            try:
                result = call.fn(*call.args, **call.kwargs)
                if call.is_async or inspect.iscoroutine(result):
                    result = run_coroutine(result)
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(result)
        elif kind is ReadBody:
            try:
                body = read_body(effect.limit)  # type: ignore[union-attr]
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(body)
        else:
            return effect  # type: ignore[return-value]


async def drive_async(
    exchange: Exchange,
    effect: Effect,
    *,
    read_body: Callable[[int], Awaitable[bytes]],
    run_sync: RunSync,
) -> Respond | Done:
    """Perform effects on the event loop until `Respond` or `Done`, and return it.

    A cancellation (shutdown) is thrown into the exchange first, so the core can
    log which tasks it interrupts and abandons, then propagates.
    """
    while True:
        kind = type(effect)
        if kind is Call:
            call: Call = effect  # type: ignore[assignment]
            try:
                if call.is_async:
                    result = await call.fn(*call.args, **call.kwargs)
                else:
                    result = await run_sync(call)
                    if inspect.iscoroutine(result):
                        result = await result
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as interruption:
                exchange.throw(interruption)
                raise
            else:
                effect = exchange.send(result)
        elif kind is ReadBody:
            try:
                body = await read_body(effect.limit)  # type: ignore[union-attr]
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(body)
        else:
            return effect  # type: ignore[return-value]


async def await_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await `coroutine`: lets a blocking portal (which calls functions) run a coroutine object."""
    return await coroutine


def call_now(call: Call) -> Any:
    """Perform a sync `Call` right here (what worker threads run)."""
    return call.fn(*call.args, **call.kwargs)


def iterate_sync(stream: StreamBody, run_coroutine: RunCoroutine) -> Iterator[bytes]:
    """A streamed body's chunks, for sync adapters; async iterators go through `run_coroutine`."""
    if not stream.is_async:
        yield from stream.iterator  # type: ignore[misc]
        return
    iterator: AsyncIterator[bytes] = stream.iterator  # type: ignore[assignment]
    while True:
        try:
            chunk = run_coroutine(iterator.__anext__())  # type: ignore[arg-type]
        except StopAsyncIteration:
            return
        yield chunk


_END: Any = object()


async def iterate_async(stream: StreamBody, run_sync: RunSync) -> AsyncIterator[bytes]:
    """A streamed body's chunks, for async adapters; sync iterators advance in `run_sync`."""
    if stream.is_async:
        async for chunk in stream.iterator:  # type: ignore[union-attr]
            yield chunk
        return
    step = Call(next, (stream.iterator, _END), {}, False, "stream")
    while True:
        chunk = await run_sync(step)
        if chunk is _END:
            return
        yield chunk
