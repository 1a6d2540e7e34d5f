"""The application: routes, dependency overrides, exception handlers and lifespan.

`Application` is pure: declaring routes builds their plans, and `exchange(head)`
returns an `Exchange` for one request. Serving it is the adapters' job; the
public `VelociPy` class adds the ASGI and WSGI entry points on top.
"""

from __future__ import annotations

import abc
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from ._backends import InProcess, TaskBackend
from ._errors import DeclarationError, HTTPException
from ._events import ReadBody, RequestHead
from ._exchange import Exchange, bare_flow, exchange_flow
from ._plans import Plan, build_plan, finish_route_plans
from ._registry import Lock, TaskRegistry
from ._routing import Route, Router, template_params
from ._tasks import is_async_callable

F = TypeVar("F", bound=Callable[..., Any])
Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]

#: The default cap on request bodies: 16 MiB.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


class _RouteDecorators(abc.ABC):
    """`get`, `post`, ... and `api_route`, shared by applications and routers."""

    @abc.abstractmethod
    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        status_code: int | None = None,
        response_class: type[Any] | None = None,
        name: str | None = None,
        localns: dict[str, Any] | None = None,
    ) -> None:
        """Declare `endpoint` for `path`; applications build its plan, routers record it."""

    def api_route(
        self,
        path: str,
        *,
        methods: Iterable[str] | None = None,
        status_code: int | None = None,
        response_class: type[Any] | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Declare `path` for the decorated handler and `methods` (default GET)."""

        def decorate(endpoint: F) -> F:
            self.add_api_route(
                path,
                endpoint,
                methods=methods,
                status_code=status_code,
                response_class=response_class,
                name=name,
                localns=sys._getframe(1).f_locals,  # the scope the handler is defined in
            )
            return endpoint

        return decorate

    def _method(self, method: str) -> Callable[..., Callable[[F], F]]:
        def route(
            path: str,
            *,
            status_code: int | None = None,
            response_class: type[Any] | None = None,
            name: str | None = None,
        ) -> Callable[[F], F]:
            return self.api_route(
                path,
                methods=[method],
                status_code=status_code,
                response_class=response_class,
                name=name,
            )

        route.__name__ = method.lower()
        route.__doc__ = f"Declare a {method} route: `@app.{method.lower()}(path)`."
        return route

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a GET route (HEAD is answered by it too)."""
        return self._method("GET")(path, **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a POST route."""
        return self._method("POST")(path, **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a PUT route."""
        return self._method("PUT")(path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a PATCH route."""
        return self._method("PATCH")(path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a DELETE route."""
        return self._method("DELETE")(path, **options)

    def head(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare a HEAD route."""
        return self._method("HEAD")(path, **options)

    def options(self, path: str, **options: Any) -> Callable[[F], F]:
        """Declare an OPTIONS route."""
        return self._method("OPTIONS")(path, **options)


class APIRouter(_RouteDecorators):
    """A group of routes under a common `prefix`, added to an app with `include_router`."""

    def __init__(self, prefix: str = "") -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise DeclarationError(f"router prefix {prefix!r} must start and not end with '/'")
        self.prefix = prefix
        self.declared: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        status_code: int | None = None,
        response_class: type[Any] | None = None,
        name: str | None = None,
        localns: dict[str, Any] | None = None,
    ) -> None:
        options = {
            "methods": methods,
            "status_code": status_code,
            "response_class": response_class,
            "name": name,
            "localns": localns,
        }
        self.declared.append((self.prefix + path, endpoint, options))

    def include_router(self, router: APIRouter, *, prefix: str = "") -> None:
        """Add `router`'s routes to this router, under `prefix`."""
        for path, endpoint, options in router.declared:
            self.declared.append((self.prefix + prefix + path, endpoint, options))


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
        clock: Seconds now, for task handles' timestamps; None leaves them unset.
        lock: A lock (`acquire`/`release`) guarding the task counts across threads.
        task_backend: Where background tasks run: `InProcess()` (the default), or a
            queue such as `velocipy.contrib.celery.CeleryBackend(celery_app)`;
            see docs/task-queues.md. Handlers do not change.
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
        clock: Callable[[], float | None] | None = None,
        lock: Lock | None = None,
        task_backend: TaskBackend | None = None,
    ) -> None:
        self.router = Router()
        #: Replace a dependency by another callable, e.g. in tests. Consulted on every request.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.exception_handlers: dict[Any, tuple[Callable[..., Any], bool]] = {}
        self.lifespan = lifespan
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.max_body_size = max_body_size  # also builds `read_body_effect`
        #: Free-form application state (e.g. clients opened in the lifespan).
        self.state: dict[str, Any] = {}
        self._override_plans: dict[tuple[Any, str], Plan] = {}
        #: Live counts of background tasks by state; see `TaskRegistry`.
        self.tasks = TaskRegistry(
            clock=clock or _no_clock, lock=lock, max_pending=max_pending_tasks
        )
        if max_running_tasks is not None and max_running_tasks < 1:
            raise DeclarationError("max_running_tasks must be at least 1")
        self.max_running_tasks = max_running_tasks
        #: Called as `hook(task, exception)` for every failed or timed-out task.
        self.task_error_hooks: list[tuple[Callable[..., Any], bool]] = []
        self.task_queue: TaskBackend | None = None
        self.task_backend = task_backend if task_backend is not None else InProcess()

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
    def routes(self) -> list[Route]:
        return list(self.router.routes)

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        status_code: int | None = None,
        response_class: type[Any] | None = None,
        name: str | None = None,
        localns: dict[str, Any] | None = None,
    ) -> None:
        """Declare a route; its handler's signature is analysed here, once.

        `localns` names the namespace the handler was defined in, for
        annotations that refer to local names (decorators pass it).
        """
        wanted = frozenset(m.upper() for m in (methods or ["GET"]))
        unknown = wanted - _METHODS
        if unknown:
            raise DeclarationError(f"route {path!r}: unknown HTTP method(s) {sorted(unknown)}")
        regex, names = template_params(path)
        label = f"{'|'.join(sorted(wanted))} {path}"
        if not callable(endpoint):
            raise DeclarationError(f"{label}: the handler {endpoint!r} is not callable")
        plan = build_plan(endpoint, route=label, path_params=names, localns=localns)
        finish_route_plans([plan], names, label)
        if plan.kind.value != "function":
            raise DeclarationError(
                f"{label}: a handler cannot be a generator; return a StreamingResponse to stream"
            )
        route = Route(
            path=path,
            methods=wanted,
            endpoint=endpoint,
            plan=plan,
            status_code=status_code,
            response_class=response_class,
            name=name or str(getattr(endpoint, "__name__", "")),
            label=label,
        )
        self.router.add(route, regex)

    def include_router(self, router: APIRouter, *, prefix: str = "") -> None:
        """Declare every route of `router` on this app, under `prefix`."""
        for path, endpoint, options in router.declared:
            self.add_api_route(prefix + path, endpoint, **options)

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

    def exchange(self, head: RequestHead) -> Exchange:
        """A new exchange for one request; drive it as `velocipy.core._exchange` documents."""
        # The route is matched here, so that a handler taking no arguments gets the flow
        # without per-request context (`bare_flow`); `exchange_flow` takes the answer.
        matched = self.router.match(head.method, head.path)
        if isinstance(matched, tuple) and matched[0].plan.trivial:
            return Exchange(head, bare_flow(self, head, *matched), self)
        return Exchange(head, exchange_flow(self, head, matched), self)

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Run the app's lifespan and startup hooks, then (on exit) its shutdown hooks."""
        async with contextlib.AsyncExitStack() as stack:
            if self.lifespan is not None:
                state = await stack.enter_async_context(self.lifespan(self))
                if isinstance(state, dict):
                    self.state.update(state)
            for hook in self.on_startup:
                await _maybe_await(hook)
            try:
                yield
            finally:
                for hook in self.on_shutdown:
                    await _maybe_await(hook)

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


def _no_clock() -> None:
    return None


async def _maybe_await(hook: Callable[[], Any]) -> None:
    result = hook()
    if hasattr(result, "__await__"):
        await result
