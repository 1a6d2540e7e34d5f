"""Signature analysis: each handler and dependency becomes a `Plan` once, at declaration.

A plan says, for every parameter, where its value comes from (path, query,
header, cookie, body, form, the `Request`, the `BackgroundTasks`, or another
plan via `Depends`, or the `Response` whose headers, cookies and status the
handler may set) and how to convert it. Mistakes a programmer can make in a
signature are found here and raised as `DeclarationError`, naming the route and
the parameter, so they never wait for the first request.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._constraints import DOC_ATTRIBUTES, read_metadata
from ._convert import (
    Converter,
    build_converter,
    is_pydantic_model,
    is_scalar,
    is_sequence_of_scalars,
    strip_annotated,
    union_members,
)
from ._errors import DeclarationError
from ._events import Call
from ._forms import multipart_available
from ._gather import model_gatherer, wire_names
from ._params import (
    NO_CONSTRAINTS,
    NO_DOC,
    REQUIRED,
    Body,
    Constraints,
    Depends,
    File,
    Header,
    Param,
    ParamDoc,
)
from ._request import Request
from ._responses import Response
from ._scopes import Security, SecurityScopes, add_scopes, scopes_provider
from ._tasks import BackgroundTasks, callable_name, is_async_callable
from ._uploads import UploadFile


class Source(enum.Enum):
    PATH = "path"
    QUERY = "query"
    HEADER = "header"
    COOKIE = "cookie"
    BODY = "body"
    FORM = "form"
    REQUEST = "request"
    TASKS = "tasks"
    DEPENDS = "depends"
    #: The response the handler's value will be sent in (headers, cookies, status).
    RESPONSE = "response"


class Kind(enum.Enum):
    """How a plan's callable produces its value."""

    #: A function or callable; its return value is the value.
    FUNCTION = "function"
    #: A generator: the value is what it yields first; the rest runs at cleanup.
    GENERATOR = "generator"
    #: An async generator, likewise.
    ASYNC_GENERATOR = "async_generator"


@dataclass(slots=True)
class ParamPlan:
    """Where one parameter's value comes from and how it is converted."""

    name: str
    source: Source
    alias: str = ""
    convert: Converter | None = None
    default: Any = REQUIRED
    many: bool = False  # query/header: collect every value into a list
    embed: bool = False  # body: read key `alias` of the JSON object, not the whole body
    dependency: Plan | None = None
    use_cache: bool = True
    #: For a `Security(..., scopes=[...])` dependency: the scopes it asks for (for OpenAPI).
    scopes: tuple[str, ...] = ()
    #: Called for the default when the request lacks the value (`default_factory=`).
    default_factory: Callable[[], Any] | None = None
    #: The annotation without its metadata: what the value is (for OpenAPI).
    annotation: Any = Any
    #: The validation keywords compiled into `convert` (kept for OpenAPI).
    constraints: Constraints = NO_CONSTRAINTS
    #: Documentation keywords (title, description, examples, deprecated...).
    doc: ParamDoc = NO_DOC
    #: For a model gathering several query/header/cookie values: reads them from the source.
    gather: Callable[[Any], Any] | None = None
    #: For such a model: each field's name → its name on the wire (for OpenAPI).
    gathered: dict[str, str] | None = None
    #: form: a dataclass or pydantic model read from the whole form, not one field of it.
    form_model: bool = False
    #: form: a file part (`File()`, `UploadFile`), not a plain field.
    is_file: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_factory is None


@dataclass(slots=True)
class Plan:
    """Everything needed to call `call` with its parameters resolved."""

    call: Callable[..., Any]
    label: str
    kind: Kind
    is_async: bool
    params: list[ParamPlan] = field(default_factory=list)
    #: Parameters read from the request (not Depends/Request/BackgroundTasks).
    plain: list[ParamPlan] = field(default_factory=list)
    depends: list[ParamPlan] = field(default_factory=list)
    #: Parameters filled by the exchange itself: Depends, Request, BackgroundTasks, Response.
    special: list[ParamPlan] = field(default_factory=list)
    #: This plan or one below it needs the request body read first.
    needs_body: bool = False
    #: This plan or one below it reads the form (Form, File): the body is read as a form.
    needs_form: bool = False
    #: Form fields asked for as `bytes`: their file parts stay in memory, never spooled.
    memory_fields: frozenset[str] = frozenset()
    #: This plan or one below it takes the `Request`, which reads the body itself when
    #: asked (`request.stream()`): unless a parameter needs the body first, the body
    #: is left unread and the request gets the driver's `perform` (`OpenBody`).
    opens_body: bool = False
    #: This plan or one below it takes a BackgroundTasks parameter.
    wants_tasks: bool = False
    #: This plan or one below it takes a `Response` parameter.
    wants_response: bool = False
    #: The plan is a bare call: no parameters from anywhere.
    trivial: bool = False
    #: For a trivial function dependency: its call, built once (the route builds its own).
    bare_call: Call | None = None


