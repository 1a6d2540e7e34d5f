"""The exchange: one request's life, from its head to its last background task.

Protocol (every adapter drives it the same way)::

    ex = app.exchange(head)          # head: RequestHead
    effect = ex.start()
    while not isinstance(effect, Done):
        try:
            result = perform(effect)  # the adapter's part
        except Exception as error:
            effect = ex.throw(error)
        else:
            effect = ex.send(result)

`perform` means, by effect:

- `ReadBody(limit)`: read the whole body; send the bytes. Throw `BodyTooLarge`
  past the limit, `ClientDisconnected` if the client left.
- `Call(fn, args, kwargs, is_async)`: call user code; send its result (awaited
  when `is_async`), or throw what it raised.
- `Respond(...)`: send the response; then `send(None)`, or throw
  `ClientDisconnected` if it could not be delivered completely. What follows
  are the background tasks and the cleanup of generator dependencies, as more
  `Call` effects: the adapter may drive that part anywhere it likes (a task
  group, a thread pool), since the response is already out.
- `CallNext(fn, request, next, is_async)`: call an HTTP middleware with a
  `call_next` the driver makes (see `CallNext`); send its result.
- `ReadChunk`, `OpenSpool`, `OpenBody`: the streamed reads of multipart forms and
  of `request.stream()` (see `_events.py`, `_forms.py`, `_request.py`).
- `Done()`: nothing left.

Order of work, written once here: route match; body read (only if some
parameter needs it); every parameter read and validated (no user code runs
when one is invalid); dependencies called depth-first in declaration order,
cached per request; the handler; the response. After it is delivered: the
tasks in the order added (each failure logged, the rest continue); then the
generator dependencies' cleanup, last opened first. If the handler or a
dependency raises, the exception is thrown into the open generator
dependencies first (so they may translate it), then turned into an error
response by the exception handlers; that request's tasks do not run, unless
they asked to with `run_on="error"` or `"always"` (see `_tasks.py`).

`Exchange` wraps the generator so that misuse (sending after `Done`, bytes
where a call result was due, starting twice) raises `LocalProtocolError` at
once instead of corrupting the flow.
"""

from __future__ import annotations

import copy
import enum
import logging
import types
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, quote

from ._convert import Invalid
from ._datastructures import Headers, QueryParams, parse_cookie_header
from ._errors import (
    ClientDisconnected,
    ClientError,
    ContainedBaseException,
    HTTPException,
    InvalidJSON,
    LocalProtocolError,
    MalformedBody,
    RequestValidationError,
    ResponseDiscarded,
    ResponseReplaced,
)
from ._events import (
    Call,
    CallNext,
    Done,
    Effect,
    OpenBody,
    OpenSpool,
    ReadBody,
    ReadChunk,
    RequestHead,
    Respond,
)
from ._forms import read_form
from ._plans import Kind, ParamPlan, Plan, Source
from ._queue import (
    QueuedTask,
    detach_batch,
    new_queued_tasks,
    publish_flow,
    queued_part,
    unpublished_flow,
)
from ._request import BodyAccess, Request, decode_json
from ._responses import JSONResponse, RedirectResponse, Response, encode_json
from ._status import allows_body
from ._tasks import (
    BackgroundTasks,
    Task,
    TaskState,
    log_abandoned,
    log_succeeded,
    new_background_tasks,
    release_tasks,
    run_tasks,
    task_failed,
    to_error_path,
    unwrap,
)
from ._uploads import FormData, UploadFile

if TYPE_CHECKING:
    from ._application import Application
    from ._backends import TaskBackend
    from ._routing import Route

logger = logging.getLogger("velocipy")

_MISSING: Any = object()
#: `_Context.path_params` until a route matched: empty, and read-only, as it is shared.
_NO_PATH_PARAMS: Any = types.MappingProxyType({})
_DONE = Done()
Flow = Generator[Effect, Any, None]


class Phase(enum.Enum):
    """Where an exchange stands; each phase admits only the adapter calls in `_ALLOWED`."""

    #: Built, not started.
    IDLE = "idle"
    #: Waiting for the body bytes of a `ReadBody`.
    READING = "reading"
    #: Waiting for the `(data, more)` of a `ReadChunk`.
    STREAMING = "streaming"
    #: Waiting for the result of a `Call` (or the spool of an `OpenSpool`).
    CALLING = "calling"
    #: Waiting to hear that the `Respond` was sent (`send(None)`) or not (`throw`).
    RESPONDING = "responding"
    #: Over: `Done` was returned, or the flow raised.
    DONE = "done"


_PHASE_OF = {
    ReadBody: Phase.READING,
    ReadChunk: Phase.STREAMING,
    OpenSpool: Phase.CALLING,
    OpenBody: Phase.CALLING,
    Call: Phase.CALLING,
    CallNext: Phase.CALLING,
    Respond: Phase.RESPONDING,
}
# Module constants: `Phase.CALLING` is a global and an attribute lookup per use.
_IDLE, _READING, _CALLING = Phase.IDLE, Phase.READING, Phase.CALLING
_RESPONDING, _DONE_PHASE = Phase.RESPONDING, Phase.DONE
_STREAMING = Phase.STREAMING


