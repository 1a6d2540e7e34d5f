"""Constraints on parameters, FastAPI-style, through the TestClient.

The expected 422 bodies are what FastAPI (on pydantic v2) answers to the same
requests, recorded as literals: same `type`, `loc`, `msg`, `input` and `ctx`.
"""

from __future__ import annotations

import decimal
from typing import Annotated, Any

import annotated_types as at
import pytest
from pydantic import Field, PositiveInt, StringConstraints, conint, constr

from velocipy import Body, Cookie, Form, Header, Path, Query, VelociPy
from velocipy.core import DeclarationError
from velocipy.testing import TestClient


def make_app() -> VelociPy:
    app = VelociPy()

    @app.get("/q")
    def query(
        a: Annotated[int, Query(gt=5, le=10)] = 6,
        s: Annotated[str, Query(min_length=2, max_length=3, pattern="^a")] = "ab",
        d: Annotated[decimal.Decimal, Query(max_digits=4, decimal_places=2)] = decimal.Decimal(1),
        f: Annotated[float, Query(allow_inf_nan=False, multiple_of=0.5)] = 1.0,
        many: Annotated[list[int], Query(min_length=1, max_length=2)] = [1],  # noqa: B006
        st: Annotated[int, Query(strict=True)] = 1,
        x: Annotated[int, at.Gt(3)] = 4,
        y: Annotated[int, Field(lt=3)] = 1,
    ) -> dict[str, Any]:
        return {"a": a, "s": s, "d": str(d), "f": f, "many": many, "x": x, "y": y}

    @app.get("/items/{item_id}")
    def item(
        item_id: Annotated[int, Path(ge=1)],
        token: Annotated[str, Header(min_length=3)],
        session: Annotated[str | None, Cookie(max_length=4)] = None,
    ) -> dict[str, Any]:
        return {"item_id": item_id, "token": token, "session": session}

    @app.post("/body")
    def body(
        price: Annotated[float, Body(gt=0, embed=True)],
        name: Annotated[str, Body(min_length=1)],
    ) -> dict[str, Any]:
        return {"price": price, "name": name}

    @app.post("/form")
    def form(code: Annotated[str, Form(pattern=r"^\d{4}$")]) -> str:
        return code

    @app.get("/pydantic-types")
    def pydantic_types(
        small: conint(gt=0, lt=10) = 1,  # type: ignore[valid-type]
        word: constr(min_length=2) = "ab",  # type: ignore[valid-type]
        positive: PositiveInt = 1,
        lower: Annotated[str, StringConstraints(to_lower=True)] = "x",
    ) -> dict[str, Any]:
        return {"small": small, "word": word, "positive": positive, "lower": lower}

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app())


