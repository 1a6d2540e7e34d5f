"""The application: routes, dependency overrides, exception handlers and lifespan.

`Application` is pure: declaring routes builds their plans, and `exchange(head)`
returns an `Exchange` for one request. Serving it is the adapters' job; the
public `VelociPy` class adds the ASGI and WSGI entry points on top.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import inspect
import sys
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from ._backends import InProcess, TaskBackend
from ._datastructures import State
from ._errors import DeclarationError, HTTPException
from ._events import ReadBody, RequestHead
from ._exchange import (
    Exchange,
    bare_flow,
    exchange_flow,
    new_exchange,
    redirect_flow,
    unservable_flow,
)
from ._mounts import ASGI, NATIVE, WSGI, Mount, find_mount, mounted_head, new_mount
from ._params import Depends
from ._plans import ParamPlan, Plan, Source, build_plan, finish_route_plans
from ._registry import Lock, TaskRegistry
from ._response_model import (
    ResponseSerializer,
    compile_serializer,
    documented_return,
    is_response_class,
    model_from_return,
)
from ._routing import NoMatchFound, Route, RouteInfo, Router, template_params
from ._status import allows_body
from ._tasks import callable_name, is_async_callable
from ._uploads import FormLimits
from .middleware import BaseHTTPMiddleware, HTTPLayer, Layer, MiddlewareStack, Transform

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]

#: The default cap on request bodies: 16 MiB.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
#: Background tasks in flight per process before the servers stop taking requests.
#: Measured (bench/tasks_in_flight.py): a task waiting in flight holds about 6 KB on
#: the built-in server and 9 KB under uvicorn, so 1,000 stay under 10 MB, while
#: 1,000 tasks of 100 ms still let a process finish 10,000 a second.
DEFAULT_MAX_TASKS_IN_FLIGHT = 1_000
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})

#: "Not given": `response_model` then comes from the return annotation.
DEFAULT: Any = type("Default", (), {"__repr__": lambda self: "DEFAULT"})()

#: The keywords every route decorator takes (FastAPI's names), with their defaults.
ROUTE_OPTIONS: dict[str, Any] = {
    "response_model": DEFAULT,
    "status_code": None,
    "tags": None,
    "dependencies": None,
    "summary": None,
    "description": None,
    "response_description": "Successful Response",
    "responses": None,
    "deprecated": None,
    "operation_id": None,
    "response_model_include": None,
    "response_model_exclude": None,
    "response_model_by_alias": True,
    "response_model_exclude_unset": False,
    "response_model_exclude_defaults": False,
    "response_model_exclude_none": False,
    "include_in_schema": True,
    "response_class": None,
    "name": None,
    "openapi_extra": None,
}


def _check_options(path: str, options: dict[str, Any]) -> None:
    """Refuse keywords we do not know or do not support, naming the route (never ignored)."""
    for key in options:
        if key not in ROUTE_OPTIONS:
            raise DeclarationError(
                f"route {path!r}: the keyword {key!r} is not supported "
                f"(route keywords: {', '.join(ROUTE_OPTIONS)})"
            )
    for key in ("dependencies",):
        for item in options.get(key) or ():
            if not isinstance(item, Depends):
                raise DeclarationError(
                    f"route {path!r}: dependencies= takes Depends(...) items, got {item!r}"
                )


def _merge(
    options: dict[str, Any],
    *,
    tags: Sequence[str] | None,
    dependencies: Sequence[Depends] | None,
    responses: dict[Any, Any] | None,
    default_response_class: type[Any] | None,
    deprecated: bool | None,
    include_in_schema: bool,
) -> dict[str, Any]:
    """A route's options under a router's (or an include's) settings, FastAPI's way:
    the outer tags and dependencies first, the route's own responses and class winning."""
    merged = dict(options)
    if tags:
        merged["tags"] = [*tags, *(options.get("tags") or ())]
    if dependencies:
        merged["dependencies"] = [*dependencies, *(options.get("dependencies") or ())]
    if responses:
        merged["responses"] = {**responses, **(options.get("responses") or {})}
    if default_response_class is not None and options.get("response_class") is None:
        merged["response_class"] = default_response_class
    if deprecated and not options.get("deprecated"):
        merged["deprecated"] = True
    if not include_in_schema:
        merged["include_in_schema"] = False
    return merged


class _RouteDecorators(abc.ABC):
    """`get`, `post`, ... and `api_route`, shared by applications and routers.

    Every decorator takes FastAPI's route keywords (`ROUTE_OPTIONS`): those that
    change behaviour (`status_code`, `response_model` and its options,
    `response_class`, `dependencies`, `name`) are applied; the documentation ones
    are kept on the route for the OpenAPI schema. Any other keyword is an error.
    """

    @abc.abstractmethod
    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        localns: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Declare `endpoint` for `path`; applications build its plan, routers record it."""

    def api_route(
        self, path: str, *, methods: Iterable[str] | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Declare `path` for the decorated handler and `methods` (default GET)."""
        _check_options(path, options)
        localns = sys._getframe(1).f_locals  # the scope the handler is defined in

        def decorate(endpoint: F) -> F:
            self.add_api_route(path, endpoint, methods=methods, localns=localns, **options)
            return endpoint

        return decorate

    def _method(self, method: str, path: str, options: dict[str, Any]) -> Callable[[F], F]:
        _check_options(path, options)
        localns = sys._getframe(2).f_locals  # the scope the handler is defined in

        def decorate(endpoint: F) -> F:
            self.add_api_route(path, endpoint, methods=[method], localns=localns, **options)
            return endpoint

        return decorate

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a GET route (HEAD is answered by it too)."""
        return self._method("GET", path, options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a POST route."""
        return self._method("POST", path, options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a PUT route."""
        return self._method("PUT", path, options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a PATCH route."""
        return self._method("PATCH", path, options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a DELETE route."""
        return self._method("DELETE", path, options)

    def head(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a HEAD route."""
        return self._method("HEAD", path, options)

    def options(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare an OPTIONS route."""
        return self._method("OPTIONS", path, options)

    def trace(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a TRACE route."""
        return self._method("TRACE", path, options)


class APIRouter(_RouteDecorators):
    """A group of routes added to an app (or another router) with `include_router`.

    Args:
        prefix: Put before every route's path; starts with "/", does not end with one.
        tags: Added before each route's own tags.
        dependencies: `Depends(...)` run before each route's own dependencies and
            parameters' dependencies, cached per request as usual (e.g. auth).
        responses: Extra documented responses, under each route's own.
        default_response_class: The response class of routes that name none.
        deprecated: Mark every route deprecated.
        include_in_schema: False leaves every route out of the schema.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        responses: dict[Any, Any] | None = None,
        default_response_class: type[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise DeclarationError(f"router prefix {prefix!r} must start and not end with '/'")
        _check_options(prefix or "/", {"dependencies": dependencies})
        self.prefix = prefix
        self.tags = list(tags or ())
        self.dependencies = list(dependencies or ())
        self.responses = dict(responses or {})
        self.default_response_class = default_response_class
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.declared: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
        #: Mounts as declared: `(path with the prefix, app, name)`, made on `include_router`.
        self.mounted: list[tuple[str, Any, str | None]] = []

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Mount `app` under `path` (after this router's prefix) wherever the router is
        included; see `Application.mount`."""
        new_mount(path, app, name)  # checked now, where the mistake is
        self.mounted.append((self.prefix + path.rstrip("/"), app, name))

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        localns: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        _check_options(path, options)
        merged = _merge(
            options,
            tags=self.tags,
            dependencies=self.dependencies,
            responses=self.responses,
            default_response_class=self.default_response_class,
            deprecated=self.deprecated,
            include_in_schema=self.include_in_schema,
        )
        merged["methods"] = methods
        merged["localns"] = localns
        self.declared.append((self.prefix + path, endpoint, merged))

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        responses: dict[Any, Any] | None = None,
        default_response_class: type[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        """Add `router`'s routes (as declared so far) to this router, under `prefix`."""
        for path, endpoint, options in _included(
            router,
            prefix,
            tags,
            dependencies,
            responses,
            default_response_class,
            deprecated,
            include_in_schema,
        ):
            self.add_api_route(path, endpoint, **options)
        for path, app, name in router.mounted:  # `_included` checked the router and prefix
            self.mount(prefix + path, app, name)


def _included(
    router: APIRouter,
    prefix: str,
    tags: Sequence[str] | None,
    dependencies: Sequence[Depends] | None,
    responses: dict[Any, Any] | None,
    default_response_class: type[Any] | None,
    deprecated: bool | None,
    include_in_schema: bool,
) -> Iterable[tuple[str, Callable[..., Any], dict[str, Any]]]:
    if not isinstance(router, APIRouter):
        raise DeclarationError(f"include_router needs an APIRouter, got {router!r}")
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise DeclarationError(f"include_router prefix {prefix!r} must start and not end with '/'")
    _check_options(prefix or "/", {"dependencies": dependencies})
    for path, endpoint, options in router.declared:
        merged = _merge(
            options,
            tags=tags,
            dependencies=dependencies,
            responses=responses,
            default_response_class=default_response_class,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
        )
        yield prefix + path, endpoint, merged


class Application(_RouteDecorators):
    """Routes and settings of one app; `exchange(head)` serves one request.

    Args:
        lifespan: An async context manager factory taking the app; code before
            its `yield` runs at startup, after it at shutdown.
        on_startup: Callables (sync or async) run at startup, after `lifespan` entered.
        on_shutdown: Callables run at shutdown, before `lifespan` exits.
        max_body_size: Requests with a larger body are answered 413.
        max_pending_tasks: At most this many background tasks may wait to run,
            app-wide; a request whose tasks would pass it has them abandoned,
            each logged as an error. None (the default) means no limit.
        max_running_tasks: At most this many background tasks run at once,
            app-wide; the others wait their turn. None means no limit.
        form_limits: Limits on form bodies and uploads (sizes, counts, when a file
            part moves to disk); see `FormLimits`.
        max_tasks_in_flight: When this many background tasks are in flight in
            one process (pending and running, counted together), the servers
            stop taking new requests there until some finish: backpressure,
            nothing is refused. None means no bound. Default 1,000 (about
            6-9 MB of task state; see docs/background-tasks.md).
        clock: Seconds now, for task handles' timestamps; None leaves them unset.
        lock: A lock (`acquire`/`release`) guarding the task counts across threads.
        task_backend: Where background tasks run: `InProcess()` (the default), or a
            queue such as `velocipy.contrib.celery.CeleryBackend(celery_app)`;
            see docs/task-queues.md. Handlers do not change.
        dependencies: `Depends(...)` run before every route's own dependencies.
        default_response_class: The response class of routes that name none.
        redirect_slashes: Answer a path no route takes with a 307 to the same path
            with its trailing slash toggled, when a route takes that one.
    """

    def __init__(
        self,
        *,
        lifespan: Lifespan | None = None,
        on_startup: Sequence[Callable[[], Any]] = (),
        on_shutdown: Sequence[Callable[[], Any]] = (),
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_pending_tasks: int | None = None,
        max_running_tasks: int | None = None,
        form_limits: FormLimits | None = None,
        max_tasks_in_flight: int | None = DEFAULT_MAX_TASKS_IN_FLIGHT,
        clock: Callable[[], float | None] | None = None,
        lock: Lock | None = None,
        task_backend: TaskBackend | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Any] | None = None,
        redirect_slashes: bool = True,
    ) -> None:
        _check_options("/", {"dependencies": dependencies})
        self.dependencies = list(dependencies or ())
        self.default_response_class = default_response_class
        self.redirect_slashes = redirect_slashes
        self.router = Router()
        #: Replace a dependency by another callable, e.g. in tests. Consulted on every request.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.exception_handlers: dict[Any, tuple[Callable[..., Any], bool]] = {}
        self.lifespan = lifespan
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.max_body_size = max_body_size  # also builds `read_body_effect`
        #: Limits on form bodies and uploads, read by the form reader (`_forms.py`).
        self.form_limits = form_limits if form_limits is not None else FormLimits()
        #: Free-form application state (e.g. clients opened in the lifespan):
        #: `app.state.db = ...`; item access (`app.state["db"]`) works too.
        self.state = State()
        self._override_plans: dict[tuple[Any, str], Plan] = {}
        #: Live counts of background tasks by state; see `TaskRegistry`.
        if max_tasks_in_flight is not None and max_tasks_in_flight < 1:
            raise DeclarationError("max_tasks_in_flight must be at least 1")
        self.tasks = TaskRegistry(
            clock=clock or _no_clock,
            lock=lock,
            max_pending=max_pending_tasks,
            max_in_flight=max_tasks_in_flight,
        )
        if max_running_tasks is not None and max_running_tasks < 1:
            raise DeclarationError("max_running_tasks must be at least 1")
        self.tasks.running_cap = max_running_tasks
        #: Called as `hook(task, exception)` for every failed or timed-out task.
        self.task_error_hooks: list[tuple[Callable[..., Any], bool]] = []
        self.task_queue: TaskBackend | None = None
        self.task_backend = task_backend if task_backend is not None else InProcess()
        #: Middleware as added: `(class or function, args, options)`, first added first.
        self.user_middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self._middleware_stack: Any = None
        self._asgi_middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        #: Applications mounted under a path prefix, in the order declared (`mount`).
        self.mounts: list[Mount] = []

    @property
    def max_running_tasks(self) -> int | None:
        """At most this many background tasks run at once, app-wide (None: no cap)."""
        return self.tasks.running_cap

    @max_running_tasks.setter
    def max_running_tasks(self, limit: int | None) -> None:
        self.tasks.running_cap = limit

    @property
    def task_backend(self) -> TaskBackend:
        """Where background tasks run (`InProcess()` unless a queue backend was given)."""
        return self._task_backend

    @task_backend.setter
    def task_backend(self, backend: TaskBackend) -> None:
        if not isinstance(backend, TaskBackend):
            raise DeclarationError(f"task_backend must be a TaskBackend, got {backend!r}")
        previous = self.task_queue
        if previous is not None and previous.close in self.on_shutdown:
            self.on_shutdown.remove(previous.close)
        self._task_backend = backend
        #: The queue backend, or None when tasks run in process: the one thing the
        #: request path reads, and only for requests that scheduled tasks.
        self.task_queue = backend if backend.queued else None
        if self.task_queue is not None:
            self.on_shutdown.append(self.task_queue.close)

    @property
    def max_body_size(self) -> int:
        """Requests with a larger body are answered 413."""
        return self.read_body_effect.limit

    @max_body_size.setter
    def max_body_size(self, limit: int) -> None:
        #: The ReadBody effect every request with a body yields, built once per limit
        #: (effects are read-only, so requests share it).
        self.read_body_effect = ReadBody(limit)

    @property
    def routes(self) -> list[Route | Mount]:
        """Every route, then every mount, as declared (for introspection)."""
        return [*self.router.routes, *self.mounts]

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Serve `app` under `path`: requests no route takes whose path starts with `path/`.

        `app` is another VelociPy app or `StaticFiles` (served on every driver),
        an ASGI app (served when this app is served over ASGI) or a WSGI app
        (served when it is served over WSGI); a server that cannot serve a
        mount refuses to start, naming it. The mounted app sees the path under
        `path`, and `path` added to its `root_path`. A mounted VelociPy app keeps
        its routes, middleware and exception handlers; its lifespan runs inside
        this app's, and its background tasks count in this app's task registry
        (one bound per process).
        """
        mount = new_mount(path, app, name)
        for other in self.mounts:
            if other.path == mount.path:
                raise DeclarationError(f"{mount.label}: {other.label} is at that path already")
        if mount.declared == NATIVE and isinstance(app, Application):
            if app is self:
                raise DeclarationError(f"{mount.label}: an app cannot be mounted in itself")
            _share_registry(app, self.tasks)
        self.mounts.append(mount)

    def foreign_mounts(self) -> list[Mount]:
        """The ASGI and WSGI mounts of this app and of the VelociPy apps mounted in it."""
        found: list[Mount] = []
        for mount in self.mounts:
            if mount.kind != NATIVE:
                found.append(mount)  # a VelociPy app with ASGI middleware included
            elif isinstance(mount.app, Application):
                found.extend(mount.app.foreign_mounts())
        return found

    @property
    def needs_asgi(self) -> bool:
        """Whether this app can only be served through its ASGI entry point (`app(scope, ...)`):
        it has pure ASGI middleware, or an ASGI app mounted (here or in a mounted app).

        Servers that drive the core directly (the built-in server, the TestClient)
        check this one predicate and take the ASGI path when it is true.
        """
        if self.asgi_middleware:
            return True
        return any(mount.kind == ASGI for mount in self.foreign_mounts())

    def find_mount(self, method: str, path: str) -> tuple[Mount, str, str] | None:
        """The mount serving a request no route takes: `(mount, prefix, rest)`, or None."""
        if not self.mounts:
            return None
        return find_mount(self, method, path)

    def check_servable(self, served_as: str) -> None:
        """Refuse, naming it, a mount the serving path cannot serve (`"asgi"`, `"wsgi"`,
        or `"core"` for drivers that serve only VelociPy apps)."""
        for mount in self.foreign_mounts():
            if mount.kind != served_as:
                kind = {ASGI: "an ASGI app", WSGI: "a WSGI app"}.get(
                    mount.declared, "a VelociPy app with ASGI middleware"
                )
                how = {"asgi": "over ASGI", "wsgi": "over WSGI (app.wsgi)"}.get(
                    served_as, "by this server"
                )
                serve = "an ASGI server (uvicorn)" if mount.kind == ASGI else "a WSGI server"
                raise DeclarationError(
                    f"{mount.label} is {kind}, which cannot be served {how}: "
                    f"serve the app with {serve}, or mount something that can be"
                )

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        localns: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Declare a route; its handler's signature is analysed here, once.

        `options` are the route keywords (`ROUTE_OPTIONS`). `localns` names the
        namespace the handler was defined in, for annotations that refer to
        local names (decorators pass it).
        """
        _check_options(path, options)
        options = {**ROUTE_OPTIONS, **options}
        wanted = frozenset(m.upper() for m in (methods or ["GET"]))
        unknown = wanted - _METHODS
        if unknown:
            raise DeclarationError(f"route {path!r}: unknown HTTP method(s) {sorted(unknown)}")
        regex, names = template_params(path)
        label = f"{'|'.join(sorted(wanted))} {path}"
        if not callable(endpoint):
            raise DeclarationError(f"{label}: the handler {endpoint!r} is not callable")
        plan = build_plan(endpoint, route=label, path_params=names, localns=localns)
        if plan.kind.value != "function":
            raise DeclarationError(
                f"{label}: a handler cannot be a generator; return a StreamingResponse to stream"
            )
        dependencies = [*self.dependencies, *(options["dependencies"] or ())]
        hidden = _add_route_dependencies(plan, dependencies, label, names, localns)
        finish_route_plans([plan], names, label)  # route-wide dependencies included
        status_code = options["status_code"]
        if status_code is not None:
            status_code = int(status_code)
        response_class = options["response_class"] or self.default_response_class
        if response_class is not None and not is_response_class(response_class):
            raise DeclarationError(f"{label}: response_class {response_class!r} is not a Response")
        needed = getattr(response_class, "requires", None)
        if needed is not None and importlib.util.find_spec(needed) is None:
            raise DeclarationError(
                f"{label}: response_class {response_class!r} needs {needed}: pip install {needed}"
            )
        model = documented = options["response_model"]
        if model is DEFAULT:
            annotation = _return_annotation(endpoint, label, localns)
            model = model_from_return(annotation, label=label)
            documented = model if model is not None else documented_return(annotation)
        serialize_options = {
            key: options[f"response_model_{key}"]
            for key in ("include", "exclude", "by_alias", "exclude_unset")
            + ("exclude_defaults", "exclude_none")
        }
        serializer: ResponseSerializer | None = None
        if model is not None:
            if status_code is not None and not allows_body(status_code):
                raise DeclarationError(
                    f"{label}: status {status_code} has no body, so it cannot have a "
                    "response model; pass response_model=None"
                )
            serializer = compile_serializer(model, route=label, options=serialize_options)
        description = options["description"]
        if description is None:
            description = inspect.cleandoc(endpoint.__doc__ or "").split("\f")[0].strip()
        info = RouteInfo(
            tags=list(options["tags"] or ()),
            summary=options["summary"],
            description=description,
            response_description=options["response_description"],
            responses=dict(options["responses"] or {}),
            deprecated=bool(options["deprecated"]),
            operation_id=options["operation_id"],
            include_in_schema=options["include_in_schema"],
            openapi_extra=options["openapi_extra"],
            response_model=model,
            response_schema=documented,
            response_model_options=serialize_options,
            dependencies=dependencies,
        )
        route = Route(
            path=path,
            methods=wanted,
            endpoint=endpoint,
            plan=plan,
            status_code=status_code,
            response_class=response_class,
            name=options["name"] or str(getattr(endpoint, "__name__", "")),
            label=label,
            serializer=serializer,
            hidden=hidden,
            info=info,
        )
        self.router.add(route, regex)

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[Depends] | None = None,
        responses: dict[Any, Any] | None = None,
        default_response_class: type[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> None:
        """Declare every route of `router` (as declared so far) on this app, under `prefix`.

        `tags` and `dependencies` go before the router's own; `responses` under them.
        """
        for path, endpoint, options in _included(
            router,
            prefix,
            tags,
            dependencies,
            responses,
            default_response_class,
            deprecated,
            include_in_schema,
        ):
            self.add_api_route(path, endpoint, **options)
        for path, app, name in router.mounted:  # `_included` checked the router and prefix
            self.mount(prefix + path, app, name)

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called `name` (its handler's name unless `name=` was given).

        Through mounts, as Starlette: `"name:route"` is the route `route` of the
        app mounted as `name`, and `"name"` with a `path=` parameter a path under
        that mount (`url_path_for("static", path="/app.css")`). Raises
        `NoMatchFound` when no route of that name takes exactly `params`.
        """
        try:
            return self.router.url_path_for(name, params)
        except NoMatchFound:
            if not self.mounts:
                raise
        for mount in self.mounts:
            if mount.name == name and set(params) == {"path"}:
                return mount.path + "/" + str(params["path"]).lstrip("/")
            if mount.name is not None and not name.startswith(mount.name + ":"):
                continue
            inner = name if mount.name is None else name[len(mount.name) + 1 :]
            url_path_for = getattr(mount.app, "url_path_for", None)
            if url_path_for is None:
                continue
            try:
                return mount.path + url_path_for(inner, **params)  # type: ignore[no-any-return]
            except NoMatchFound:
                continue
        raise NoMatchFound(name, params)

    def exception_handler(self, key: type[BaseException] | int) -> Callable[[F], F]:
        """Register `handler(request, exc) -> Response` for an exception class or status code.

        A status code matches `HTTPException`s with that status (404 and 405
        from routing included).
        """

        def decorate(handler: F) -> F:
            self.add_exception_handler(key, handler)
            return handler

        return decorate

    def add_exception_handler(
        self, key: type[BaseException] | int, handler: Callable[..., Any]
    ) -> None:
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException))):
            raise DeclarationError(
                f"exception_handler key must be an exception class or a status code, got {key!r}"
            )
        self.exception_handlers[key] = (handler, is_async_callable(handler))

    def exception_handler_for(self, error: BaseException) -> tuple[Callable[..., Any], bool] | None:
        """The registered handler for `error`: by status code first, then by class (MRO order)."""
        handlers = self.exception_handlers
        if not handlers:
            return None
        if isinstance(error, HTTPException) and error.status_code in handlers:
            return handlers[error.status_code]
        for kind in type(error).__mro__:
            if kind in handlers:
                return handlers[kind]
        return None

    def override_plan(self, replacement: Callable[..., Any], route: Route | None) -> Plan:
        """The plan for an override callable, built on first use and kept."""
        label = route.label if route is not None else "override"
        key = (replacement, label)
        plan = self._override_plans.get(key)
        if plan is None:
            names = template_params(route.path)[1] if route is not None else frozenset()
            plan = build_plan(replacement, route=label, path_params=names, is_dependency=True)
            self._override_plans[key] = plan
        return plan

    # -- middleware ---------------------------------------------------------------------

    def add_middleware(self, middleware_class: Any, *args: Any, **options: Any) -> None:
        """Add middleware around the app; the last added is the outermost (as in FastAPI).

        `middleware_class` is a built-in (`velocipy.middleware`), a
        `BaseHTTPMiddleware` subclass, or a pure ASGI middleware class (used
        wherever the app is served over ASGI, an error under WSGI).
        """
        if self._middleware_stack is not None:
            raise RuntimeError("cannot add middleware after the application has started")
        if not callable(middleware_class):
            raise DeclarationError(f"middleware {middleware_class!r} is not a class or function")
        self.user_middleware.append((middleware_class, args, options))
        # Decided here, once: only an app with middleware takes the stack's path.
        self.exchange = self._exchange_through_middleware  # type: ignore[method-assign]

    def middleware(self, kind: str) -> Callable[[F], F]:
        """Declare `fn(request, call_next) -> Response` (sync or async) as HTTP middleware."""
        if kind != "http":
            raise DeclarationError(f"middleware kind {kind!r} is not supported; use 'http'")

        def decorate(fn: F) -> F:
            if not callable(fn):
                raise DeclarationError(f"middleware {fn!r} is not callable")
            self.add_middleware(_HTTPMiddlewareFunction(fn))
            return fn

        return decorate

    def build_middleware_stack(self) -> MiddlewareStack:
        """Compose the middleware (on the first request; later additions are refused)."""
        stack = self._middleware_stack
        if stack is not None:
            return stack  # type: ignore[no-any-return]
        layers: list[Layer] = []
        asgi: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        for entry in reversed(self.user_middleware):  # outermost first
            middleware, args, options = entry
            if isinstance(middleware, _HTTPMiddlewareFunction):
                fn = middleware.fn
                layers.append(HTTPLayer(fn, is_async_callable(fn), callable_name(fn)))
            elif isinstance(middleware, type) and issubclass(middleware, Transform):
                layers.append(middleware(self, *args, **options))
            elif isinstance(middleware, type) and issubclass(middleware, BaseHTTPMiddleware):
                instance = middleware(self, *args, **options)
                fn = instance.dispatch_func
                name = middleware.__name__
                layers.append(HTTPLayer(fn, is_async_callable(fn), name))
            else:
                if layers:
                    raise DeclarationError(
                        f"ASGI middleware {callable_name(middleware)} wraps the ASGI entry point, "
                        "outside every VelociPy middleware: add it after them "
                        f"(it was added before {_layer_name(layers[-1])})"
                    )
                asgi.append(entry)
        stack = self._middleware_stack = MiddlewareStack(self, tuple(layers))
        self._asgi_middleware = asgi
        if not layers:  # ASGI middleware only: requests take the plain path
            self.__dict__.pop("exchange", None)
        return stack

    def has_asgi_middleware(self) -> bool:
        """Whether pure ASGI middleware was added (read without composing the stack, so
        that more middleware may still be added)."""
        return any(not _is_core_middleware(entry[0]) for entry in self.user_middleware)

    @property
    def asgi_middleware(self) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
        """The pure ASGI middleware, outermost first, as `(class, args, options)`."""
        self.build_middleware_stack()
        return list(self._asgi_middleware)

    def _exchange_through_middleware(self, head: RequestHead) -> Exchange:
        stack = self._middleware_stack
        if stack is None:
            stack = self.build_middleware_stack()
        if self.__dict__.get("exchange") == self._exchange_through_middleware:
            self.exchange = stack.exchange  # type: ignore[method-assign]  # from the next request on
        return stack.exchange(head)  # type: ignore[no-any-return]

    def exchange(self, head: RequestHead) -> Exchange:
        """A new exchange for one request; drive it as `velocipy.core._exchange` documents."""
        # The route is matched here, so that a handler taking no arguments gets the flow
        # without per-request context (`bare_flow`); `exchange_flow` takes the answer.
        matched = self.router.match(head.method, head.path)
        if isinstance(matched, tuple):
            if matched[0].plan.trivial:
                return new_exchange(head, bare_flow(self, head, *matched), self)
        else:  # no route takes it: a mount may, or the other slash (mounts only cost here)
            if self.mounts:
                mounted = self._mounted_exchange(head)
                if mounted is not None:
                    return mounted
            if matched is None and self.redirect_slashes:
                other = self.router.slash_redirect(head.path)
                if other is None and self.mounts:
                    other = self._mount_slash_redirect(head.path)
                if other is not None:
                    return Exchange(head, redirect_flow(head, other), self)
        return new_exchange(head, exchange_flow(self, head, matched), self)

    def _mounted_exchange(self, head: RequestHead) -> Exchange | None:
        """The exchange of the mount under which `head.path` lies (routes came first)."""
        for mount in self.mounts:
            rest = mount.rest_of(head.path)
            if rest is None:
                continue
            if mount.kind != NATIVE:
                # Foreign mounts are served by the adapters before the core is asked; reaching
                # here means the driver cannot serve them (and should have refused at startup).
                return Exchange(head, unservable_flow(head, mount.label), self)
            child = mounted_head(head, mount.path, rest)
            return mount.app.exchange(child)  # type: ignore[no-any-return]
        return None

    def _mount_slash_redirect(self, path: str) -> str | None:
        """`/static` for a mount at `/static`: the path with a slash, which it takes."""
        if path.endswith("/"):
            return None
        for mount in self.mounts:
            if mount.path and mount.path == path:
                return path + "/"
        return None

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Run the app's lifespan and startup hooks, then (on exit) its shutdown hooks."""
        self.check_declarations()
        async with contextlib.AsyncExitStack() as stack:
            if self.lifespan is not None:
                state = await stack.enter_async_context(self.lifespan(self))
                if isinstance(state, dict):
                    self.state.update(state)
            for hook in self.on_startup:
                await _maybe_await(hook)
            for mount in self.mounts:  # mounted apps start after this one, stop before it
                lifespan = getattr(mount.app, "lifespan_context", None)
                if mount.declared == NATIVE and lifespan is not None:
                    await stack.enter_async_context(lifespan())
            try:
                yield
            finally:
                for hook in self.on_shutdown:
                    await _maybe_await(hook)

    def check_declarations(self) -> None:
        """Checks of the whole app that no single declaration could make, run at startup
        before the lifespan; raise `DeclarationError` to stop the app from starting."""

    def on_task_error(self, hook: F) -> F:
        """Register `hook(task, exception)`, sync or async, for every failed or timed-out task.

        The place for error trackers and metrics. It runs after the failure was
        logged, before the next task; an exception in the hook is logged too.
        """
        self.add_task_error_handler(hook)
        return hook

    def add_task_error_handler(self, hook: Callable[..., Any]) -> None:
        """Register a task-error hook (see `on_task_error`)."""
        if not callable(hook):
            raise DeclarationError(f"task-error hook {hook!r} is not callable")
        self.task_error_hooks.append((hook, is_async_callable(hook)))

    def on_event(self, event: str) -> Callable[[F], F]:
        """Register a `"startup"` or `"shutdown"` hook (prefer `lifespan=` in new code)."""
        if event not in ("startup", "shutdown"):
            raise DeclarationError(f"unknown event {event!r}; use 'startup' or 'shutdown'")

        def decorate(hook: F) -> F:
            (self.on_startup if event == "startup" else self.on_shutdown).append(hook)
            return hook

        return decorate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self.router.routes)} routes>"


def _return_annotation(
    endpoint: Callable[..., Any], label: str, localns: dict[str, Any] | None
) -> Any:
    """The handler's return annotation, resolved; None when there is none."""
    target = endpoint if inspect.isroutine(endpoint) else type(endpoint).__call__
    try:
        hints = typing.get_type_hints(target, localns=localns, include_extras=True)
    except Exception as error:
        raise DeclarationError(
            f"{label}: cannot resolve the return annotation of the handler: {error}"
        ) from None
    return hints.get("return")


def _add_route_dependencies(
    plan: Plan,
    dependencies: Sequence[Depends],
    label: str,
    path_params: frozenset[str],
    localns: dict[str, Any] | None,
) -> tuple[str, ...]:
    """Put route-wide dependencies first in the handler's plan; return their parameter names.

    They are resolved like the handler's own `Depends` parameters (same per-request
    cache, same cleanup of generator dependencies); the exchange drops their values
    from the handler's arguments (the route's `hidden` names).
    """
    added: list[ParamPlan] = []
    for index, marker in enumerate(dependencies):
        if marker.dependency is None or not callable(marker.dependency):
            raise DeclarationError(f"{label}: dependencies= item {marker!r} needs a callable")
        sub = build_plan(
            marker.dependency,
            route=label,
            path_params=path_params,
            is_dependency=True,
            localns=localns,
        )
        name = f"__route_dependency_{index}"
        added.append(ParamPlan(name, Source.DEPENDS, dependency=sub, use_cache=marker.use_cache))
        plan.needs_body |= sub.needs_body
        plan.needs_form |= sub.needs_form  # a route-wide dependency may read the form
        plan.memory_fields |= sub.memory_fields
        plan.opens_body |= sub.opens_body
        plan.wants_response |= sub.wants_response
    if added:
        plan.params[:0] = added
        plan.special[:0] = added
        plan.depends[:0] = added
        plan.trivial = False
    return tuple(param.name for param in added)


class _HTTPMiddlewareFunction:
    """A function declared with `@app.middleware("http")`, as `user_middleware` records it."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:  # pragma: no cover - never called as a class
        raise TypeError("an HTTP middleware function is not an ASGI middleware")

    def __repr__(self) -> str:
        return f"<HTTP middleware {callable_name(self.fn)}>"


def _share_registry(app: Application, registry: TaskRegistry) -> None:
    """Count `app`'s tasks (and its own mounted apps') in the parent's `registry`: adapters
    bound, lock and drain the tasks of the app they serve, mounted parts included."""
    app.tasks = registry
    for mount in app.mounts:
        if isinstance(mount.app, Application):
            _share_registry(mount.app, registry)


def _is_core_middleware(middleware: Any) -> bool:
    """Whether `add_middleware` was given middleware the core runs (not pure ASGI)."""
    return isinstance(middleware, _HTTPMiddlewareFunction) or (
        isinstance(middleware, type) and issubclass(middleware, (Transform, BaseHTTPMiddleware))
    )


def _layer_name(layer: Layer) -> str:
    return layer.name if isinstance(layer, HTTPLayer) else type(layer).__name__


def _no_clock() -> None:
    return None


async def _maybe_await(hook: Callable[[], Any]) -> None:
    result = hook()
    if hasattr(result, "__await__"):
        await result