class Exchange:
    """One request/response exchange, driven by an adapter through effects."""

    __slots__ = ("head", "app", "_flow", "_phase")

    def __init__(self, head: RequestHead, flow: Flow, app: Application | None = None) -> None:
        self.head = head
        #: The application serving this exchange (drivers read its task limits).
        self.app = app
        self._flow = flow
        self._phase = _IDLE

    @property
    def phase(self) -> Phase:
        return self._phase

    def start(self) -> Effect:
        """Begin the exchange and return its first effect."""
        if self._phase is not _IDLE:
            raise LocalProtocolError(f"start() called on an exchange in phase {self._phase.name}")
        try:  # `_advance`, inlined as in `send`
            effect = self._flow.send(None)
        except StopIteration:
            self._phase = _DONE_PHASE
            return _DONE
        except BaseException:
            self._phase = _DONE_PHASE
            raise
        self._phase = _PHASE_OF[type(effect)]
        return effect

    def send(self, value: Any) -> Effect:
        """Resume with the result of the pending effect; return the next effect."""
        phase = self._phase
        if phase is _CALLING:
            pass
        elif phase is _READING:
            if not isinstance(value, (bytes, bytearray)):
                raise LocalProtocolError(
                    f"ReadBody must be answered with bytes, got {type(value).__name__}"
                )
        elif phase is _RESPONDING:
            if value is not None:
                raise LocalProtocolError("Respond must be answered with send(None) once sent")
        elif phase is _STREAMING:
            if type(value) is not tuple or len(value) != 2:
                raise LocalProtocolError(
                    f"ReadChunk must be answered with (bytes, more), got {value!r:.80}"
                )
        else:
            raise LocalProtocolError(f"send() called on an exchange in phase {phase.name}")
        # Resumed right here, not through a helper: this runs several times per request.
        try:
            effect = self._flow.send(value)
        except StopIteration:
            self._phase = _DONE_PHASE
            return _DONE
        except BaseException:
            self._phase = _DONE_PHASE
            raise
        self._phase = _PHASE_OF[type(effect)]
        return effect

    def throw(self, error: BaseException) -> Effect:
        """Resume by raising `error` where the pending effect was; return the next effect."""
        if self._phase in (Phase.IDLE, Phase.DONE):
            raise LocalProtocolError(f"throw() called on an exchange in phase {self._phase.name}")
        if not isinstance(error, BaseException):
            raise LocalProtocolError(f"throw() needs an exception, got {error!r}")
        try:
            effect = self._flow.throw(error)
        except StopIteration:
            self._phase = _DONE_PHASE
            return _DONE
        except BaseException:
            self._phase = _DONE_PHASE
            raise
        self._phase = _PHASE_OF[type(effect)]
        return effect

    def close(self) -> None:
        """Abandon the exchange (the adapter is giving up on it); its tasks are logged."""
        if self._phase is not Phase.DONE:
            self._phase = Phase.DONE
            self._flow.close()


def new_exchange(head: RequestHead, flow: Flow, app: Application) -> Exchange:
    """`Exchange(head, flow, app)`, built bare: calling the class enters the interpreter
    from C once more (`type.__call__`, then `__init__`), which costs more time than its
    instruction count says; this is one Python call. Once per request."""
    exchange: Exchange = _new(Exchange)
    exchange.head = head
    exchange.app = app
    exchange._flow = flow
    exchange._phase = _IDLE
    return exchange


class _Context:
    """Per-request state shared by the steps of one flow.

    No `__slots__`: every field but the two given starts as the class's default, so
    making one per request stores two attributes, not sixteen (the defaults are all
    immutable, and each field is replaced, never changed in place, when a request sets
    it). On CPython 3.11 each instance still has a value array with room for every
    field name (they are all in the class's shared key table from import on, see
    `_share_the_field_names`); what the defaults save is the stores. How instances
    keep their attributes changes between CPython versions (3.12, 3.13):
    `tests/core/test_context_memory.py` checks that no request's context takes a dict.
    """

    route: Route | None = None
    path_params: dict[str, str] = _NO_PATH_PARAMS
    body: bytes = b""
    tasks: BackgroundTasks | None = None
    #: The `Response` parameter's object, made when a parameter asks for it.
    response: Response | None = None
    # Both made on first use: most requests have no dependency.
    cache: dict[Any, Any] | None = None
    exits: list[tuple[Any, bool]] | None = None
    _request: Request | None = None
    _query: QueryParams | None = None
    _headers: Headers | None = None
    _cookies: dict[str, str] | None = None
    _json: Any = _MISSING
    _form: dict[str, list[Any]] | None = None
    #: How the `Request` reads a body left unread for it (`OpenBody`), if it was.
    access: BodyAccess | None = None

    def __init__(self, app: Application, head: RequestHead) -> None:
        self.app = app
        self.head = head

    def shed(self) -> None:
        """Drop what only reading the request needed; the tasks and cleanup keep the rest."""
        self.body = b""
        self.cache = None
        self._request = self._query = self._headers = self._cookies = self._form = None
        self._json = _MISSING

    @property
    def label(self) -> str:
        route = self.route
        return route.label if route is not None else f"{self.head.method} {self.head.path}"

    def request(self) -> Request:
        if self._request is None:
            route_path = self.route.path if self.route is not None else ""
            body: bytes | None = self.body
            if self.access is not None or (self._form is not None and not body):
                body = None  # to be read by the request, or already read as a form
            self._request = Request(
                self.head, dict(self.path_params), body, route_path, self.app, self.access
            )
            if self._form is not None:
                self._request._form = FormData(self._form)
        return self._request

    def sub_response(self) -> Response:
        """The `Response` a handler or dependency asked for: its headers, cookies and
        status (None until set) go onto the response sent."""
        if self.response is None:
            response = self.response = Response()
            response.status_code = None  # type: ignore[assignment]  # "not set", as FastAPI
        return self.response

    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.head.query_string)
        return self._query

    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.head.headers)
        return self._headers

    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = parse_cookie_header(self.headers().get("cookie") or "")
        return self._cookies

    def json(self) -> Any:
        if self._json is _MISSING:
            self._json = decode_json(self.body) if self.body else _MISSING
        return self._json

    def form(self) -> dict[str, list[Any]]:
        if self._form is None:
            form: dict[str, list[Any]] = {}
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedBody("Form body is not valid UTF-8") from None
            for key, value in parse_qsl(text, keep_blank_values=True):
                form.setdefault(key, []).append(value)
            self._form = form
        return self._form