def detail(client: TestClient, url: str, **kwargs: Any) -> Any:
    response = client.get(url, **kwargs)
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def test_valid_values_pass(client: TestClient) -> None:
    response = client.get("/q", params={"a": "10", "s": "abc", "d": "12.34", "f": "1.5"})
    assert response.status_code == 200
    assert response.json() == {
        "a": 10,
        "s": "abc",
        "d": "12.34",
        "f": 1.5,
        "many": [1],
        "x": 4,
        "y": 1,
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "/q?a=5",
            {
                "type": "greater_than",
                "loc": ["query", "a"],
                "msg": "Input should be greater than 5",
                "input": "5",
                "ctx": {"gt": 5},
            },
        ),
        (
            "/q?a=11",
            {
                "type": "less_than_equal",
                "loc": ["query", "a"],
                "msg": "Input should be less than or equal to 10",
                "input": "11",
                "ctx": {"le": 10},
            },
        ),
        (
            "/q?s=a",
            {
                "type": "string_too_short",
                "loc": ["query", "s"],
                "msg": "String should have at least 2 characters",
                "input": "a",
                "ctx": {"min_length": 2},
            },
        ),
        (
            "/q?s=abcd",
            {
                "type": "string_too_long",
                "loc": ["query", "s"],
                "msg": "String should have at most 3 characters",
                "input": "abcd",
                "ctx": {"max_length": 3},
            },
        ),
        (
            "/q?s=bb",
            {
                "type": "string_pattern_mismatch",
                "loc": ["query", "s"],
                "msg": "String should match pattern '^a'",
                "input": "bb",
                "ctx": {"pattern": "^a"},
            },
        ),
        (
            "/q?d=123.456",
            {
                "type": "decimal_max_digits",
                "loc": ["query", "d"],
                "msg": "Decimal input should have no more than 4 digits in total",
                "input": "123.456",
                "ctx": {"max_digits": 4},
            },
        ),
        (
            "/q?d=1.234",
            {
                "type": "decimal_max_places",
                "loc": ["query", "d"],
                "msg": "Decimal input should have no more than 2 decimal places",
                "input": "1.234",
                "ctx": {"decimal_places": 2},
            },
        ),
        (
            "/q?d=123.4",
            {
                "type": "decimal_whole_digits",
                "loc": ["query", "d"],
                "msg": "Decimal input should have no more than 2 digits before the decimal point",
                "input": "123.4",
                "ctx": {"whole_digits": 2},
            },
        ),
        (
            "/q?f=inf",
            {
                "type": "finite_number",
                "loc": ["query", "f"],
                "msg": "Input should be a finite number",
                "input": "inf",
            },
        ),
        (
            "/q?f=0.3",
            {
                "type": "multiple_of",
                "loc": ["query", "f"],
                "msg": "Input should be a multiple of 0.5",
                "input": "0.3",
                "ctx": {"multiple_of": 0.5},
            },
        ),
        (
            "/q?many=1&many=2&many=3",
            {
                "type": "too_long",
                "loc": ["query", "many"],
                "msg": "List should have at most 2 items after validation, not 3",
                "input": ["1", "2", "3"],
                "ctx": {"field_type": "List", "max_length": 2, "actual_length": 3},
            },
        ),
        (
            "/q?st=1",
            {
                "type": "int_type",
                "loc": ["query", "st"],
                "msg": "Input should be a valid integer",
                "input": "1",
            },
        ),
        (
            "/q?x=1",
            {
                "type": "greater_than",
                "loc": ["query", "x"],
                "msg": "Input should be greater than 3",
                "input": "1",
                "ctx": {"gt": 3},
            },
        ),
        (
            "/q?y=5",
            {
                "type": "less_than",
                "loc": ["query", "y"],
                "msg": "Input should be less than 3",
                "input": "5",
                "ctx": {"lt": 3},
            },
        ),
        (
            "/pydantic-types?small=10",
            {
                "type": "less_than",
                "loc": ["query", "small"],
                "msg": "Input should be less than 10",
                "input": "10",
                "ctx": {"lt": 10},
            },
        ),
        (
            "/pydantic-types?word=a",
            {
                "type": "string_too_short",
                "loc": ["query", "word"],
                "msg": "String should have at least 2 characters",
                "input": "a",
                "ctx": {"min_length": 2},
            },
        ),
        (
            "/pydantic-types?positive=0",
            {
                "type": "greater_than",
                "loc": ["query", "positive"],
                "msg": "Input should be greater than 0",
                "input": "0",
                "ctx": {"gt": 0},
            },
        ),
    ],
)
def test_violations_answer_fastapis_422(client: TestClient, url: str, expected: Any) -> None:
    assert detail(client, url) == [expected]


def test_pydantic_only_metadata_is_applied_by_pydantic(client: TestClient) -> None:
    response = client.get("/pydantic-types", params={"lower": "LoUd"})
    assert response.status_code == 200 and response.json()["lower"] == "loud"


def test_every_failing_parameter_is_reported(client: TestClient) -> None:
    found = detail(client, "/q?a=1&s=zz")
    assert [(e["type"], e["loc"]) for e in found] == [
        ("greater_than", ["query", "a"]),
        ("string_pattern_mismatch", ["query", "s"]),
    ]


def test_path_header_and_cookie_constraints(client: TestClient) -> None:
    ok = client.get("/items/3", headers={"token": "abcd", "cookie": "session=s1"})
    assert ok.json() == {"item_id": 3, "token": "abcd", "session": "s1"}
    found = detail(client, "/items/0", headers={"token": "ab", "cookie": "session=toolong"})
    assert found == [
        {
            "type": "greater_than_equal",
            "loc": ["path", "item_id"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        },
        {
            "type": "string_too_short",
            "loc": ["header", "token"],
            "msg": "String should have at least 3 characters",
            "input": "ab",
            "ctx": {"min_length": 3},
        },
        {
            "type": "string_too_long",
            "loc": ["cookie", "session"],
            "msg": "String should have at most 4 characters",
            "input": "toolong",
            "ctx": {"max_length": 4},
        },
    ]


def test_body_constraints(client: TestClient) -> None:
    ok = client.post("/body", json={"price": 2.5, "name": "pen"})
    assert ok.json() == {"price": 2.5, "name": "pen"}
    bad = client.post("/body", json={"price": 0, "name": ""})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["body", "price"],
            "msg": "Input should be greater than 0",
            "input": 0,
            "ctx": {"gt": 0.0},
        },
        {
            "type": "string_too_short",
            "loc": ["body", "name"],
            "msg": "String should have at least 1 character",
            "input": "",
            "ctx": {"min_length": 1},
        },
    ]


def test_form_constraints(client: TestClient) -> None:
    assert client.post("/form", data={"code": "1234"}).json() == "1234"
    bad = client.post("/form", data={"code": "12a4"})
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {
            "type": "string_pattern_mismatch",
            "loc": ["body", "code"],
            "msg": "String should match pattern '^\\d{4}$'",
            "input": "12a4",
            "ctx": {"pattern": "^\\d{4}$"},
        }
    ]


