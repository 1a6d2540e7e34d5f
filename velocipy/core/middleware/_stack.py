"""The middleware stack: an app's middleware composed around its exchange flow.

Built once, when the app serves its first request (`Application.exchange` is
swapped for `MiddlewareStack.exchange` when middleware is added, so an app
without middleware never takes this path). Layers run outermost first, the
last added being the outermost, as in FastAPI. Two kinds:

- a `Transform` (built-in middleware) is pure: `_transform_flow` asks its
  `request` hook, then runs the inner flow, editing its `Respond` on the way
  out; every other effect passes through untouched;
- an `HTTPLayer` (`@app.middleware("http")`, `BaseHTTPMiddleware`) is user
  code, so `_call_next_flow` yields a `CallNext` effect: the driver calls the
  middleware with a `call_next` that drives the inner part (a `NextPart`) to
  its `Respond` and returns it as a `NextResponse`.

The inner exchanges started by `call_next` are resumed only after the outer
response has been delivered: their background tasks (and generator
dependencies' cleanup) come after the outermost response's last byte,
whatever the middleware did. If the middleware fails after `call_next`, the client
gets a 500 and the inner exchange is told its response was replaced: the request
failed, so its tasks follow the error path (`run_on="error"` / `"always"` run after
the 500, `"success"` ones are skipped). If the 500 itself is not delivered, the
inner tasks are abandoned and logged, as for any undelivered response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._datastructures import State
from .._errors import ClientDisconnected, ClientError, HTTPException, ResponseReplaced
from .._events import CallNext, Done, Effect, OpenBody, RequestHead, Respond, StatefulHead
from .._exchange import Exchange, Phase, _close_uploads, _respond, default_error_response
from .._request import BodyAccess
from .._responses import JSONResponse, Response
from .._status import allows_body
from .._tasks import unwrap
from .._uploads import UploadFile
from ._next import MiddlewareRequest, NextPart, NextResponse
from ._transform import Transform

if TYPE_CHECKING:
    from .._application import Application

logger = logging.getLogger("velocipy")
_OPEN_BODY = OpenBody()

Flow = Generator[Effect, Any, None]


@dataclass(slots=True)
class HTTPLayer:
    """A user middleware in the `call_next` style: `fn(request, call_next) -> Response`."""

    fn: Callable[..., Any]
    is_async: bool
    name: str


Layer = Transform | HTTPLayer


class MiddlewareStack:
    """An app's core middleware, outermost first, and the flows that run them."""

    __slots__ = ("app", "layers", "exchange", "_request_hooks", "_response_hooks")

    def __init__(self, app: Application, layers: tuple[Layer, ...]) -> None:
        self.app = app
        self.layers = layers
        self._request_hooks: tuple[tuple[int, Any], ...] = ()
        self._response_hooks: tuple[Any, ...] = ()
        self.exchange: Callable[[RequestHead], Exchange] = self._layered_exchange
        transforms = [layer for layer in layers if isinstance(layer, Transform)]
        if len(transforms) == len(layers):
            # Built-in middleware only (CORS, GZip...), the common case: one wrapper
            # around the app's own exchange for all of them, with only the hooks each
            # transform overrides, instead of a generator and an exchange per layer.
            self._request_hooks = tuple(
                (index, layer.request)
                for index, layer in enumerate(transforms)
                if type(layer).request is not Transform.request
            )
            self._response_hooks = _response_hooks(layers)
            self.exchange = self._transformed_exchange

    def _layered_exchange(self, head: RequestHead) -> Exchange:
        """A new exchange for one request, through every layer."""
        return Exchange(head, self.flow(0, head), self.app)

    def _transformed_exchange(self, head: RequestHead) -> Exchange:
        """`exchange` when every layer is a `Transform`: what the layered flows answer,
        in the same order, with one wrapper at most."""
        app = self.app
        for index, hook in self._request_hooks:
            answer = hook(head)
            if answer is not None:  # answered at once: only the layers outside see it
                respond = _to_respond(answer, head, (), None)
                outer = _response_hooks(self.layers[:index])
                return Exchange(head, _answer_flow(respond, outer, head), app)
        exchange = type(app).exchange(app, head)  # the app's own way: routing, the right flow
        if self._response_hooks:
            exchange._flow = _responses_flow(exchange._flow, self._response_hooks, head)
        return exchange

    def flow(self, index: int, head: RequestHead) -> Flow:
        """The flow of `head` through the layers from `index` inward, then the route."""
        if index == len(self.layers):
            # The app's own way to start a request (routing, the right flow), taken from
            # the class: the instance's `exchange` is this stack's.
            app = self.app
            return type(app).exchange(app, head)._flow
        layer = self.layers[index]
        if isinstance(layer, HTTPLayer):
            return _call_next_flow(self, index, layer, head)
        return _transform_flow(self, index, layer, head)


def _response_hooks(layers: tuple[Layer, ...]) -> tuple[Any, ...]:
    """The `response` hooks the transforms among `layers` override, innermost first."""
    return tuple(
        layer.response
        for layer in reversed(layers)
        if isinstance(layer, Transform) and type(layer).response is not Transform.response
    )