def _share_the_field_names() -> None:
    """Set every `_Context` field once, now, so that no request's context needs a dict.

    CPython (3.11 on) stores the attributes of a class's instances in a table of
    names shared by all of them, and a small array per instance: no dict. A name
    not yet in the table is added to it only while few instances exist (each one
    made lowers how many more names it takes, down to one). After that, an
    instance given a name the table lacks gets a dict of its own: one more object
    per request for the collector to scan, as long as the process lives. Which
    names a context gets depends on the route (`tasks`, `body`, `exits`...), so a
    server whose first requests were of one kind (health checks, say) gave every
    later request of another kind a dict. Setting them all here, on the first
    instance, puts every name in the table.
    """
    context = _new(_Context)
    for name in ("app", "head", *_Context.__annotations__):
        setattr(context, name, None)


def bare_flow(
    app: Application, head: RequestHead, route: Route, path_params: dict[str, str]
) -> Flow:
    """The flow for a handler that takes no arguments, the simplest and a common case.

    `Application.exchange` picks it (or `exchange_flow`) after matching the route.

    `exchange_flow` with what cannot happen here left out: no parameters to read,
    no dependencies, no tasks, hence no per-request context unless the handler
    fails, and nothing to settle after the response, delivered or not.
    """
    try:
        result = yield route.bare_call
        respond = _result_to_respond(result, route, head, ())
    except (ClientDisconnected, GeneratorExit):
        raise
    except Exception as raised:
        ctx = _Context(app, head)
        ctx.route = route
        ctx.path_params = path_params
        response, error = yield from _error_response(ctx, raised)
        respond = _respond(response, head, (), error)
    try:
        yield respond
    except Exception:
        pass  # not delivered: no tasks to abandon, nothing to clean up


