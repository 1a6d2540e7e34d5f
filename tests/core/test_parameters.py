"""Where parameters come from and how they are converted and validated (pure, hand-driven)."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from typing import Annotated, Any, Literal

import pydantic
import pytest

from tests.core.handdrive import serve
from velocipy.core import (
    Application,
    Body,
    Cookie,
    DeclarationError,
    Form,
    Header,
    Path,
    Query,
    Request,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


class Model(pydantic.BaseModel):
    name: str
    size: int


@pytest.fixture
def app() -> Application:
    app = Application()

    @app.get("/path/{i}/{f}/{b}/{u}")
    def path(i: int, f: float, b: bool, u: uuid.UUID) -> dict[str, Any]:
        return {"i": i, "f": f, "b": b, "u": str(u)}

    @app.get("/files/{rest:path}")
    def files(rest: str) -> str:
        return rest

    @app.get("/query")
    def query(
        n: int,
        tags: list[int] = [],  # noqa: B006 - copied per request
        color: Color = Color.RED,
        mode: Literal["a", "b"] = "a",
        opt: int | None = None,
        legacy: int = None,  # type: ignore[assignment]  # noqa: RUF013
        size: Annotated[int, Query(alias="page-size")] = 10,
    ) -> dict[str, Any]:
        tags.append(-1)
        return {
            "n": n,
            "tags": tags,
            "color": color.value,
            "mode": mode,
            "opt": opt,
            "legacy": legacy,
            "size": size,
        }

    @app.get("/headers")
    def headers(
        user_agent: Annotated[str, Header()],
        x_ids: Annotated[list[int], Header()] = [],  # noqa: B006
        session: Annotated[str | None, Cookie()] = None,
    ) -> dict[str, Any]:
        return {"ua": user_agent, "ids": x_ids, "session": session}

    @app.post("/item")
    def item(item: Item) -> Item:
        return item

    @app.post("/model")
    def model(m: Model) -> Model:
        return m

    @app.post("/two")
    def two(item: Item, count: Annotated[int, Body()]) -> dict[str, Any]:
        return {"name": item.name, "count": count}

    @app.post("/embed")
    def embed(count: Annotated[int, Body(embed=True)]) -> int:
        return count

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, Any]:
        return {"body": (await request.body()).decode(), "json": await request.json()}

    @app.post("/form")
    def form(name: Annotated[str, Form()], n: Annotated[list[int], Form()]) -> dict[str, Any]:
        return {"name": name, "n": n}

    @app.post("/list")
    def items(data: list[dict[str, int]]) -> int:
        return sum(d["v"] for d in data)

    return app


def test_path_parameters_convert_by_annotation(app: Application) -> None:
    u = uuid.uuid4()
    out = serve(app, "GET", f"/path/7/2.5/true/{u}")
    assert out.json() == {"i": 7, "f": 2.5, "b": True, "u": str(u)}


def test_path_conversion_failure_is_a_422_naming_the_parameter(app: Application) -> None:
    out = serve(app, "GET", f"/path/x/2.5/maybe/{uuid.uuid4()}")
    assert out.status == 422
    detail = out.json()["detail"]
    assert [d["loc"] for d in detail] == [["path", "i"], ["path", "b"]]
    assert detail[0]["type"] == "int_parsing" and detail[0]["input"] == "x"


def test_path_converter_matches_slashes(app: Application) -> None:
    assert serve(app, "GET", "/files/a/b/c.txt").json() == "a/b/c.txt"


def test_query_scalars_lists_enums_literals_and_defaults(app: Application) -> None:
    out = serve(app, "GET", "/query", query=b"n=3&tags=1&tags=2&color=blue&mode=b&page-size=5")
    assert out.json() == {
        "n": 3,
        "tags": [1, 2, -1],
        "color": "blue",
        "mode": "b",
        "opt": None,
        "legacy": None,
        "size": 5,
    }
    # A mutable default is copied per request, never shared.
    again = serve(app, "GET", "/query", query=b"n=1")
    assert again.json()["tags"] == [-1]


def test_missing_and_invalid_query_values_are_all_reported(app: Application) -> None:
    out = serve(app, "GET", "/query", query=b"tags=x&color=green&mode=c")
    assert out.status == 422
    locs = {tuple(d["loc"]): d["type"] for d in out.json()["detail"]}
    assert locs == {
        ("query", "n"): "missing",
        ("query", "tags", 0): "int_parsing",
        ("query", "color"): "enum",
        ("query", "mode"): "literal_error",
    }


def test_headers_and_cookies(app: Application) -> None:
    out = serve(
        app,
        "GET",
        "/headers",
        headers=[
            (b"user-agent", b"curl/8"),
            (b"x-ids", b"1"),
            (b"x-ids", b"2"),
            (b"cookie", b'theme=dark; session="abc"'),
        ],
    )
    assert out.json() == {"ua": "curl/8", "ids": [1, 2], "session": "abc"}
    missing = serve(app, "GET", "/headers")
    assert missing.status == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "user-agent"]


def test_dataclass_body_converted_and_returned_as_json(app: Application) -> None:
    out = serve(app, "POST", "/item", body=b'{"name": "pen", "price": 2, "tags": ["a"]}')
    assert out.json() == {"name": "pen", "price": 2.0, "tags": ["a"]}


def test_dataclass_body_errors_name_the_field(app: Application) -> None:
    out = serve(app, "POST", "/item", body=b'{"price": "cheap", "tags": [1]}')
    assert out.status == 422
    locs = sorted(tuple(d["loc"]) for d in out.json()["detail"])
    assert locs == [("body", "name"), ("body", "price"), ("body", "tags", 0)]


def test_pydantic_model_body(app: Application) -> None:
    assert serve(app, "POST", "/model", body=b'{"name": "a", "size": 2}').json() == {
        "name": "a",
        "size": 2,
    }
    bad = serve(app, "POST", "/model", body=b'{"name": "a", "size": "big"}')
    assert bad.status == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "size"]


def test_several_body_parameters_are_embedded_by_name(app: Application) -> None:
    body = json.dumps({"item": {"name": "a", "price": 1}, "count": 3}).encode()
    assert serve(app, "POST", "/two", body=body).json() == {"name": "a", "count": 3}
    assert serve(app, "POST", "/embed", body=b'{"count": 4}').json() == 4
    wrong = serve(app, "POST", "/embed", body=b"[1]")
    # Not an object: FastAPI calls each embedded field missing.
    assert wrong.status == 422 and wrong.json()["detail"] == [
        {"type": "missing", "loc": ["body", "count"], "msg": "Field required", "input": None}
    ]


def test_missing_body_is_a_422(app: Application) -> None:
    out = serve(app, "POST", "/item")
    assert out.status == 422
    assert out.json()["detail"][0] == {
        "type": "missing",
        "loc": ["body"],
        "msg": "Field required",
        "input": None,
    }


def test_invalid_json_is_fastapis_422_and_no_handler_runs(app: Application) -> None:
    out = serve(app, "POST", "/item", body=b'{"name": ')
    assert out.status == 422
    assert out.json() == {
        "detail": [
            {
                "type": "json_invalid",
                "loc": ["body", 9],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ]
    }
    assert out.purposes() == []


def test_a_body_that_is_not_json_by_its_content_type_is_not_decoded(app: Application) -> None:
    out = serve(
        app, "POST", "/item", body=b'{"name": "a"}', headers=[(b"content-type", b"text/plain")]
    )
    assert out.status == 422
    assert out.json()["detail"][0]["input"] == '{"name": "a"}'
    vendor = [(b"content-type", b"application/vnd.api+json; charset=utf-8")]
    body = b'{"name": "a", "price": 1}'
    assert serve(app, "POST", "/item", body=body, headers=vendor).status == 200


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_json_is_a_400_and_no_handler_runs(
    app: Application, body: bytes, words: str
) -> None:
    out = serve(app, "POST", "/item", body=body)
    assert out.status == 400
    assert words in out.json()["detail"]
    assert out.purposes() == []


def test_request_parameter_gets_the_body(app: Application) -> None:
    out = serve(app, "POST", "/raw", body=b'{"k": 1}')
    assert out.json() == {"body": '{"k": 1}', "json": {"k": 1}}


def test_form_fields(app: Application) -> None:
    out = serve(
        app,
        "POST",
        "/form",
        body=b"name=J%C3%BCrgen&n=1&n=2",
        headers=[(b"content-type", b"application/x-www-form-urlencoded")],
    )
    assert out.json() == {"name": "Jürgen", "n": [1, 2]}


def test_list_of_objects_body(app: Application) -> None:
    assert serve(app, "POST", "/list", body=b'[{"v": 1}, {"v": 2}]').json() == 3


# -- declaration mistakes raise at once, naming route and parameter ----------------------------


def test_path_marker_without_template_parameter() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match=r"GET /x: parameter 'i' .* no \{i\}"):

        @app.get("/x")
        def handler(i: Annotated[int, Path()]) -> None: ...


class Opaque:
    pass


def test_unconvertible_annotation() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="POST /x: parameter 'thing' .*Opaque"):

        @app.post("/x")
        def handler(thing: Opaque) -> None: ...


def test_local_names_in_postponed_annotations_resolve() -> None:
    app = Application()

    @dataclasses.dataclass
    class Local:
        n: int

    @app.post("/x")
    def handler(thing: Local) -> int:
        return thing.n

    assert serve(app, "POST", "/x", body=b'{"n": 3}').json() == 3


def test_unresolvable_annotation_names_the_route_and_handler() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="POST /x: cannot resolve .*handler.*Undefined"):

        @app.post("/x")
        def handler(thing: Undefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821


def test_positional_only_parameter() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="positional-only"):

        @app.get("/x")
        def handler(a: int, /) -> None: ...


def test_marker_twice() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="both"):

        @app.get("/x")
        def handler(a: Annotated[int, Query()] = Query(3)) -> None: ...


def test_non_scalar_path_parameter() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="scalar"):

        @app.get("/x/{a}")
        def handler(a: list[int]) -> None: ...


@pytest.mark.parametrize("path", ["no-slash", "/a/{b", "/a/{b:weird}", "/a/{b}/{b}"])
def test_bad_templates(path: str) -> None:
    app = Application()
    with pytest.raises(DeclarationError):
        app.add_api_route(path, lambda: None)


def test_generator_handler_is_refused() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="generator"):

        @app.get("/x")
        def handler() -> Any:
            yield 1


def test_unknown_method_and_duplicate_route() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="unknown HTTP method"):
        app.add_api_route("/x", lambda: None, methods=["FETCH"])
    app.add_api_route("/x", lambda: None)
    with pytest.raises(DeclarationError, match="declared twice"):
        app.add_api_route("/x", lambda: None)