def build_plan(
    call: Callable[..., Any],
    *,
    route: str,
    path_params: frozenset[str],
    is_dependency: bool = False,
    chain: tuple[str, ...] = (),
    localns: dict[str, Any] | None = None,
) -> Plan:
    """Analyse `call`'s signature for `route`; raise `DeclarationError` on any mistake.

    `localns` is the namespace the route was declared in: with postponed
    annotations (`from __future__ import annotations`), names local to a
    function that declares routes are only found there.
    """
    label = callable_name(call)
    try:
        signature = inspect.signature(call)
    except (TypeError, ValueError) as error:
        raise DeclarationError(f"{route}: cannot read the signature of {label}: {error}") from None
    try:
        hints = typing.get_type_hints(call, localns=localns, include_extras=True)
    except Exception:
        hints = {}
        target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
        try:
            hints = typing.get_type_hints(target, localns=localns, include_extras=True)
        except Exception as error:
            raise DeclarationError(
                f"{route}: cannot resolve the annotations of {label}: {error}"
            ) from None

    if inspect.isasyncgenfunction(call):
        kind, is_async = Kind.ASYNC_GENERATOR, True
    elif inspect.isgeneratorfunction(call):
        kind, is_async = Kind.GENERATOR, False
    else:
        kind, is_async = Kind.FUNCTION, is_async_callable(call)

    plan = Plan(call=call, label=label, kind=kind, is_async=is_async)
    owner = f"{'dependency ' if is_dependency else ''}{label}"
    for name, parameter in signature.parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise DeclarationError(
                f"{route}: parameter {name!r} of {owner} is positional-only; "
                "VelociPy passes keywords"
            )
        annotation = hints.get(name, parameter.annotation)
        param = _plan_parameter(
            name,
            annotation,
            parameter.default,
            where=f"{route}: parameter {name!r} of {owner}",
            route=route,
            path_params=path_params,
            is_dependency=is_dependency,
            chain=(*chain, label),
            localns=localns,
        )
        plan.params.append(param)
        if param.source in (Source.DEPENDS, Source.REQUEST, Source.TASKS, Source.RESPONSE):
            plan.special.append(param)
        if param.source is Source.DEPENDS:
            plan.depends.append(param)
            assert param.dependency is not None
            plan.needs_body |= param.dependency.needs_body
            plan.needs_form |= param.dependency.needs_form
            plan.memory_fields |= param.dependency.memory_fields
            plan.opens_body |= param.dependency.opens_body
            plan.wants_tasks |= param.dependency.wants_tasks
            plan.wants_response |= param.dependency.wants_response
        elif param.source is Source.TASKS:
            plan.wants_tasks = True
        elif param.source is Source.RESPONSE:
            plan.wants_response = True
        elif param.source is not Source.REQUEST:
            plan.plain.append(param)
        if param.source in (Source.BODY, Source.FORM):
            plan.needs_body = True
        elif param.source is Source.REQUEST:
            plan.opens_body = True
        if param.source is Source.FORM:
            plan.needs_form = True
            if _wants_bytes(annotation):
                plan.memory_fields |= {param.alias}

    if plan.needs_form and any(p.source is Source.BODY for p in plan.plain):
        raise DeclarationError(
            f"{route}: {label} takes both a JSON body and form fields; a request has one body"
        )

    plan.trivial = not plan.params
    if plan.trivial and kind is Kind.FUNCTION:
        plan.bare_call = Call(call, (), {}, is_async, "dependency")
    return plan


def _walk(plan: Plan, seen: set[int] | None = None) -> list[Plan]:
    """`plan` and every dependency plan below it, each once."""
    seen = set() if seen is None else seen
    if id(plan) in seen:
        return []
    seen.add(id(plan))
    found = [plan]
    for param in plan.depends:
        assert param.dependency is not None
        found.extend(_walk(param.dependency, seen))
    return found


def finish_route_plans(plans: list[Plan], path_params: frozenset[str], route: str) -> None:
    """The checks and rules that need a route's every plan: the handler's, and those of
    route-level dependencies (`dependencies=[Depends(...)]`), which read the same request.

    - FastAPI's embedding rule: with several body parameters in the route (dependencies
      included), each one is read from a key of the JSON object, named by its alias.
    - Every `{name}` of the path template must be taken by some parameter.
    """
    everything = [each for plan in plans for each in _walk(plan)]
    _embed_bodies(everything)
    _check_path_template(everything, path_params, route)