def exchange_flow(app: Application, head: RequestHead, matched: Any = _MISSING) -> Flow:
    """The general flow for `head`; `matched` is the router's answer, if already asked."""
    # `_Context(app, head)`, built bare (as `new_exchange`).
    ctx: _Context = _new(_Context)
    ctx.app = app
    ctx.head = head
    tasks: tuple[Task, ...] = ()
    # Bound on every path, so that they can be let go of before the tasks run.
    result: Any = None
    kwargs: Any = None
    values: Any = None
    # Every UploadFile the form reader makes: closed after the tasks, on every path. A
    # local, not a context slot: the requests that read no form pay the least for it.
    uploads: list[UploadFile] | None = None
    # The app's queue backend, read once where the tasks are made: every later use is
    # behind a task, so this None stands only where there are none.
    queue: TaskBackend | None = None
    try:
        try:
            if matched is _MISSING:
                matched = app.router.match(head.method, head.path)
            if not isinstance(matched, tuple):
                _unrouted(matched)
            route, ctx.path_params = matched
            ctx.route = route
            plan = route.plan
            if plan.trivial:
                result = yield route.bare_call  # built once: no arguments to resolve
            else:
                if plan.needs_body or (app.dependency_overrides and _below(plan, ctx, _BODY)):
                    # Streamed for multipart (see `_forms.py`); an override may read a
                    # form where the original did not.
                    if plan.needs_form or (app.dependency_overrides and _below(plan, ctx, _FORM_)):
                        uploads = []
                        ctx._form = yield from read_form(
                            ctx.headers(),
                            app.form_limits,
                            app.read_body_effect,
                            _memory_fields(plan, ctx),
                            uploads,
                        )
                    else:
                        ctx.body = yield app.read_body_effect
                elif plan.opens_body or (app.dependency_overrides and _below(plan, ctx, _OPENS)):
                    # Only the `Request` reads the body, when and as it likes: left unread.
                    uploads = []
                    ctx.access = BodyAccess((yield _OPEN_BODY), uploads)
                problems: list[dict[str, Any]] = []
                if plan.depends:
                    values = {}
                    _read_params(plan, ctx, values, problems)
                    if problems:
                        raise RequestValidationError(problems)
                    if plan.wants_tasks:  # queued ones when the app's backend is a queue
                        queue = app.task_queue
                        ctx.tasks = (
                            new_background_tasks(app.tasks)
                            if queue is None
                            else new_queued_tasks(app.tasks, queue, route.label)
                        )
                    kwargs = yield from _solve(plan, ctx, values)
                    if route.hidden:  # route-wide dependencies: run, not passed on
                        for name in route.hidden:
                            del kwargs[name]
                else:
                    # No dependencies: the handler's own values are its arguments, with
                    # no sub-generator to resolve them (one frame less per request).
                    kwargs = _read_plain(plan, ctx, problems)
                    if problems:
                        raise RequestValidationError(problems)
                    if plan.wants_tasks:  # queued ones when the app's backend is a queue
                        queue = app.task_queue
                        ctx.tasks = (
                            new_background_tasks(app.tasks)
                            if queue is None
                            else new_queued_tasks(app.tasks, queue, route.label)
                        )
                    for param in plan.special:  # BackgroundTasks, Request and Response
                        source = param.source
                        kwargs[param.name] = (
                            ctx.tasks
                            if source is _TASKS
                            else ctx.request()
                            if source is _REQUEST
                            else ctx.sub_response()
                        )
                result = yield _handler_call(route.endpoint, kwargs, plan.is_async)
            if ctx.tasks is not None:
                tasks = release_tasks(
                    ctx.tasks._tasks,  # the list itself: `.tasks` would copy it
                    app.tasks,
                    handler_failed=False,
                    route=route.label,
                    method=head.method,
                )
            status = route.json_status  # `_result_to_respond`'s fast path, inlined
            if status is not None and not isinstance(result, Response):
                body = encode_json(result)
                headers = [_JSON_TYPE, (b"content-length", b"%d" % len(body))]
                respond = _json_respond(
                    status, headers, b"" if head.method == "HEAD" else body, tasks
                )
            else:
                respond = _result_to_respond(result, route, head, tasks, ctx.response)
        except (ClientDisconnected, GeneratorExit):
            raise
        except Exception as raised:
            raised = yield from _unwind(ctx, raised)
            response, error = yield from _error_response(ctx, raised)
            if ctx.tasks is not None:
                tasks = release_tasks(
                    ctx.tasks._tasks,
                    app.tasks,
                    handler_failed=True,
                    route=ctx.label,
                    method=head.method,
                )
            respond = _respond(response, head, tasks, error)

        if tasks:
            # The tasks may wait and run for long (a queue under WSGI, a thousand in
            # flight): let go of what only the handler needed, the request body above
            # all, so that waiting exchanges hold less memory and the collector
            # scans less.
            matched = result = kwargs = values = None
            # These two as well: the frame holds them while the tasks run, and each is
            # one more object every collection scans per request in flight.
            problems = headers = None  # type: ignore[assignment]
            ctx.shed()
            if queue is not None and queue.before_response:
                respond = yield from _publish_before_response(app, head, tasks, respond)
        if uploads is not None and ctx.access is not None:
            ctx.access.open = False  # the connection may serve its next request from now on
        try:
            yield respond
        except ResponseReplaced:
            # A middleware failed after this answer and its error response went out
            # instead: the request failed, so the error path's tasks run (below).
            tasks = to_error_path(ctx.tasks._tasks) if ctx.tasks is not None else ()
        except Exception as undelivered:
            reason = (
                undelivered.reason
                if isinstance(undelivered, ResponseDiscarded)
                else "the response was not delivered"
            )
            log_abandoned(tasks, ctx.label, reason)
            tasks = ()
        if tasks:  # each has its route's label by now (release_tasks sets it)
            del respond
            if queue is None:
                # Every task to run is in `tasks` now: let go of the container (and its
                # list), two objects fewer that each collection scans per waiting flow.
                # Nothing unsettled is lost to the finally clause: a flow cut short in a
                # task or a task's error hook abandons the rest itself (`task_failed`).
                ctx.tasks = None
                # `run_tasks`, inlined: on CPython 3.11 a generator resumed through `yield
                # from` enters the interpreter once more from C at every step, which costs
                # more time than its instruction count says (see `bench/bytecodes.py`).
                route_label = tasks[0].route
                debug = logger.isEnabledFor(logging.DEBUG)
                for task in tasks:
                    if task.state is not _PENDING:  # settled before its turn
                        continue
                    try:
                        yield task._start()
                    except BaseException as error:
                        yield from task_failed(
                            task, error, tasks, route_label, app.task_error_hooks
                        )
                    else:
                        task._succeed()
                        if debug:
                            log_succeeded(task, route_label)
            else:
                yield from _queued_tasks_after_response(app, ctx, tasks)
                ctx.tasks = None  # every task is settled: nothing for the finally clause to do
        else:
            ctx.tasks = None  # none to run: nothing for the finally clause to do
        if ctx.exits:
            yield from _cleanup(ctx)
        if uploads:
            # Last of all, after the tasks: a task handed an UploadFile can still read it.
            yield from _close_uploads(uploads, ctx.label)
            uploads = None
    finally:
        if ctx.tasks is not None:
            # Only an exchange cut short (closed, client gone mid-handler, cancelled)
            # leaves tasks unsettled; say so rather than lose them silently.
            log_abandoned(ctx.tasks.tasks, ctx.label, "the exchange was cut short")
        if uploads:
            # Cut short (client gone mid-upload, cancelled): no effect can be yielded any
            # more, so the files are closed here. They are anonymous temporary files: closing
            # one is a single system call, and the system deletes it.
            for upload in uploads:
                try:
                    upload.file.close()
                except Exception:  # pragma: no cover - closing a temporary file cannot fail
                    logger.exception("Closing an upload of %s failed", ctx.label)


