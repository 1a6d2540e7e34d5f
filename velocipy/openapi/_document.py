"""The OpenAPI 3.1 document of an application: a pure function of its route plans.

Everything here reads what the routes already hold from their declaration
(parameter plans with their types, constraints and documentation keywords;
route options; response models); no signature is read again. The document is
built on first use and kept by the caller (`VelociPy.openapi`).

It follows FastAPI's rules, so an app that both accept documents the same:
parameters grouped path → query → header → cookie, dependencies walked
depth-first in declaration order and each taken once; one body field, or an
object named `Body_<operation>` when several are read (or one is embedded);
the 422 answer added to every operation that reads anything; summaries from
names, descriptions from docstrings. Where FastAPI would write a wrong
document silently, we refuse at build time instead, naming both sides: two
operations with one `operationId`, two types with one schema name.
"""

from __future__ import annotations

import copy
import dataclasses
import http
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from velocipy.core._errors import DeclarationError
from velocipy.core._params import REQUIRED, ParamDoc
from velocipy.core._plans import ParamPlan, Plan, Source
from velocipy.core._status import allows_body

from ._fields import (
    Field,
    FieldSchemas,
    SchemaError,
    as_files,
    for_pydantic,
    pydantic_available,
)
from ._jsonschema import REF_PREFIX, DuplicateSchemaName, title_of

if TYPE_CHECKING:
    from velocipy.core._routing import Route

#: Where each parameter source goes in the document, in FastAPI's order.
_PARAMETER_SOURCES = (Source.PATH, Source.QUERY, Source.HEADER, Source.COOKIE)
_BODY_SOURCES = frozenset((Source.BODY, Source.FORM))

_VALIDATION_ERROR = {
    "properties": {
        "loc": {
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "type": "array",
            "title": "Location",
        },
        "msg": {"type": "string", "title": "Message"},
        "type": {"type": "string", "title": "Error Type"},
        "input": {"title": "Input"},
        "ctx": {"type": "object", "title": "Context"},
    },
    "type": "object",
    "required": ["loc", "msg", "type"],
    "title": "ValidationError",
}
_HTTP_VALIDATION_ERROR = {
    "properties": {
        "detail": {
            "items": {"$ref": REF_PREFIX + "ValidationError"},
            "type": "array",
            "title": "Detail",
        }
    },
    "type": "object",
    "title": "HTTPValidationError",
}
_RANGES = {
    "1XX": "Information",
    "2XX": "Success",
    "3XX": "Redirection",
    "4XX": "Client Error",
    "5XX": "Server Error",
    "DEFAULT": "Default Response",
}


@dataclass(frozen=True)
class DocumentOptions:
    """The app-wide parts of the document (`VelociPy(title=…, version=…, …)`)."""

    title: str = "VelociPy"
    version: str = "0.1.0"
    summary: str | None = None
    description: str | None = None
    terms_of_service: str | None = None
    contact: dict[str, Any] | None = None
    license_info: dict[str, Any] | None = None
    servers: list[dict[str, Any]] | None = None
    tags: list[dict[str, Any]] | None = None
    external_docs: dict[str, Any] | None = None
    separate_input_output_schemas: bool = True


@dataclass
class _Operation:
    """One (route, method) on its way into the document."""

    route: Route
    method: str
    path: str
    unique_id: str
    parameters: list[ParamPlan] = field(default_factory=list)
    bodies: list[ParamPlan] = field(default_factory=list)
    security: list[tuple[Any, list[str]]] = field(default_factory=list)


