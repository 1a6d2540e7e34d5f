"""Where values come from, FastAPI-style: collections from query and headers, parameter
models, the extra data types in every source, bodies (embedding, invalid JSON, content
types), through the TestClient.

Expected 422 bodies are FastAPI's answers to the same requests, recorded as literals.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from velocipy import Body, Cookie, Depends, Header, Query, VelociPy
from velocipy.testing import TestClient

UID = "0b4e0e52-3b0a-4c4e-9a8e-2a2a2a2a2a2a"


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


class FilterParams(BaseModel):
    model_config = {"extra": "forbid"}
    limit: int = Field(100, gt=0, le=100)
    order_by: Literal["created_at", "updated_at"] = "created_at"
    tags: list[str] = []
    need: int


class CommonHeaders(BaseModel):
    model_config = {"extra": "ignore"}
    host: str
    save_data: bool
    x_tag: list[str] = []


class Item(BaseModel):
    name: str
    price: float


def make_app() -> VelociPy:
    app = VelociPy()

    @app.get("/types/{u}")
    def types(
        u: uuid.UUID,
        dt: datetime.datetime,
        d: datetime.date,
        t: datetime.time,
        td: datetime.timedelta,
        dec: decimal.Decimal,
        b: bytes,
        fs: Annotated[frozenset[int], Query()],
        c: Color,
        lit: Literal["a", "b"],
    ) -> dict[str, Any]:
        return {
            "u": str(u),
            "dt": dt.isoformat(),
            "d": d.isoformat(),
            "t": t.isoformat(),
            "td": td.total_seconds(),
            "dec": str(dec),
            "b": b.decode(),
            "fs": sorted(fs),
            "c": c.value,
            "lit": lit,
        }

    @app.get("/headers")
    def headers(
        x_ids: Annotated[list[int], Header()],
        x_set: Annotated[set[str], Header()] = set(),  # noqa: B006
        x_when: Annotated[datetime.date | None, Header()] = None,
    ) -> dict[str, Any]:
        return {"ids": x_ids, "set": sorted(x_set), "when": x_when and x_when.isoformat()}

    @app.get("/tuples")
    def tuples(
        t: Annotated[tuple[int, ...], Query()] = (),
        pair: Annotated[tuple[int, str] | None, Query()] = None,
    ) -> dict[str, Any]:
        return {"t": list(t), "pair": pair and list(pair)}

    @app.get("/cookie-when")
    def cookie_when(when: Annotated[datetime.date, Cookie()]) -> str:
        return when.isoformat()

    @app.post("/body-types")
    def body_types(
        u: Annotated[uuid.UUID, Body()],
        td: Annotated[datetime.timedelta, Body()],
        dec: Annotated[decimal.Decimal, Body()],
        fs: Annotated[frozenset[int], Body()],
        c: Annotated[Color, Body()],
        dt: Annotated[datetime.datetime, Body()],
    ) -> dict[str, Any]:
        return {
            "u": str(u),
            "td": td.total_seconds(),
            "dec": str(dec),
            "fs": sorted(fs),
            "c": c.value,
            "dt": dt.isoformat(),
        }

    @app.get("/filters")
    def filters(f: Annotated[FilterParams, Query()]) -> dict[str, Any]:
        return f.model_dump()

    @app.get("/common-headers")
    def common_headers(h: Annotated[CommonHeaders, Header()]) -> dict[str, Any]:
        return h.model_dump()

    @app.get("/cookie-model")
    def cookie_model(c: Annotated[FilterParams, Cookie()]) -> dict[str, Any]:
        return c.model_dump()

    @app.post("/item")
    def item(item: Item) -> dict[str, Any]:
        return item.model_dump()

    @app.post("/embedded")
    def embedded(count: Annotated[int, Body(embed=True)]) -> int:
        return count

    @app.post("/two")
    def two(item: Item, n: Annotated[int, Body()]) -> dict[str, Any]:
        return {"item": item.model_dump(), "n": n}

    def user_of(user: Annotated[str, Body()]) -> str:
        return user

    @app.post("/with-dependency")
    def with_dependency(item: Item, user: Annotated[str, Depends(user_of)]) -> dict[str, Any]:
        return {"item": item.name, "user": user}

    @app.post("/text")
    def text(value: Annotated[str, Body()]) -> str:
        return value

    @app.post("/mapping")
    def mapping(value: dict[str, int]) -> dict[str, int]:
        return value

    return app


@pytest.fixture(scope="module")
def app() -> VelociPy:
    return make_app()


@pytest.fixture(scope="module")
def client(app: VelociPy) -> TestClient:
    return TestClient(app)


def get_with_headers(client: TestClient, path: str, headers: list[tuple[str, str]]) -> Any:
    """A GET with repeated headers."""
    return client.get(path, headers=headers).json()


# -- the extra data types, in every source ------------------------------------------------------


def test_extra_types_from_path_and_query(client: TestClient) -> None:
    response = client.get(
        f"/types/{UID}",
        params=[
            ("dt", "2024-01-02T03:04:05"),
            ("d", "2024-01-02"),
            ("t", "03:04:05"),
            ("td", "PT1H"),
            ("dec", "1.50"),
            ("b", "xyz"),
            ("fs", "1"),
            ("fs", "2"),
            ("fs", "1"),
            ("c", "red"),
            ("lit", "a"),
        ],
    )
    assert response.json() == {
        "u": UID,
        "dt": "2024-01-02T03:04:05",
        "d": "2024-01-02",
        "t": "03:04:05",
        "td": 3600.0,
        "dec": "1.50",
        "b": "xyz",
        "fs": [1, 2],
        "c": "red",
        "lit": "a",
    }


def test_extra_types_errors_are_fastapis(client: TestClient) -> None:
    response = client.get(
        "/types/nope",
        params=[
            ("dt", "x"),
            ("d", "2024-13-01"),
            ("t", "25:00"),
            ("td", "x"),
            ("dec", "x"),
            ("fs", "a"),
            ("c", "green"),
            ("lit", "c"),
        ],
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "uuid_parsing",
                "loc": ["path", "u"],
                "msg": "Input should be a valid UUID, invalid character: found `n` at 0",
                "input": "nope",
                "ctx": {"error": "invalid character: found `n` at 0"},
            },
            {
                "type": "datetime_from_date_parsing",
                "loc": ["query", "dt"],
                "msg": "Input should be a valid datetime or date, input is too short",
                "input": "x",
                "ctx": {"error": "input is too short"},
            },
            {
                "type": "date_from_datetime_parsing",
                "loc": ["query", "d"],
                "msg": "Input should be a valid date or datetime, "
                "month value is outside expected range of 1-12",
                "input": "2024-13-01",
                "ctx": {"error": "month value is outside expected range of 1-12"},
            },
            {
                "type": "time_parsing",
                "loc": ["query", "t"],
                "msg": "Input should be in a valid time format, "
                "hour value is outside expected range of 0-23",
                "input": "25:00",
                "ctx": {"error": "hour value is outside expected range of 0-23"},
            },
            {
                "type": "time_delta_parsing",
                "loc": ["query", "td"],
                "msg": "Input should be a valid timedelta, invalid digit in duration",
                "input": "x",
                "ctx": {"error": "invalid digit in duration"},
            },
            {
                "type": "decimal_parsing",
                "loc": ["query", "dec"],
                "msg": "Input should be a valid decimal",
                "input": "x",
            },
            {
                "type": "missing",
                "loc": ["query", "b"],
                "msg": "Field required",
                "input": None,
            },
            {
                "type": "int_parsing",
                "loc": ["query", "fs", 0],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "a",
            },
            {
                "type": "enum",
                "loc": ["query", "c"],
                "msg": "Input should be 'red' or 'blue'",
                "input": "green",
                "ctx": {"expected": "'red' or 'blue'"},
            },
            {
                "type": "literal_error",
                "loc": ["query", "lit"],
                "msg": "Input should be 'a' or 'b'",
                "input": "c",
                "ctx": {"expected": "'a' or 'b'"},
            },
        ]
    }


def test_extra_types_in_a_body(client: TestClient) -> None:
    good = client.post(
        "/body-types",
        json={
            "u": UID,
            "td": 90.5,
            "dec": 1.5,
            "fs": [3, 1],
            "c": "blue",
            "dt": "2024-01-02T03:04:05Z",
        },
    )
    assert good.json() == {
        "u": UID,
        "td": 90.5,
        "dec": "1.5",
        "fs": [1, 3],
        "c": "blue",
        "dt": "2024-01-02T03:04:05+00:00",
    }
    bad = client.post(
        "/body-types", json={"u": 5, "td": "x", "dec": "y", "fs": "z", "c": 1, "dt": None}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {
            "type": "uuid_type",
            "loc": ["body", "u"],
            "msg": "UUID input should be a string, bytes or UUID object",
            "input": 5,
        },
        {
            "type": "time_delta_parsing",
            "loc": ["body", "td"],
            "msg": "Input should be a valid timedelta, invalid digit in duration",
            "input": "x",
            "ctx": {"error": "invalid digit in duration"},
        },
        {
            "type": "decimal_parsing",
            "loc": ["body", "dec"],
            "msg": "Input should be a valid decimal",
            "input": "y",
        },
        {
            "type": "frozen_set_type",
            "loc": ["body", "fs"],
            "msg": "Input should be a valid frozenset",
            "input": "z",
        },
        {
            "type": "enum",
            "loc": ["body", "c"],
            "msg": "Input should be 'red' or 'blue'",
            "input": 1,
            "ctx": {"expected": "'red' or 'blue'"},
        },
        {
            "type": "datetime_type",
            "loc": ["body", "dt"],
            "msg": "Input should be a valid datetime",
            "input": None,
        },
    ]


def test_a_date_from_a_cookie(client: TestClient) -> None:
    assert client.get("/cookie-when", headers={"cookie": "when=2024-05-06"}).json() == "2024-05-06"


# -- collections from query and headers ----------------------------------------------------------


def test_collections_from_headers(app: VelociPy, client: TestClient) -> None:
    ok = get_with_headers(
        client,
        "/headers",
        [("x-ids", "1"), ("x-ids", "2"), ("x-set", "a"), ("x-set", "a"), ("x-when", "2024-01-02")],
    )
    assert ok == {"ids": [1, 2], "set": ["a"], "when": "2024-01-02"}
    bad = client.get("/headers", headers={"x-ids": "x"})
    assert bad.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["header", "x-ids", 0],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "x",
            }
        ]
    }
    assert client.get("/headers").json() == {
        "detail": [
            {"type": "missing", "loc": ["header", "x-ids"], "msg": "Field required", "input": None}
        ]
    }


def test_tuples_from_the_query(client: TestClient) -> None:
    ok = client.get("/tuples", params=[("t", "1"), ("t", "2"), ("pair", "1"), ("pair", "x")])
    assert ok.json() == {"t": [1, 2], "pair": [1, "x"]}
    short = client.get("/tuples", params=[("pair", "1")])
    assert short.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["query", "pair", 1],
                "msg": "Field required",
                "input": ["1"],
            }
        ]
    }


# -- Query(), Header() and Cookie() models -------------------------------------------------------


def test_a_query_model(client: TestClient) -> None:
    ok = client.get("/filters?need=1&limit=5&tags=a&tags=b")
    assert ok.json() == {"limit": 5, "order_by": "created_at", "tags": ["a", "b"], "need": 1}
    bad = client.get("/filters?limit=0&tool=x")
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["query", "limit"],
            "msg": "Input should be greater than 0",
            "input": "0",
            "ctx": {"gt": 0},
        },
        {
            "type": "missing",
            "loc": ["query", "need"],
            "msg": "Field required",
            "input": {"limit": "0", "tool": "x"},
        },
        {
            "type": "extra_forbidden",
            "loc": ["query", "tool"],
            "msg": "Extra inputs are not permitted",
            "input": "x",
        },
    ]
    literal = client.get("/filters?need=1&order_by=x")
    assert literal.json()["detail"] == [
        {
            "type": "literal_error",
            "loc": ["query", "order_by"],
            "msg": "Input should be 'created_at' or 'updated_at'",
            "input": "x",
            "ctx": {"expected": "'created_at' or 'updated_at'"},
        }
    ]


def test_a_header_model(app: VelociPy, client: TestClient) -> None:
    headers = [("save-data", "1"), ("x-tag", "a"), ("x-tag", "b")]
    ok = get_with_headers(client, "/common-headers", headers)
    assert ok == {"host": "testserver", "save_data": True, "x_tag": ["a", "b"]}
    bad = client.get("/common-headers", headers={"save-data": "maybe"})
    assert bad.json() == {
        "detail": [
            {
                "type": "bool_parsing",
                "loc": ["header", "save-data"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe",
            }
        ]
    }


def test_a_cookie_model(client: TestClient) -> None:
    bad = client.get("/cookie-model", headers={"cookie": "need=x"})
    assert bad.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["cookie", "need"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "x",
            }
        ]
    }
    assert client.get("/cookie-model", headers={"cookie": "need=2"}).json()["need"] == 2


# -- bodies ---------------------------------------------------------------------------------------


def test_embedding(client: TestClient) -> None:
    assert client.post("/embedded", json={"count": 3}).json() == 3
    assert client.post("/embedded", json=[1]).json() == {
        "detail": [
            {"type": "missing", "loc": ["body", "count"], "msg": "Field required", "input": None}
        ]
    }
    both = client.post("/two", json={"item": {"name": "a", "price": 1}, "n": 2})
    assert both.json() == {"item": {"name": "a", "price": 1.0}, "n": 2}
    assert client.post("/two", json=5).json() == {
        "detail": [
            {"type": "missing", "loc": ["body", "item"], "msg": "Field required", "input": None},
            {"type": "missing", "loc": ["body", "n"], "msg": "Field required", "input": None},
        ]
    }


def test_a_body_parameter_of_a_dependency_counts_for_embedding(client: TestClient) -> None:
    response = client.post(
        "/with-dependency", json={"item": {"name": "a", "price": 1}, "user": "jo"}
    )
    assert response.json() == {"item": "a", "user": "jo"}


def test_invalid_json_is_a_422_json_invalid(client: TestClient) -> None:
    response = client.post("/item", content=b'{"a":', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "json_invalid",
                "loc": ["body", 5],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ]
    }


def test_a_body_of_another_content_type_is_not_read_as_json(client: TestClient) -> None:
    plain = {"content-type": "text/plain"}
    response = client.post("/item", content=b'{"a":1}', headers=plain)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": '{"a":1}',
            }
        ]
    }
    assert client.post("/embedded", content=b'{"count":1}', headers=plain).json() == {
        "detail": [
            {"type": "missing", "loc": ["body", "count"], "msg": "Field required", "input": None}
        ]
    }
    assert client.post("/mapping", content=b"xx", headers=plain).json() == {
        "detail": [
            {
                "type": "dict_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary",
                "input": "xx",
            }
        ]
    }
    # A str body takes the text as it is, as FastAPI does.
    assert client.post("/text", content=b"xx", headers=plain).json() == "xx"
    vendor = {"content-type": "application/merge-patch+json; charset=utf-8"}
    assert client.post("/mapping", content=b'{"a": 1}', headers=vendor).json() == {"a": 1}


def test_a_header_model_forbidding_extras_refuses_every_request_as_in_fastapi() -> None:
    class Strict(BaseModel):
        model_config = {"extra": "forbid"}
        x_tag: str = "d"

    app = VelociPy()

    @app.get("/strict")
    def strict(h: Annotated[Strict, Header()]) -> str:
        return h.x_tag

    detail = TestClient(app).get("/strict", headers={"x-tag": "t"}).json()["detail"]
    assert {
        "type": "extra_forbidden",
        "loc": ["header", "host"],
        "msg": "Extra inputs are not permitted",
        "input": "testserver",
    } in detail


def test_a_dependency_used_twice_counts_its_body_once() -> None:
    def the_item(item: Item) -> Item:
        return item

    def first(item: Annotated[Item, Depends(the_item)]) -> str:
        return item.name

    def second(item: Annotated[Item, Depends(the_item)]) -> float:
        return item.price

    app = VelociPy()

    @app.post("/twice")
    def twice(
        name: Annotated[str, Depends(first)], price: Annotated[float, Depends(second)]
    ) -> dict[str, Any]:
        return {"name": name, "price": price}

    # One body parameter in the whole route: the body is the item itself, not embedded.
    response = TestClient(app).post("/twice", json={"name": "pen", "price": 2})
    assert response.json() == {"name": "pen", "price": 2.0}