def _publish_before_response(
    app: Application, head: RequestHead, tasks: tuple[Task, ...], respond: Respond
) -> Generator[Effect, Any, Respond]:
    """`publish="before_response"`: publish the batch now, so a 200 means it is in the
    broker; if it cannot be, and the policy is "fail", answer 503 instead."""
    backend = app.task_queue
    assert backend is not None
    queued = queued_part(tasks)
    if not queued:
        return respond
    route = tasks[0].route
    if (yield from publish_flow(backend, queued, route, app.task_error_hooks)):
        return respond
    if backend.on_failure != "fail":
        return respond  # "log": logged and hooked; "inline": they run here after the response
    unavailable = JSONResponse({"detail": "Service Unavailable"}, 503, {"Retry-After": "1"})
    return _respond(unavailable, head, tasks, None)


def _queued_tasks_after_response(app: Application, ctx: _Context, tasks: tuple[Task, ...]) -> Flow:
    """After the response, with a queue backend: inline tasks run here first, then the
    `yield` dependencies are cleaned up (the commit), then the batch is published. A
    failed cleanup publishes nothing; a failed publish follows the backend's policy."""
    backend = app.task_queue
    assert backend is not None
    route = tasks[0].route
    hooks = app.task_error_hooks
    if backend.before_response:
        # Published already; what is left pending runs here: inline tasks, and those
        # whose publishing failed under the "inline" policy, in the order added.
        yield from run_tasks([task for task in tasks if task.state is _PENDING], route, hooks)
        return
    # `queued_part` and the tasks that run here, in one pass: no call, no comprehension.
    queued: list[QueuedTask] = []
    here: list[Task] = []
    for task in tasks:
        if task.state is _PENDING:
            if isinstance(task, QueuedTask) and not task.inline:
                queued.append(task)
            else:
                here.append(task)
    if here:
        yield from run_tasks(here, route, hooks)
    if not queued:
        return
    if ctx.exits and not (yield from _cleanup(ctx)):
        log_abandoned(
            queued,
            route,
            "a dependency's cleanup failed, so nothing was published (no commit, no tasks)",
            level=logging.ERROR,
        )
        return
    # A backend that detaches takes the batch with a plain call where an event loop runs
    # this flow: then nothing is left for the drivers (see `detach_batch`); else (or
    # where it declines) `publish_flow`. Either way a failure follows one policy.
    try:
        published = backend.detaches and detach_batch(backend, queued, route, hooks)
    except Exception as failure:
        yield from unpublished_flow(backend, queued, route, hooks, failure)
    else:
        if published or (yield from publish_flow(backend, queued, route, hooks)):
            return
    if backend.on_failure == "inline":
        yield from run_tasks(queued, route, hooks)


def _unrouted(allowed: frozenset[str] | None) -> NoReturn:
    """Raise the 404, or the 405 naming the allowed methods, for a request no route takes."""
    if allowed is None:
        raise HTTPException(404, "Not Found")
    raise HTTPException(405, "Method Not Allowed", headers={"Allow": ", ".join(sorted(allowed))})


_BODY, _FORM_, _OPENS = "needs_body", "needs_form", "opens_body"
_OPEN_BODY = OpenBody()


def _below(plan: Plan, ctx: _Context, flag: str) -> bool:
    """Whether `plan` or a dependency below it, overrides honoured, has `flag` set."""
    if getattr(plan, flag):
        return True
    return any(_below(_effective(param, ctx), ctx, flag) for param in plan.depends)


def _memory_fields(plan: Plan, ctx: _Context) -> frozenset[str]:
    """The form fields read as `bytes` by `plan` and below it, overrides honoured."""
    if not ctx.app.dependency_overrides:
        return plan.memory_fields
    fields = plan.memory_fields
    for param in plan.depends:
        fields |= _memory_fields(_effective(param, ctx), ctx)
    return fields


def _effective(param: ParamPlan, ctx: _Context) -> Plan:
    """The plan for a Depends parameter, honouring `app.dependency_overrides` right now."""
    plan: Plan = param.dependency  # type: ignore[assignment]  # set for every DEPENDS param
    overrides = ctx.app.dependency_overrides
    if overrides:
        replacement = overrides.get(plan.call)
        if replacement is not None:
            return ctx.app.override_plan(replacement, ctx.route)
    return plan


def _read_params(
    plan: Plan, ctx: _Context, values: dict[int, dict[str, Any]], problems: list[dict[str, Any]]
) -> None:
    """Read and convert every request-sourced parameter of `plan` and the plans below it.

    The dependencies' parameters are read first, so that problems are listed in
    FastAPI's order: a dependency's before those of what depends on it.
    """
    if plan.trivial or id(plan) in values:  # nothing to read (`_solve` copes with no entry)
        return
    overrides = ctx.app.dependency_overrides
    for param in plan.depends:
        # `_effective` only when overrides are set, the recursion only when there is
        # something to read: two calls per dependency saved in the common case.
        sub: Plan = _effective(param, ctx) if overrides else param.dependency  # type: ignore[assignment]
        if not sub.trivial:
            _read_params(sub, ctx, values, problems)
    values[id(plan)] = _read_plain(plan, ctx, problems)


