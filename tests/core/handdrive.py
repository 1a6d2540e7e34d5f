"""A hand driver for core tests: performs effects with no event loop, threads or sockets.

Coroutines are stepped with `send(None)`; the test apps' async functions never
await anything that suspends, so one step finishes them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from velocipy.core import (
    Application,
    BodyTooLarge,
    Call,
    Done,
    Effect,
    OpenBody,
    ReadBody,
    ReadChunk,
    RequestHead,
    Respond,
)


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Finish a coroutine that never suspends."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise AssertionError("a core-test coroutine suspended; core tests run without a loop")


def perform(call: Call) -> Any:
    result = call.fn(*call.args, **call.kwargs)
    return run_coroutine(result) if call.is_async else result


@dataclass
class Outcome:
    respond: Respond
    effects: list[Effect] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.respond.status

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.respond.headers}

    def json(self) -> Any:
        import json

        return json.loads(self.respond.body)

    def purposes(self) -> list[str]:
        return [e.purpose for e in self.effects if isinstance(e, Call)]


def _body_performer(body: bytes) -> Any:
    """The answer to `OpenBody`: reads `body` in one piece, never suspending."""
    left = [body]

    async def perform(effect: Effect) -> Any:
        assert isinstance(effect, ReadChunk), effect
        piece, left[:] = left[0], [b""]
        return piece, False

    return perform


def head(
    method: str,
    path: str,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> RequestHead:
    return RequestHead(method, path, query, tuple(headers or ()))


def serve(app: Application, method: str, path: str, **options: Any) -> Outcome:
    """Run one whole exchange in a context of its own, as servers run each request."""
    return contextvars.copy_context().run(_serve, app, method, path, **options)


def _serve(
    app: Application,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    delivered: bool = True,
) -> Outcome:
    """Run one whole exchange; `delivered=False` reports the response as not sent."""
    exchange = app.exchange(head(method, path, query, headers))
    effect = exchange.start()
    effects: list[Effect] = []
    respond: Respond | None = None
    while not isinstance(effect, Done):
        effects.append(effect)
        if isinstance(effect, ReadBody):
            if len(body) > effect.limit:
                effect = exchange.throw(BodyTooLarge(effect.limit))
            else:
                effect = exchange.send(body)
        elif isinstance(effect, OpenBody):
            effect = exchange.send(_body_performer(body))
        elif isinstance(effect, Respond):
            respond = effect
            if delivered:
                effect = exchange.send(None)
            else:
                from velocipy.core import ClientDisconnected

                effect = exchange.throw(ClientDisconnected())
        else:
            try:
                value = perform(effect)
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(value)
    assert respond is not None
    return Outcome(respond, effects)