def _answer_flow(respond: Respond, hooks: tuple[Any, ...], head: RequestHead) -> Flow:
    """A transform's own answer, through the response `hooks` of the layers outside it."""
    for hook in hooks:
        respond = hook(head, respond)
    try:
        yield respond
    except Exception:
        pass  # not delivered: nothing ran, nothing to settle


def _responses_flow(inner: Flow, hooks: tuple[Any, ...], head: RequestHead) -> Flow:
    """`inner`, each `Respond` passed through `hooks` (innermost first) on its way out."""
    effect = inner.send(None)
    while True:
        if type(effect) is Respond:
            for hook in hooks:
                effect = hook(head, effect)
        try:
            value = yield effect
        except BaseException as error:
            try:
                effect = inner.throw(error)
            except StopIteration:
                return
        else:
            try:
                effect = inner.send(value)
            except StopIteration:
                return


def _transform_flow(
    stack: MiddlewareStack, index: int, layer: Transform, head: RequestHead
) -> Flow:
    answer = layer.request(head)
    if answer is not None:
        yield from _answer_flow(_to_respond(answer, head, (), None), (), head)
    else:
        yield from _responses_flow(stack.flow(index + 1, head), (layer.response,), head)


def _call_next_flow(
    stack: MiddlewareStack, index: int, layer: HTTPLayer, head: RequestHead
) -> Flow:
    if not isinstance(head, StatefulHead):
        head = StatefulHead.of(head, State())
    part = NextPart(stack, index + 1)
    failure: BaseException | None = None
    # The middleware reads the body only if it asks (`await request.body()`); files of
    # a form it reads are closed last, after the inner exchanges' tasks.
    uploads: list[UploadFile] = []
    access = BodyAccess((yield _OPEN_BODY), uploads)
    try:
        try:
            request = MiddlewareRequest(head, body=None, app=stack.app, access=access)
            result = yield CallNext(layer.fn, request, part, layer.is_async)
            if not isinstance(result, Response):
                raise TypeError(
                    f"middleware {layer.name} returned {type(result).__name__}, not a Response"
                )
            respond = _to_respond(result, head, tuple(part.tasks), None)
        except (ClientDisconnected, GeneratorExit):
            raise
        except Exception as raised:
            failure = raised
            if isinstance(raised, (HTTPException, ClientError)):
                response, error = default_error_response(raised, layer.name)
            else:
                logger.error(
                    "Exception in middleware %s for %s %s",
                    layer.name,
                    head.method,
                    head.path,
                    exc_info=unwrap(raised),  # a contained `sys.exit()`: the real one
                )
                response = JSONResponse({"detail": "Internal Server Error"}, 500)
                error = unwrap(raised)
            # The inner tasks still come with it: they follow the error path once the
            # 500 is out, and drivers hand them to their task runners as usual.
            respond = _to_respond(response, head, tuple(part.tasks), error)
        access.open = False  # the connection may serve its next request from now on
        try:
            yield respond
        except Exception as undelivered:  # passed on, so the inner tasks say why
            yield from _settle(part, undelivered)
        else:
            if failure is None:
                yield from _settle(part, None)
            else:
                reason = f"middleware {layer.name} failed after the handler answered"
                yield from _settle(part, ResponseReplaced(reason))
        if uploads:
            yield from _close_uploads(uploads, layer.name)
            uploads.clear()
    finally:
        for upload in uploads:  # cut short: no effect can be yielded any more
            upload.file.close()
        for inner in part.started:  # only an exchange cut short leaves any open
            inner.close()


def _settle(part: NextPart, undelivered: Exception | None) -> Flow:
    """Resume the inner exchanges once the outer response is out (or is not coming).

    Their effects (tasks, cleanup) are handed through to the driver unchanged.
    """
    for inner in part.started:
        if inner.phase is not Phase.RESPONDING:
            continue  # it failed before answering: nothing of it is left to run
        effect = inner.send(None) if undelivered is None else inner.throw(undelivered)
        while type(effect) is not Done:
            try:
                value = yield effect
            except BaseException as error:
                effect = inner.throw(error)
            else:
                effect = inner.send(value)


def _to_respond(
    response: Response,
    head: RequestHead,
    tasks: tuple[Any, ...],
    error: BaseException | None,
) -> Respond:
    """The `Respond` for what a middleware returned (a `NextResponse` keeps its framing)."""
    if not isinstance(response, NextResponse):
        return _respond(response, head, tasks, error)
    headers = list(response.raw_headers)
    stream = response.stream_body()
    status = response.status_code
    body = b""
    error = error or response.error
    if stream is None and allows_body(status):
        body = response.body
        kept = response.kept_length()
        if kept is not None:
            headers.append((b"content-length", kept))  # HEAD: the length of the GET body
        else:
            headers.append((b"content-length", b"%d" % len(body)))
    if head.method == "HEAD":
        body = b""
        stream = None
    return Respond(status, headers, body, stream, tasks, error)