def _read_plain(plan: Plan, ctx: _Context, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Read and convert the request-sourced parameters of `plan` itself."""
    found: dict[str, Any] = {}
    for param in plan.plain:
        raw = _MISSING
        source = param.source
        if source is _QUERY:
            if not param.many:
                raw = ctx.query().get(param.alias, _MISSING)
            elif param.gather is None:
                raw = ctx.query().getlist(param.alias) or _MISSING
            else:  # a model of several query parameters
                raw = param.gather(ctx.query())
        elif source is _PATH:
            raw = ctx.path_params.get(param.alias, _MISSING)
        elif source is _BODY_SOURCE:  # before the rarer sources: every JSON body comes here
            raw = ctx._json
            if raw is _MISSING and ctx.body:
                headers = ctx.head.headers
                # Decoded as JSON unless the content type says otherwise (`_is_json`). The
                # usual field, whole, is found by one `in` in C; any other form (or none)
                # is looked for by name, the first one deciding. (A request with two
                # Content-Type fields, one of them exactly that, is malformed and read
                # as JSON.)
                if _JSON_TYPE not in headers:
                    for name, value in headers:
                        if name == b"content-type":
                            if not _is_json(value):
                                raw = ctx.body
                            break
                if raw is _MISSING:
                    try:
                        raw = decode_json(ctx.body)
                    except InvalidJSON as error:
                        raise _json_invalid(error) from None
                ctx._json = raw
            if param.embed and raw is not _MISSING:
                # Not an object: every embedded field is missing, as FastAPI says.
                raw = raw.get(param.alias, _MISSING) if type(raw) is dict else _MISSING
        elif source is _HEADER:
            if not param.many:
                raw = ctx.headers().get(param.alias, _MISSING)
            elif param.gather is None:
                raw = ctx.headers().getlist(param.alias) or _MISSING
            else:
                raw = param.gather(ctx.headers())
        elif source is _COOKIE:
            if param.gather is None:
                raw = ctx.cookies().get(param.alias, _MISSING)
            else:
                raw = param.gather(ctx.cookies())
        elif source is _FORM:
            if param.form_model:
                raw = {k: v[-1] if len(v) == 1 else v for k, v in ctx.form().items()}
            else:
                entries = ctx.form().get(param.alias)
                if entries:
                    raw = entries if param.many else entries[-1]
        if raw is _MISSING:
            if param.required:
                problems.append(
                    {
                        "type": "missing",
                        "loc": _location(param),
                        "msg": "Field required",
                        "input": None,
                    }
                )
            elif param.default_factory is not None:
                found[param.name] = param.default_factory()
            else:
                default = param.default
                found[param.name] = (
                    copy.copy(default) if isinstance(default, (list, dict, set)) else default
                )
            continue
        convert = param.convert
        try:
            found[param.name] = convert(raw) if convert is not None else raw
        except Invalid as invalid:
            location = _location(param)
            for problem in invalid.errors:
                problem = {**problem, "loc": [*location, *problem["loc"]]}
                if source is _FORM and isinstance(problem.get("input"), UploadFile):
                    # An uploaded file is not JSON: the error names it instead.
                    problem["input"] = _describe_upload(problem["input"])
                problems.append(problem)
    return found


def _describe_upload(upload: UploadFile) -> dict[str, Any]:
    """What a validation error shows of an uploaded file: never its content."""
    return {"filename": upload.filename, "content_type": upload.content_type, "size": upload.size}


def _is_json(content_type: bytes) -> bool:
    """Whether JSON body parameters read a body of this content type as JSON.

    As FastAPI decides: `application/json` and `application/*+json` are JSON;
    any other content type leaves the bytes as they are, for validation to
    refuse (`model_attributes_type`, `dict_type`...) or take (`str`, `bytes`).
    A request without a content type is read as JSON (FastAPI's
    `strict_content_type=False`), so its check never gets here.
    """
    media = content_type.partition(b";")[0].strip().lower()
    main, _, sub = media.partition(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


def _json_invalid(error: InvalidJSON) -> RequestValidationError:
    """FastAPI's answer to a JSON body that does not decode."""
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ["body", error.position],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": error.msg},
            }
        ]
    )


# Enum members as module constants: `Source.HEADER` is an attribute lookup on an Enum
# class, whose metaclass __getattr__ makes it about 5x a plain attribute, on every use.
_QUERY, _PATH, _HEADER, _COOKIE = Source.QUERY, Source.PATH, Source.HEADER, Source.COOKIE
_FORM, _DEPENDS, _REQUEST = Source.FORM, Source.DEPENDS, Source.REQUEST
_BODY_SOURCE = Source.BODY
_TASKS, _RESPONSE = Source.TASKS, Source.RESPONSE
_FUNCTION, _GENERATOR = Kind.FUNCTION, Kind.GENERATOR


def _location(param: ParamPlan) -> list[Any]:
    """Where a parameter is in the request, as FastAPI-style `loc` (built only for errors)."""
    source = param.source
    if source is Source.BODY:
        return ["body", param.alias] if param.embed else ["body"]
    if param.gather is not None:  # a model's errors name its fields
        return [source.value]
    if param.form_model:
        return ["body"]
    return ["body" if source is Source.FORM else source.value, param.alias]