def _embed_bodies(plans: list[Plan]) -> None:
    bodies = [p for each in plans for p in each.plain if p.source is Source.BODY]
    # A dependency used twice has a plan per use; FastAPI counts its body parameters once.
    distinct = {
        (id(each.call), p.name) for each in plans for p in each.plain if p.source is Source.BODY
    }
    if len(distinct) > 1:
        for param in bodies:
            param.embed = True


def _check_path_template(plans: list[Plan], path_params: frozenset[str], route: str) -> None:
    """Every `{name}` in the path must be taken by some parameter (or a `Request` may read it)."""
    taken: set[str] = set()
    for each in plans:
        for param in each.params:
            if param.source is Source.PATH:
                taken.add(param.alias)
            elif param.source is Source.REQUEST:
                return  # the handler may read `request.path_params` itself
    unused = sorted(path_params - taken)
    if unused:
        names = ", ".join(f"{{{name}}}" for name in unused)
        raise DeclarationError(
            f"{route}: the path has {names} but no parameter of the handler or its "
            f"dependencies takes {'it' if len(unused) == 1 else 'them'}; "
            f"add a parameter named {unused[0]!r} (or Path(alias={unused[0]!r}))"
        )


def _split_metadata(annotation: Any, where: str) -> tuple[Param | Depends | None, list[Any]]:
    """A parameter's marker from `Annotated[...]`, and the rest of its metadata."""
    marker: Param | Depends | None = None
    rest: list[Any] = []
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            if isinstance(extra, (Param, Depends)):
                if marker is not None:
                    raise DeclarationError(
                        f"{where} has two markers ({marker!r}, {extra!r}) in Annotated; keep one"
                    )
                marker = extra
            else:
                rest.append(extra)
    return marker, rest