def test_regex_is_the_deprecated_name_of_pattern() -> None:
    app = VelociPy()
    with pytest.warns(DeprecationWarning, match="pattern"):

        @app.get("/r")
        def r(code: str = Query(regex="^x")) -> str:
            return code

    assert TestClient(app).get("/r?code=y").json()["detail"][0]["ctx"] == {"pattern": "^x"}


# -- nothing is silently ignored ------------------------------------------------------------------


def declare(handler: Any, path: str = "/x") -> None:
    VelociPy().get(path)(handler)


def test_unknown_metadata_is_refused_naming_route_and_parameter() -> None:
    def handler(q: Annotated[int, "not a constraint"] = 1) -> None: ...

    with pytest.raises(DeclarationError, match=r"GET /x: parameter 'q' of .*not understood"):
        declare(handler)


def test_a_constraint_that_cannot_apply_is_refused() -> None:
    def handler(q: Annotated[str, Query(gt=1)] = "a") -> None: ...

    with pytest.raises(DeclarationError, match=r"parameter 'q'.*gt cannot apply to str"):
        declare(handler)

    def digits(q: Annotated[int, Query(max_digits=3)] = 1) -> None: ...

    with pytest.raises(DeclarationError, match="max_digits cannot apply to int"):
        declare(digits)


def test_an_unknown_marker_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Query(maximum=3)  # type: ignore[call-arg]


def test_an_invalid_pattern_is_refused() -> None:
    def handler(q: Annotated[str, Query(pattern="(")] = "a") -> None: ...

    with pytest.raises(DeclarationError, match="not a valid regular expression"):
        declare(handler)


def test_field_options_we_do_not_apply_are_refused() -> None:
    def handler(q: Annotated[int, Field(frozen=True)] = 1) -> None: ...

    with pytest.raises(DeclarationError, match=r"parameter 'q'.*frozen"):
        declare(handler)


def test_a_path_name_no_parameter_takes_is_refused() -> None:
    def handler(item_id: int) -> None: ...

    with pytest.raises(DeclarationError, match=r"GET /teams/\{team\}/items/\{item_id\}.*\{team\}"):
        declare(handler, "/teams/{team}/items/{item_id}")


def test_a_path_name_taken_by_a_dependency_is_fine() -> None:
    from velocipy import Depends

    def team(team: str) -> str:
        return team

    app = VelociPy()

    @app.get("/teams/{team}")
    def handler(name: Annotated[str, Depends(team)]) -> str:
        return name

    assert TestClient(app).get("/teams/red").json() == "red"


# -- documentation keywords are kept on the plan ---------------------------------------------


def test_documentation_keywords_are_kept_on_the_plan() -> None:
    app = VelociPy()

    @app.get("/doc")
    def documented(
        q: Annotated[
            str,
            Query(
                title="Query",
                description="what to look for",
                examples=["pens"],
                openapi_examples={"one": {"value": "pens"}},
                deprecated=True,
                include_in_schema=False,
                json_schema_extra={"x-k": 1},
                alias="search",
                serialization_alias="s",
                min_length=2,
            ),
        ] = "ab",
        body: Annotated[dict[str, int], Body(media_type="application/vnd+json")] = {},  # noqa: B006
    ) -> str:
        return q

    (route,) = [r for r in app.router.routes if r.path == "/doc"]
    q, body = route.plan.params
    assert q.alias == "search" and q.constraints.min_length == 2
    assert q.doc.title == "Query" and q.doc.description == "what to look for"
    assert q.doc.examples == ["pens"] and q.doc.openapi_examples == {"one": {"value": "pens"}}
    assert q.doc.deprecated is True and q.doc.include_in_schema is False
    assert q.doc.json_schema_extra == {"x-k": 1} and q.doc.serialization_alias == "s"
    assert body.doc.media_type == "application/vnd+json"
    assert TestClient(app).get("/doc?search=pens").json() == "pens"


# -- constraints inside bodies we validate ourselves (dataclasses) --------------------------------


def test_constraints_on_dataclass_fields_apply_and_unknown_ones_are_refused() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Order:
        quantity: Annotated[int, at.Gt(0)]
        code: Annotated[str, Field(pattern="^[A-Z]+$")] = "A"

    app = VelociPy()

    @app.post("/orders")
    def order(order: Order) -> int:
        return order.quantity

    client = TestClient(app)
    assert client.post("/orders", json={"quantity": 2}).json() == 2
    assert client.post("/orders", json={"quantity": 0, "code": "a"}).json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["body", "quantity"],
            "msg": "Input should be greater than 0",
            "input": 0,
            "ctx": {"gt": 0},
        },
        {
            "type": "string_pattern_mismatch",
            "loc": ["body", "code"],
            "msg": "String should match pattern '^[A-Z]+$'",
            "input": "a",
            "ctx": {"pattern": "^[A-Z]+$"},
        },
    ]

    @dataclasses.dataclass
    class Odd:
        size: Annotated[int, "centimetres"]

    def odd(body: Odd) -> None: ...

    with pytest.raises(DeclarationError, match=r"POST /odd: parameter 'body'.*not understood"):
        VelociPy().post("/odd")(odd)