def _solve(
    plan: Plan, ctx: _Context, values: dict[int, dict[str, Any]]
) -> Generator[Effect, Any, dict[str, Any]]:
    """Resolve `plan`'s arguments: read values plus Request, tasks and dependencies."""
    kwargs = values.get(id(plan))
    kwargs = {} if kwargs is None else dict(kwargs)
    overrides = ctx.app.dependency_overrides
    for param in plan.special:
        source = param.source
        if source is _DEPENDS:
            sub: Plan = _effective(param, ctx) if overrides else param.dependency  # type: ignore[assignment]
            key = param.dependency.call if param.dependency is not None else sub.call
            cache = ctx.cache
            if cache is None:
                cache = ctx.cache = {}
            if param.use_cache and key in cache:
                kwargs[param.name] = cache[key]
                continue
            bare = sub.bare_call
            if bare is not None:  # a function of no parameters: no sub-generators to resolve it
                value = yield bare
            else:
                value = yield from _call_dependency(sub, ctx, values)
            if param.use_cache:
                cache[key] = value
            kwargs[param.name] = value
        elif source is _REQUEST:
            kwargs[param.name] = ctx.request()
        elif source is _RESPONSE:
            kwargs[param.name] = ctx.sub_response()
        else:
            kwargs[param.name] = ctx.tasks
    return kwargs


def _call_dependency(
    plan: Plan, ctx: _Context, values: dict[int, dict[str, Any]]
) -> Generator[Effect, Any, Any]:
    kwargs = yield from _solve(plan, ctx, values)
    if plan.kind is _FUNCTION:
        return (yield Call(plan.call, (), kwargs, plan.is_async, "dependency"))
    generator = plan.call(**kwargs)  # creating a generator runs none of its code
    if plan.kind is _GENERATOR:
        value = yield Call(first_yield, (generator, plan.label), {}, False, "dependency")
        is_async = False
    else:
        value = yield Call(first_yield_async, (generator, plan.label), {}, True, "dependency")
        is_async = True
    if ctx.exits is None:
        ctx.exits = []
    ctx.exits.append((generator, is_async))
    return value


def first_yield(generator: Generator[Any, None, None], label: str) -> Any:
    """The value a generator dependency yields (its setup part runs here)."""
    try:
        return next(generator)
    except StopIteration:
        raise RuntimeError(f"dependency {label} returned without yielding a value") from None


async def first_yield_async(generator: AsyncGenerator[Any, None], label: str) -> Any:
    """The value an async generator dependency yields."""
    try:
        return await generator.__anext__()
    except StopAsyncIteration:
        raise RuntimeError(f"dependency {label} returned without yielding a value") from None


def finish_generator(generator: Generator[Any, None, None], error: BaseException | None) -> None:
    """Run a generator dependency's cleanup, raising `error` at its `yield` if given."""
    try:
        if error is None:
            next(generator)
        else:
            generator.throw(error)
    except StopIteration:
        return
    generator.close()
    raise RuntimeError("a generator dependency may yield only once")


async def finish_generator_async(
    generator: AsyncGenerator[Any, None], error: BaseException | None
) -> None:
    """Run an async generator dependency's cleanup, raising `error` at its `yield` if given."""
    try:
        if error is None:
            await generator.__anext__()
        else:
            await generator.athrow(error)
    except StopAsyncIteration:
        return
    await generator.aclose()
    raise RuntimeError("a generator dependency may yield only once")


def _unwind(ctx: _Context, error: Exception) -> Generator[Effect, Any, Exception]:
    """Throw `error` into each open generator dependency, newest first; return what comes out."""
    while ctx.exits:
        generator, is_async = ctx.exits.pop()
        finish = finish_generator_async if is_async else finish_generator
        try:
            # The exception user code raised, as it raised it: a `yield` dependency's
            # `except SystemExit:` must see a handler's `sys.exit()`.
            yield Call(finish, (generator, unwrap(error)), {}, is_async, "cleanup")
        except Exception as replaced:
            error = replaced
    return error


def _close_uploads(uploads: list[UploadFile], label: str) -> Flow:
    """Close the request's uploaded files: in memory here, on disk through the adapter."""
    for upload in uploads:
        if upload.in_memory:
            upload.file.close()
            continue
        try:
            yield Call(upload.file.close, (), {}, False, "spool")
        except Exception:
            logger.exception("Closing an upload of %s failed", label)


def _cleanup(ctx: _Context) -> Generator[Effect, Any, bool]:
    """After the response and tasks: close generator dependencies, newest first; log
    failures. Returns whether every cleanup succeeded."""
    clean = True
    while ctx.exits:
        generator, is_async = ctx.exits.pop()
        finish = finish_generator_async if is_async else finish_generator
        try:
            yield Call(finish, (generator, None), {}, is_async, "cleanup")
        except Exception as failure:
            logger.error(
                "Cleanup of a dependency for %s failed", ctx.label, exc_info=unwrap(failure)
            )
            clean = False
    return clean


_JSON_TYPE = (b"content-type", b"application/json")
_PENDING = TaskState.PENDING


# The two effects every request with parameters makes, built bare and filled: calling a
# dataclass goes through `type.__call__` and its `__init__`, ~1,200 instructions more
# per object (callgrind), on every request.
_new = object.__new__