def build_document(routes: list[Route], options: DocumentOptions) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`; raises `DeclarationError` for an ambiguous one."""
    operations = [op for route in routes for op in _operations(route)]
    _check_operation_ids(operations)
    fields = FieldSchemas(separate_input_output_schemas=options.separate_input_output_schemas)
    for op in operations:
        try:
            _collect_fields(op, fields)
        except Exception as error:  # a body model pydantic cannot build
            raise DeclarationError(
                f"OpenAPI schema: {op.method} {op.path} ({op.route.label}): {error}"
            ) from None
    try:
        schemas, definitions = fields.generate()
    except (SchemaError, DuplicateSchemaName) as error:
        raise DeclarationError(
            f"OpenAPI schema: {error} (leave the route out with include_in_schema=False, "
            "or turn the schema off with openapi_url=None)"
        ) from None

    paths: dict[str, dict[str, Any]] = {}
    security_schemes: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(
            op, schemas, definitions, security_schemes
        )

    info: dict[str, Any] = {"title": options.title}
    if options.summary:
        info["summary"] = options.summary
    if options.description:
        info["description"] = options.description
    if options.terms_of_service:
        info["termsOfService"] = options.terms_of_service
    if options.contact:
        info["contact"] = options.contact
    if options.license_info:
        info["license"] = options.license_info
    info["version"] = options.version
    document: dict[str, Any] = {"openapi": "3.1.0", "info": info}
    if options.servers:
        document["servers"] = options.servers
    document["paths"] = paths
    components: dict[str, Any] = {}
    if definitions:
        components["schemas"] = {name: definitions[name] for name in sorted(definitions)}
    if security_schemes:
        components["securitySchemes"] = security_schemes
    if components:
        document["components"] = components
    if options.tags:
        document["tags"] = options.tags
    if options.external_docs:
        document["externalDocs"] = options.external_docs
    cleaned: dict[str, Any] = _without_nulls(document)
    return cleaned


def _operations(route: Route) -> Iterator[_Operation]:
    if not route.info.include_in_schema:
        return
    path = re.sub(r"{([^}:]+):[^}]+}", r"{\1}", route.path)  # `{p:path}` is `{p}` in OpenAPI
    parameters, bodies, security = _flatten(route.plan)
    for method in sorted(route.methods):
        # FastAPI's unique id: names the operation, its `Body_…` model and its response.
        unique_id = route.info.operation_id or (
            re.sub(r"\W", "_", f"{route.name}{path}") + f"_{method.lower()}"
        )
        yield _Operation(route, method, path, unique_id, parameters, bodies, security)


def _flatten(plan: Plan) -> tuple[list[ParamPlan], list[ParamPlan], list[tuple[Any, list[str]]]]:
    """Every request parameter of `plan` and its dependencies, in FastAPI's order, each once;
    and each security scheme among the dependencies with the scopes asked on the way to it."""
    from velocipy.security._base import SecurityBase

    visited: set[Any] = set()
    plain: list[ParamPlan] = []
    bodies: list[ParamPlan] = []
    security: list[tuple[Any, list[str]]] = []
    stack: list[tuple[Plan, bool, list[str]]] = [(plan, True, [])]
    while stack:
        current, is_root, scopes = stack.pop()
        key = (current.call, tuple(scopes))
        if key in visited:
            continue
        visited.add(key)
        if not is_root and isinstance(current.call, SecurityBase):
            security.append((current.call, scopes))
        for param in current.params:
            if param.source in _BODY_SOURCES:
                bodies.append(param)
            elif param.gathered is not None:
                plain.extend(_model_parameters(param))
            elif param.source in _PARAMETER_SOURCES:
                plain.append(param)
        stack.extend(
            (param.dependency, False, scopes + [s for s in param.scopes if s not in scopes])
            for param in reversed(current.depends)
            if param.dependency is not None
        )
    # A parameter several of them read is one parameter of the operation, as in FastAPI:
    # it keeps its first place; the last declaration wins, but a required one wins over
    # an optional one (the request must carry it for the route to answer).
    merged: dict[tuple[Source, str], ParamPlan] = {}
    for param in plain:
        where = (param.source, param.alias)
        kept = merged.get(where)
        if kept is None or param.required or not kept.required:
            merged[where] = param
    order = {source: index for index, source in enumerate(_PARAMETER_SOURCES)}
    # Stable: walk order within a source.
    return sorted(merged.values(), key=lambda param: order[param.source]), bodies, security


def _model_parameters(param: ParamPlan) -> list[ParamPlan]:
    """The parameters a query/header/cookie model gathers, one per field, as FastAPI lists them."""
    from typing import Annotated

    assert param.gathered is not None
    expanded = []
    for name, wire in param.gathered.items():
        info = param.annotation.model_fields[name]
        doc = ParamDoc(
            title=info.title or title_of(info.alias or name),
            description=info.description,
            examples=info.examples,
            deprecated=bool(info.deprecated) or None,
            json_schema_extra=info.json_schema_extra
            if isinstance(info.json_schema_extra, dict)
            else None,
        )
        # The field's constraints (`Gt(0)`…) ride along as metadata, as pydantic keeps them.
        metadata = (info.annotation, *info.metadata)
        annotation = Annotated[metadata] if info.metadata else info.annotation
        default = REQUIRED if info.is_required() else info.get_default(call_default_factory=True)
        expanded.append(
            ParamPlan(name, param.source, wire, default=default, annotation=annotation, doc=doc)
        )
    return expanded


def _check_operation_ids(operations: list[_Operation]) -> None:
    seen: dict[str, _Operation] = {}
    for op in operations:
        operation_id = op.unique_id
        first = seen.setdefault(operation_id, op)
        if first is not op:
            raise DeclarationError(
                f"OpenAPI schema: operationId {operation_id!r} is used by both "
                f"{first.method} {first.path} ({first.route.label}) and "
                f"{op.method} {op.path} ({op.route.label}); give one an operation_id"
            )


def _annotation(param: ParamPlan) -> Any:
    """What the schema describes for `param`: its type, with files as binary content."""
    return as_files(param.annotation) if param.is_file else param.annotation


def _param_field(param: ParamPlan) -> Field:
    doc = param.doc
    return Field(
        annotation=_annotation(param),
        mode="validation",
        constraints=tuple(param.constraints.given().items()),
        title=doc.title,
        description=doc.description,
        examples=tuple(doc.examples) if doc.examples is not None else None,
        deprecated=doc.deprecated or None,
        json_schema_extra=tuple(doc.json_schema_extra.items()) if doc.json_schema_extra else None,
        default=param.default,
        has_default=not param.required and param.default_factory is None,
    )


def _collect_fields(op: _Operation, fields: FieldSchemas) -> None:
    where = f"{op.method} {op.path} ({op.route.label})"
    for param in op.parameters:
        fields.add(("param", id(param)), _param_field(param), f"{where}: parameter {param.name!r}")
    if op.bodies:
        if _embedded(op.bodies):
            body = Field(annotation=_body_model(op), mode="validation")
        else:
            body = _param_field(op.bodies[0])
        fields.add(("body", op.unique_id), body, f"{where}: request body")
    model = op.route.info.response_schema
    if model is not None:
        response = Field(annotation=model, mode="serialization")
        fields.add(("response", op.unique_id), response, f"{where}: response model")
    for status, extra in op.route.info.responses.items():
        extra_model = extra.get("model") if isinstance(extra, dict) else None
        if extra_model is not None:
            key = ("extra", op.unique_id, str(status))
            fields.add(key, Field(extra_model, "serialization"), f"{where}: response {status}")


def _embedded(bodies: list[ParamPlan]) -> bool:
    """FastAPI's rule: the body is an object of named fields, not the one field's value."""
    if len({param.name for param in bodies}) > 1:
        return True
    first = bodies[0]
    if first.embed:
        return True
    return first.source is Source.FORM and not _is_model(first.annotation)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "model_validate")


def _body_model(op: _Operation) -> Any:
    """A pydantic model `Body_<unique id>` with one field per body parameter, as FastAPI makes.

    Without pydantic, a dataclass of the same name and fields (their constraints and
    documentation keywords are then not in the schema).
    """
    if not pydantic_available():
        return dataclasses.make_dataclass(
            f"Body_{op.unique_id}",
            [
                (p.alias, _annotation(p))
                if p.required
                else (p.alias, _annotation(p), dataclasses.field(default=p.default))
                for p in sorted(op.bodies, key=lambda p: not p.required)
            ],
        )
    from pydantic import Field as PydanticField
    from pydantic import create_model

    definitions: dict[str, Any] = {}
    for param in op.bodies:
        keywords: dict[str, Any] = dict(param.constraints.given())
        doc = param.doc
        for name in ("title", "description"):
            if getattr(doc, name) is not None:
                keywords[name] = getattr(doc, name)
        if doc.examples is not None:
            keywords["examples"] = list(doc.examples)
        if doc.deprecated:
            keywords["deprecated"] = True
        if doc.json_schema_extra:
            keywords["json_schema_extra"] = dict(doc.json_schema_extra)
        default = ... if param.required else param.default
        annotation = for_pydantic(_annotation(param))
        definitions[param.alias] = (annotation, PydanticField(default, **keywords))
    return create_model(f"Body_{op.unique_id}", **definitions)


def _operation(
    op: _Operation,
    schemas: dict[Hashable, dict[str, Any]],
    definitions: dict[str, dict[str, Any]],
    security_schemes: dict[str, Any],
) -> dict[str, Any]:
    route, info = op.route, op.route.info
    operation: dict[str, Any] = {}
    if info.tags:
        operation["tags"] = list(info.tags)
    operation["summary"] = info.summary or route.name.replace("_", " ").title()
    if info.description:
        operation["description"] = info.description
    operation["operationId"] = op.unique_id
    if info.deprecated:
        operation["deprecated"] = True

    requirements: dict[str, list[str]] = {}
    for scheme, scopes in op.security:
        name = scheme.scheme_name
        security_schemes[name] = scheme.model
        merged = requirements.setdefault(name, [])
        merged.extend(scope for scope in scopes if scope not in merged)
    if requirements:
        operation["security"] = [{name: scopes} for name, scopes in requirements.items()]

    parameters = []
    for param in op.parameters:
        if not param.doc.include_in_schema:
            continue
        schema = dict(schemas[("param", id(param))])
        if "$ref" not in schema:
            schema["title"] = param.doc.title or title_of(param.alias)
        parameter: dict[str, Any] = {
            "name": param.alias,
            "in": param.source.value,
            "required": param.required,
            "schema": schema,
        }
        if param.doc.description:
            parameter["description"] = param.doc.description
        if param.doc.openapi_examples:
            parameter["examples"] = param.doc.openapi_examples
        if param.doc.deprecated:
            parameter["deprecated"] = True
        parameters.append(parameter)
    if parameters:
        operation["parameters"] = parameters

    if op.bodies:
        operation["requestBody"] = _request_body(op, schemas[("body", op.unique_id)])

    operation["responses"] = _responses(op, schemas)
    if (op.parameters or op.bodies) and not any(
        key in operation["responses"] for key in ("422", "4XX", "default")
    ):
        operation["responses"]["422"] = {
            "description": "Validation Error",
            "content": {
                "application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}
            },
        }
        definitions.setdefault("ValidationError", copy.deepcopy(_VALIDATION_ERROR))
        definitions.setdefault("HTTPValidationError", copy.deepcopy(_HTTP_VALIDATION_ERROR))
    if info.openapi_extra:
        _deep_update(operation, info.openapi_extra)
    return operation


def _request_body(op: _Operation, schema: dict[str, Any]) -> dict[str, Any]:
    first = op.bodies[0]
    schema = dict(schema)
    if "$ref" not in schema:
        schema["title"] = first.doc.title or title_of(first.alias)
    if any(param.is_file for param in op.bodies):
        media_type = "multipart/form-data"
    elif any(param.source is Source.FORM for param in op.bodies):
        media_type = "application/x-www-form-urlencoded"
    else:
        media_types = {param.doc.media_type or "application/json" for param in op.bodies}
        media_type = media_types.pop() if len(media_types) == 1 else "application/json"
    content: dict[str, Any] = {"schema": schema}
    if len(op.bodies) == 1 and first.doc.openapi_examples:
        content["examples"] = first.doc.openapi_examples
    body: dict[str, Any] = {}
    if any(param.required for param in op.bodies):
        body["required"] = True
    body["content"] = {media_type: content}
    return body


def _responses(op: _Operation, schemas: dict[Hashable, dict[str, Any]]) -> dict[str, Any]:
    route, info = op.route, op.route.info
    response_class = route.response_class
    media_type = getattr(response_class, "media_type", None) if response_class else None
    is_json = response_class is None or _is_json_class(response_class)
    if is_json:
        media_type = media_type or "application/json"
    status = str(route.status_code or getattr(response_class, "default_status_code", 200))
    responses: dict[str, Any] = {status: {"description": info.response_description}}
    if allows_body(int(status)) and media_type:
        schema: dict[str, Any] = {"type": "string"}
        if is_json:
            schema = dict(schemas.get(("response", op.unique_id), {}))
            if info.response_schema is not None and "$ref" not in schema:
                schema["title"] = title_of(f"Response_{op.unique_id}")
        responses[status]["content"] = {media_type: {"schema": schema}}
    for code, extra in info.responses.items():
        extra = copy.deepcopy(extra)
        extra.pop("model", None)
        key = str(code).upper()
        key = "default" if key == "DEFAULT" else key
        target = responses.setdefault(key, {})
        field_schema = schemas.get(("extra", op.unique_id, str(code)))
        if field_schema is not None:
            content = extra.setdefault("content", {}).setdefault(
                media_type or "application/json", {}
            )
            _deep_update(content.setdefault("schema", {}), dict(field_schema))
        status_text = _RANGES.get(str(code).upper())
        if status_text is None and str(code).isdigit():
            try:
                status_text = http.HTTPStatus(int(code)).phrase
            except ValueError:
                status_text = None
        description = (
            extra.get("description")
            or target.get("description")
            or status_text
            or "Additional Response"
        )
        _deep_update(target, extra)
        target["description"] = description
    return responses


def _is_json_class(response_class: Any) -> bool:
    from velocipy.core._responses import JSONResponse

    return isinstance(response_class, type) and issubclass(response_class, JSONResponse)


def _deep_update(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + value
        else:
            target[key] = value


def _without_nulls(value: Any) -> Any:
    """Drop keys whose value is None (a `default: null` says nothing), as FastAPI does."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
