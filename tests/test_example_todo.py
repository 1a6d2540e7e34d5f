"""The ported todo/users service (examples/todo_service.py), tested as a FastAPI user would.

Every expected status and JSON body below is what FastAPI answers for the same
app (recorded, not computed: `python tools/check_example_against_fastapi.py`
runs this very file against FastAPI, with only the imports changed, to show
the values are FastAPI's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.todo_service import create_app
from velocipy.testing import TestClient


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "todo.sqlite3")


@pytest.fixture
def client(db_path: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_path)) as test_client:
        yield test_client


def sign_up(client: TestClient, username: str = "ada") -> dict[str, str]:
    response = client.post(
        "/users/",
        json={"username": username, "email": f"{username}@example.com", "password": "s3cret-pw"},
    )
    assert response.status_code == 201
    return {"X-Token": f"token-{response.json()['id']}"}


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


def test_sign_up_never_returns_the_password(client: TestClient) -> None:
    response = client.post(
        "/users/",
        json={"username": "ada", "email": "ada@example.com", "password": "s3cret-pw", "age": 36},
    )
    assert response.status_code == 201
    assert response.json() == {"id": 1, "username": "ada", "email": "ada@example.com", "age": 36}
    assert response.headers["location"] == "/users/1"
    again = client.post(
        "/users/", json={"username": "ada", "email": "a@example.com", "password": "s3cret-pw"}
    )
    assert again.status_code == 409
    assert again.json() == {"detail": "Username already registered"}
    assert client.get("/users/1").json() == {
        "id": 1,
        "username": "ada",
        "email": "ada@example.com",
        "age": 36,
    }


def test_sign_up_constraints(client: TestClient) -> None:
    response = client.post(
        "/users/",
        json={"username": "A!", "email": "nope", "password": "short", "age": 7},
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "string_too_short",
                "loc": ["body", "username"],
                "msg": "String should have at least 3 characters",
                "input": "A!",
                "ctx": {"min_length": 3},
            },
            {
                "type": "string_pattern_mismatch",
                "loc": ["body", "email"],
                "msg": "String should match pattern '^[^@\\s]+@[^@\\s]+\\.[a-z]+$'",
                "input": "nope",
                "ctx": {"pattern": "^[^@\\s]+@[^@\\s]+\\.[a-z]+$"},
            },
            {
                "type": "string_too_short",
                "loc": ["body", "password"],
                "msg": "String should have at least 8 characters",
                "input": "short",
                "ctx": {"min_length": 8},
            },
            {
                "type": "greater_than_equal",
                "loc": ["body", "age"],
                "msg": "Input should be greater than or equal to 13",
                "input": 7,
                "ctx": {"ge": 13},
            },
        ]
    }
    missing = client.post("/users/", json={"username": "bob"})
    assert missing.status_code == 422
    assert missing.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "email"],
                "msg": "Field required",
                "input": {"username": "bob"},
            },
            {
                "type": "missing",
                "loc": ["body", "password"],
                "msg": "Field required",
                "input": {"username": "bob"},
            },
        ]
    }


def test_users_list_and_path_and_query_constraints(client: TestClient) -> None:
    for name in ("ada", "bob", "cyd"):
        sign_up(client, name)
    listed = client.get("/users/", params={"skip": 1, "limit": 1})
    assert listed.status_code == 200
    assert listed.json() == [{"id": 2, "username": "bob", "email": "bob@example.com", "age": None}]
    too_many = client.get("/users/", params={"limit": 1000})
    assert too_many.status_code == 422
    assert too_many.json() == {
        "detail": [
            {
                "type": "less_than_equal",
                "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 100",
                "input": "1000",
                "ctx": {"le": 100},
            }
        ]
    }
    zero = client.get("/users/0")
    assert zero.status_code == 422
    assert zero.json() == {
        "detail": [
            {
                "type": "greater_than_equal",
                "loc": ["path", "user_id"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0",
                "ctx": {"ge": 1},
            }
        ]
    }
    unknown = client.get("/users/99")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "User not found"})


def test_todos_need_a_valid_token(client: TestClient) -> None:
    missing = client.get("/todos/")
    assert missing.status_code == 422
    # Twice, as FastAPI reports it: the router's dependency and the handler's both read it.
    header_missing = {
        "type": "missing",
        "loc": ["header", "x-token"],
        "msg": "Field required",
        "input": None,
    }
    assert missing.json() == {"detail": [header_missing, header_missing]}
    wrong = client.get("/todos/", headers={"X-Token": "token-42"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid token"}
    assert wrong.headers["www-authenticate"] == "Bearer"
    headers = sign_up(client)
    assert client.get("/users/me", headers=headers).json() == {
        "id": 1,
        "username": "ada",
        "email": "ada@example.com",
        "age": None,
    }


def test_todo_lifecycle(client: TestClient, db_path: str) -> None:
    headers = sign_up(client)
    created = client.post("/todos/", json={"title": "write the port"}, headers=headers)
    assert created.status_code == 201
    assert created.json() == {
        "id": 1,
        "title": "write the port",
        "priority": 3,
        "done": False,
        "owner_id": 1,
    }
    client.post("/todos/", json={"title": "test it", "priority": 1}, headers=headers)
    invalid = client.post("/todos/", json={"title": "", "priority": 9}, headers=headers)
    assert invalid.status_code == 422
    assert invalid.json() == {
        "detail": [
            {
                "type": "string_too_short",
                "loc": ["body", "title"],
                "msg": "String should have at least 1 character",
                "input": "",
                "ctx": {"min_length": 1},
            },
            {
                "type": "less_than_equal",
                "loc": ["body", "priority"],
                "msg": "Input should be less than or equal to 5",
                "input": 9,
                "ctx": {"le": 5},
            },
        ]
    }
    patched = client.patch("/todos/1", json={"done": True}, headers=headers)
    assert patched.status_code == 200
    assert patched.json() == {
        "id": 1,
        "title": "write the port",
        "priority": 3,
        "done": True,
        "owner_id": 1,
    }
    assert client.get("/todos/", params={"done": "true"}, headers=headers).json() == [
        {"id": 1, "title": "write the port", "priority": 3, "done": True, "owner_id": 1}
    ]
    assert [
        t["title"] for t in client.get("/todos/", params={"q": "test"}, headers=headers).json()
    ] == ["test it"]
    bad_filter = client.get("/todos/", params={"done": "maybe"}, headers=headers)
    assert bad_filter.status_code == 422
    assert bad_filter.json() == {
        "detail": [
            {
                "type": "bool_parsing",
                "loc": ["query", "done"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe",
            }
        ]
    }
    deleted = client.delete("/todos/2", headers=headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = client.get("/todos/2", headers=headers)
    assert (gone.status_code, gone.json()) == (404, {"detail": "Todo not found"})
    other = sign_up(client, "bob")
    assert client.get("/todos/1", headers=other).status_code == 404  # not bob's
    with sqlite3.connect(db_path) as connection:  # the background task ran, after the response
        audit = [row[0] for row in connection.execute("SELECT message FROM audit ORDER BY id")]
    assert audit == ["ada created todo 1", "ada created todo 2"]


def test_a_failed_request_is_rolled_back(client: TestClient, db_path: str) -> None:
    headers = sign_up(client)
    response = client.patch("/todos/7", json={"title": "nothing"}, headers=headers)
    assert (response.status_code, response.json()) == (404, {"detail": "Todo not found"})
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM todos").fetchone() == (0,)