def _plan_parameter(
    name: str,
    annotation: Any,
    default: Any,
    *,
    where: str,
    route: str,
    path_params: frozenset[str],
    is_dependency: bool,
    chain: tuple[str, ...],
    localns: dict[str, Any] | None,
) -> ParamPlan:
    marker, extras = _split_metadata(annotation, where)
    if isinstance(default, (Param, Depends)):
        if marker is not None:
            raise DeclarationError(f"{where} has a marker both in Annotated and as its default")
        marker = default
        default = REQUIRED
    elif default is inspect.Parameter.empty:
        default = REQUIRED
    bare = strip_annotated(annotation)

    if bare is BackgroundTasks:
        if is_dependency:
            raise DeclarationError(
                f"{where} is BackgroundTasks, which only a route handler may declare "
                f"(dependency chain: {' -> '.join(chain)}); add tasks on the route's own "
                "BackgroundTasks parameter"
            )
        return ParamPlan(name, Source.TASKS)
    if bare is Request:
        return ParamPlan(name, Source.REQUEST)
    if isinstance(bare, type) and issubclass(bare, Response):
        return ParamPlan(name, Source.RESPONSE)

    if bare is SecurityScopes:
        provider = scopes_provider()
        sub = build_plan(provider, route=route, path_params=path_params, is_dependency=True)
        return ParamPlan(name, Source.DEPENDS, dependency=sub, use_cache=False)

    if isinstance(marker, Depends):
        target = marker.dependency
        if target is None:
            target = bare if callable(bare) and bare is not inspect.Parameter.empty else None
        if target is None or not callable(target):
            raise DeclarationError(f"{where}: Depends() needs a callable")
        sub = build_plan(
            target,
            route=route,
            path_params=path_params,
            is_dependency=True,
            chain=chain,
            localns=localns,
        )
        scopes: tuple[str, ...] = ()
        if isinstance(marker, Security) and marker.scopes:
            add_scopes(sub, marker.scopes)
            scopes = tuple(marker.scopes)
        return ParamPlan(
            name, Source.DEPENDS, dependency=sub, use_cache=marker.use_cache, scopes=scopes
        )

    try:
        found = read_metadata(extras)
    except TypeError as error:
        raise DeclarationError(f"{where}: {error}") from None
    field = dict(found.field_attributes)  # what a pydantic Field(...) set besides constraints
    default_factory = field.pop("default_factory", None)
    if "default" in field:
        raise DeclarationError(
            f"{where}: Field(default=...) in Annotated; give the default in the signature"
        )
    field_alias = field.pop("validation_alias", None) or field.pop("alias", None)
    field.pop("alias", None)
    field.pop("alias_priority", None)
    unsupported = sorted(set(field) - DOC_ATTRIBUTES)
    if unsupported:
        raise DeclarationError(
            f"{where}: Field({', '.join(unsupported)}=...) is not supported on a request parameter"
        )
    if field_alias is not None and not isinstance(field_alias, str):
        raise DeclarationError(f"{where}: only a string alias is supported, got {field_alias!r}")

    constraints = found.constraints
    doc = NO_DOC
    if marker is not None:
        if marker.default is not REQUIRED or marker.default_factory is not None:
            if default is not REQUIRED:
                raise DeclarationError(f"{where} has a default both in its marker and signature")
            default = marker.default
            default_factory = marker.default_factory
        constraints = marker.constraints.merged(constraints)
        doc = marker.doc
        source = Source(marker.source)
    elif _takes_files(bare):
        source = Source.FORM  # `file: UploadFile` needs no marker, as in FastAPI
    elif name in path_params:
        source = Source.PATH
    elif annotation is inspect.Parameter.empty or is_scalar(bare) or is_sequence_of_scalars(bare):
        source = Source.QUERY
    else:
        source = Source.BODY
    if field:
        doc = dataclasses.replace(doc, **field)
    if default is not REQUIRED and default_factory is not None:
        raise DeclarationError(f"{where} has both a default and a default_factory")

    wire = (marker.wire_name if marker is not None else None) or field_alias
    if source is Source.PATH and name not in path_params and wire not in path_params:
        raise DeclarationError(
            f"{where} is a path parameter but the route has no {{{wire or name}}}"
        )

    if annotation is inspect.Parameter.empty:
        bare = str if source in (Source.PATH, Source.QUERY, Source.HEADER, Source.COOKIE) else Any
    many = source in (Source.QUERY, Source.HEADER, Source.FORM) and is_sequence_of_scalars(bare)
    gather = gathered = None
    if source in (Source.QUERY, Source.HEADER, Source.COOKIE) and is_pydantic_model(bare):
        # A model gathering several values of one source (FastAPI's query/header models).
        if constraints.given() or found.foreign:
            raise DeclarationError(f"{where}: constraints apply to a model's fields, not to it")
        convert_underscores = not isinstance(marker, Header) or marker.convert_underscores
        gather, convert = model_gatherer(
            bare, source.value, convert_underscores=convert_underscores
        )
        gathered = wire_names(bare, source.value, convert_underscores=convert_underscores)
        many = True
    elif source in (Source.PATH, Source.COOKIE) and not is_scalar(bare):
        raise DeclarationError(f"{where}: a {source.value} parameter must be a scalar type")
    else:
        try:
            convert = build_converter(bare, constraints, found.foreign)
        except TypeError as error:
            raise DeclarationError(f"{where}: {error}") from None

    alias = wire or name
    if isinstance(marker, Header) and not wire and marker.convert_underscores:
        alias = name.replace("_", "-")
    if source is Source.HEADER:
        alias = alias.lower()
    embed = isinstance(marker, Body) and bool(marker.embed)
    is_file = isinstance(marker, File) or _takes_files(bare)
    form_model = False
    if source is Source.FORM:
        if not multipart_available():
            raise DeclarationError(
                f"{where}: form and file parameters need python-multipart: "
                "pip install 'velocipy[multipart]'"
            )
        if is_file and not (_takes_files(bare) or _wants_bytes(bare)):
            raise DeclarationError(
                f"{where}: File() takes UploadFile, bytes, or a list of either, not {bare!r}"
            )
        form_model = not (is_scalar(bare) or is_sequence_of_scalars(bare))
    if default is None and union_members(bare) is None and bare is not Any:
        # `q: int = None` means optional even without `| None`, as in FastAPI.
        inner = convert

        def convert(value: Any, _inner: Converter = inner) -> Any:
            return None if value is None else _inner(value)

    return ParamPlan(
        name,
        source,
        alias,
        convert,
        default,
        many=many,
        embed=embed,
        default_factory=default_factory,
        annotation=bare,
        constraints=constraints,
        doc=doc,
        gather=gather,
        gathered=gathered,
        form_model=form_model,
        is_file=is_file,
    )


def _element(annotation: Any) -> Any:
    """`T` for `T`, `T | None`, `list[T]` and `list[T] | None` (the shapes form fields take)."""
    annotation = strip_annotated(annotation)
    members = union_members(annotation)
    if members is not None:
        rest = [m for m in members if m is not type(None)]
        if len(rest) != 1:
            return annotation
        annotation = strip_annotated(rest[0])
    if typing.get_origin(annotation) in (list, set, frozenset, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            return strip_annotated(args[0])
    return annotation


def _takes_files(annotation: Any) -> bool:
    """Whether the parameter is `UploadFile` (optional, or a list of them)."""
    element = _element(annotation)
    return isinstance(element, type) and issubclass(element, UploadFile)


def _wants_bytes(annotation: Any) -> bool:
    """Whether the parameter is `bytes` (optional, or a list of them)."""
    return _element(annotation) is bytes
