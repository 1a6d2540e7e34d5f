"""Response models, FastAPI-style: filtering, the return annotation, the options, and the 500.

Expected bodies are FastAPI's (0.115+ with pydantic 2) for the same declarations.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

import pytest
from pydantic import BaseModel, Field

from velocipy import HTMLResponse, JSONResponse, Response, ResponseValidationError, VelociPy
from velocipy.core import DeclarationError
from velocipy.testing import TestClient


class UserIn(BaseModel):
    name: str
    password: str
    email: str | None = None


class UserOut(BaseModel):
    name: str
    email: str | None = None


class Item(BaseModel):
    name: str
    description: str | None = None
    price: float
    tax: float = 10.5
    tags: list[str] = []


class Aliased(BaseModel):
    item_name: str = Field(alias="itemName")


ITEMS: dict[str, dict[str, Any]] = {
    "foo": {"name": "Foo", "price": 50.2},
    "bar": {"name": "Bar", "description": "The bartenders", "price": 62, "tax": 20.2},
    "baz": {"name": "Baz", "description": None, "price": 50.2, "tax": 10.5, "tags": []},
}


def make_app() -> VelociPy:
    app = VelociPy()

    @app.post("/users", response_model=UserOut)
    def create(user: UserIn) -> Any:
        return user  # the password must not leave

    @app.get("/users/me")
    def me() -> UserOut:  # the annotation is the model
        return UserIn(name="ada", password="secret")  # type: ignore[return-value]

    @app.get("/users/raw", response_model=None)
    def raw() -> UserOut:
        return {"name": "ada", "password": "secret"}  # type: ignore[return-value]

    @app.get("/users/dicts", response_model=list[UserOut])
    def dicts() -> Any:
        return [{"name": "a", "password": "x"}, {"name": "b", "email": "b@x", "extra": 1}]

    @app.get("/items/{key}", response_model=Item, response_model_exclude_unset=True)
    def item_unset(key: str) -> Any:
        return ITEMS[key]

    @app.get("/defaults/{key}", response_model=Item, response_model_exclude_defaults=True)
    def item_defaults(key: str) -> Any:
        return ITEMS[key]

    @app.get("/none/{key}", response_model=Item, response_model_exclude_none=True)
    def item_none(key: str) -> Any:
        return ITEMS[key]

    @app.get("/include", response_model=Item, response_model_include={"name", "price"})
    def include() -> Any:
        return ITEMS["bar"]

    @app.get("/exclude", response_model=Item, response_model_exclude={"tax", "tags"})
    def exclude() -> Any:
        return ITEMS["bar"]

    @app.get("/alias", response_model=Aliased)
    def alias() -> Any:
        return {"itemName": "x"}

    @app.get("/no-alias", response_model=Aliased, response_model_by_alias=False)
    def no_alias() -> Any:
        return {"itemName": "x"}

    @app.get("/broken", response_model=Item)
    def broken() -> Any:
        return {"name": "no price"}

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {"a": "b"}

    @app.get("/html", response_model=str, response_class=HTMLResponse)
    def html() -> Any:
        return "<b>hi</b>"

    @app.get("/created", response_model=UserOut, status_code=201)
    def created() -> Any:
        return {"name": "n", "password": "p"}

    @app.get("/response")
    def response() -> JSONResponse:
        return JSONResponse({"sent": "as is"}, status_code=202)

    return app


client = TestClient(make_app())


def test_fields_not_in_the_model_never_leave() -> None:
    out = client.post("/users", json={"name": "ada", "password": "secret", "email": "a@x"})
    assert out.status_code == 200
    assert out.json() == {"name": "ada", "email": "a@x"}
    assert b"secret" not in out.content


def test_the_return_annotation_is_the_model_unless_response_model_none() -> None:
    assert client.get("/users/me").json() == {"name": "ada", "email": None}
    assert client.get("/users/raw").json() == {"name": "ada", "password": "secret"}


def test_a_list_model_filters_every_item() -> None:
    assert client.get("/users/dicts").json() == [
        {"name": "a", "email": None},
        {"name": "b", "email": "b@x"},
    ]


def test_exclude_unset_defaults_none() -> None:
    assert client.get("/items/foo").json() == {"name": "Foo", "price": 50.2}
    assert client.get("/items/bar").json() == {
        "name": "Bar",
        "description": "The bartenders",
        "price": 62.0,
        "tax": 20.2,
    }
    assert client.get("/items/baz").json() == {
        "name": "Baz",
        "description": None,
        "price": 50.2,
        "tax": 10.5,
        "tags": [],
    }
    assert client.get("/defaults/baz").json() == {"name": "Baz", "price": 50.2}
    assert client.get("/none/foo").json() == {"name": "Foo", "price": 50.2, "tax": 10.5, "tags": []}


def test_include_exclude_and_aliases() -> None:
    assert client.get("/include").json() == {"name": "Bar", "price": 62.0}
    assert client.get("/exclude").json() == {
        "name": "Bar",
        "description": "The bartenders",
        "price": 62.0,
    }
    assert client.get("/alias").json() == {"itemName": "x"}
    assert client.get("/no-alias").json() == {"item_name": "x"}


def test_a_value_that_does_not_fit_is_a_500_never_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    quiet = TestClient(make_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        out = quiet.get("/broken")
    assert out.status_code == 500
    assert out.json() == {"detail": "Internal Server Error"}
    assert b"no price" not in out.content
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ResponseValidationError]
    assert logged and "GET /broken" in logged[0].getMessage()
    with pytest.raises(ResponseValidationError) as raised:
        client.get("/broken")
    assert raised.value.errors()[0]["loc"] == ["response", "price"]
    assert raised.value.errors()[0]["type"] == "missing"
    assert raised.value.route == "GET /broken"


def test_response_validation_errors_can_be_handled() -> None:
    app = make_app()

    @app.exception_handler(ResponseValidationError)
    def handle(request: Any, error: ResponseValidationError) -> JSONResponse:
        return JSONResponse({"problems": len(error.errors())}, status_code=502)

    out = TestClient(app).get("/broken")
    assert (out.status_code, out.json()) == (502, {"problems": 1})


def test_builtin_annotations_are_trusted_and_other_options_apply() -> None:
    assert client.get("/plain").json() == {"a": "b"}
    html = client.get("/html")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.text == "<b>hi</b>"
    created = client.get("/created")
    assert (created.status_code, created.json()) == (201, {"name": "n", "email": None})
    sent = client.get("/response")
    assert (sent.status_code, sent.json()) == (202, {"sent": "as is"})


def test_a_dataclass_annotation_is_a_model_too() -> None:
    @dataclasses.dataclass
    class Public:
        id: int

    app = VelociPy()

    @app.get("/thing")
    def thing() -> Public:
        return {"id": "7", "secret": "x"}  # type: ignore[return-value]

    assert TestClient(app).get("/thing").json() == {"id": 7}


def test_route_keywords_and_annotation_mistakes_fail_at_declaration() -> None:
    app = VelociPy()
    with pytest.raises(DeclarationError, match="callbacks"):

        @app.get("/x", callbacks=[])
        def x() -> None: ...

    with pytest.raises(DeclarationError, match="mixes a Response"):

        @app.get("/y")
        def y() -> Response | UserOut:
            return UserOut(name="n")

    with pytest.raises(DeclarationError, match="no body"):

        @app.get("/z", status_code=204, response_model=UserOut)
        def z() -> None: ...


def test_a_response_model_without_pydantic_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)
    app = VelociPy()
    with pytest.raises(DeclarationError, match="pip install pydantic"):

        @app.get("/m", response_model=dict[str, int])
        def m() -> Any:
            return {}