def _handler_call(fn: Any, kwargs: dict[str, Any], is_async: bool) -> Call:
    """`Call(fn, (), kwargs, is_async, "handler")`."""
    call: Call = _new(Call)
    call.fn = fn
    call.args = ()
    call.kwargs = kwargs
    call.is_async = is_async
    call.purpose = "handler"
    call.timeout = None
    call.started = None
    return call


def _json_respond(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, tasks: tuple[Task, ...]
) -> Respond:
    """`Respond(status, headers, body, None, tasks)`: the JSON fast path's response."""
    respond: Respond = _new(Respond)
    respond.status = status
    respond.headers = headers
    respond.body = body
    respond.stream = None
    respond.tasks = tasks
    respond.error = None
    return respond


def _result_to_respond(
    result: Any,
    route: Route,
    head: RequestHead,
    tasks: tuple[Task, ...],
    sub_response: Response | None = None,
) -> Respond:
    """The response for what a handler returned; plain values take a JSON fast path."""
    status = route.json_status  # decided at declaration: no response_class, a body allowed
    if status is not None and not isinstance(result, Response):
        body = encode_json(result)
        headers = [_JSON_TYPE, (b"content-length", b"%d" % len(body))]
        return _json_respond(status, headers, b"" if head.method == "HEAD" else body, tasks)
    if isinstance(result, Response):
        # A response the handler built is sent as it is (FastAPI ignores the `Response`
        # parameter's headers then too).
        return _respond(result, head, tasks, None)
    return _respond(_to_response(result, route, sub_response), head, tasks, None)


def _to_response(result: Any, route: Route, sub_response: Response | None) -> Response:
    """A handler's plain value in its route's response: model, class, status, extra headers."""
    status = route.status_code or 200
    if sub_response is not None and sub_response.status_code:
        status = sub_response.status_code
    serializer = route.serializer
    response_class = route.response_class
    if not allows_body(status):
        response = Response(None, status)
    elif serializer is None:
        response = (response_class or JSONResponse)(result, status_code=status)
    elif response_class is None:
        # The model renders its JSON itself (pydantic's dump_json), as in FastAPI.
        response = Response(serializer.to_json(result), status, media_type="application/json")
    else:
        response = response_class(serializer.to_python(result), status_code=status)
    if sub_response is not None:
        response.raw_headers.extend(sub_response.raw_headers)
    return response


def _error_response(
    ctx: _Context, error: Exception
) -> Generator[Effect, Any, tuple[Response, BaseException | None]]:
    # A `BaseException` (contained by the driver) reaches no handler, as in FastAPI,
    # where handlers only ever see an `Exception`.
    handler = (
        None if type(error) is ContainedBaseException else ctx.app.exception_handler_for(error)
    )
    if handler is not None:
        func, is_async = handler
        try:
            result = yield Call(func, (ctx.request(), error), {}, is_async, "exception_handler")
        except Exception as failure:
            logger.exception("Exception handler %r for %s failed", func, ctx.label)
            return _server_error(), failure
        if isinstance(result, Response):
            return result, None
        return JSONResponse(result, status_code=500), None
    return default_error_response(error, ctx.label)


def default_error_response(error: Exception, label: str) -> tuple[Response, BaseException | None]:
    """The built-in answer to `error`: its own status for known kinds, else a logged 500."""
    if isinstance(error, HTTPException):
        status = error.status_code
        if not allows_body(status):
            return Response(None, status, error.headers), None
        return JSONResponse({"detail": error.detail}, status, error.headers), None
    if isinstance(error, RequestValidationError):
        return JSONResponse({"detail": error.errors()}, 422), None
    if isinstance(error, ClientError):
        return JSONResponse({"detail": error.detail}, error.status_code), None
    raised = unwrap(error)  # a contained `BaseException`: the real one, type and traceback
    logger.error("Exception in handler for %s", label, exc_info=raised)
    return _server_error(), raised


def _server_error() -> Response:
    return JSONResponse({"detail": "Internal Server Error"}, 500)


def redirect_flow(head: RequestHead, path: str) -> Flow:
    """The 307 to `path` (the request's path with its trailing slash toggled): the
    answer to a path no route takes when the other one is routed."""
    target = Request(head).base_url.rstrip("/") + quote(path)
    if head.query_string:
        target += "?" + head.query_string.decode("latin-1")
    try:
        yield _respond(RedirectResponse(target), head, (), None)
    except Exception:
        pass  # not delivered: nothing to settle


def unservable_flow(head: RequestHead, label: str) -> Flow:
    """A 500 for a request under a mount the driver cannot serve (an ASGI app reached
    without ASGI): servers refuse such an app at startup, so this is a driver's bug."""
    error = LocalProtocolError(f"{label} cannot be served by this driver")
    logger.error("Cannot serve %s %s", head.method, head.path, exc_info=error)
    try:
        yield _respond(_server_error(), head, (), error)
    except Exception:
        pass


def _respond(
    response: Response, head: RequestHead, tasks: tuple[Task, ...], error: BaseException | None
) -> Respond:
    if response.reads_request:
        response.prepare(head)
    headers = list(response.raw_headers)
    stream = response.stream_body()
    status = response.status_code
    body = b""
    if stream is None:
        if allows_body(status):
            body = response.body
            headers.append((b"content-length", str(len(body)).encode("latin-1")))
    if head.method == "HEAD":
        body = b""
        stream = None
    return Respond(status, headers, body, stream, tasks, error)


_share_the_field_names()
