"""A todo/users service written the way a FastAPI user writes one, ported by changing imports.

The code below is FastAPI code: the only VelociPy-specific lines are the two
imports (`from fastapi import ...` became `from velocipy import ...`). It has
pydantic models with constraints, `response_model`s that keep passwords off the
wire, routers with `tags` and router-wide `dependencies` (the token check), a
`yield` dependency holding a sqlite3 connection (committed after the handler,
rolled back on error), a `Response` parameter, a background task, and
`status` constants. `tests/test_example_todo.py` checks it against the
responses FastAPI gives for the same requests.

Run it: `velocipy run examples.todo_service:app` (or `uvicorn examples.todo_service:app`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, Field

from velocipy import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from velocipy import VelociPy as FastAPI

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, email TEXT NOT NULL,
    password_hash TEXT NOT NULL, age INTEGER
);
CREATE TABLE IF NOT EXISTS todos (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, priority INTEGER NOT NULL,
    done INTEGER NOT NULL, owner_id INTEGER NOT NULL REFERENCES users(id)
);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, message TEXT NOT NULL);
"""


# -- models -------------------------------------------------------------------------------


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=20, pattern=r"^[a-z0-9_]+$")
    email: str = Field(max_length=100, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    password: str = Field(min_length=8)
    age: int | None = Field(default=None, ge=13, le=130)


class UserPublic(BaseModel):
    id: int
    username: str
    email: str
    age: int | None = None


class UserInDB(UserPublic):
    password_hash: str


class TodoCreate(BaseModel):
    title: str = Field(min_length=1, max_length=100)
    priority: int = Field(default=3, ge=1, le=5)
    done: bool = False


class TodoUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=100)
    priority: int | None = Field(default=None, ge=1, le=5)
    done: bool | None = None


class Todo(BaseModel):
    id: int
    title: str
    priority: int
    done: bool
    owner_id: int


# -- dependencies -------------------------------------------------------------------------


def get_db(request: Request) -> Iterator[sqlite3.Connection]:
    """One connection per request: committed after the handler, rolled back if it raised."""
    connection = sqlite3.connect(request.app.state.db_path, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
        connection.commit()
    except Exception:
        connection.rollback()
        raise
    finally:
        connection.close()


Database = Annotated[sqlite3.Connection, Depends(get_db)]


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def get_current_user(x_token: Annotated[str, Header()], db: Database) -> UserInDB:
    """The user a `X-Token: token-<id>` header names (a stand-in for real auth)."""
    user_id = x_token.removeprefix("token-")
    row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if not x_token.startswith("token-") or row is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Invalid token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return UserInDB(**dict(row))


CurrentUser = Annotated[UserInDB, Depends(get_current_user)]


def record_audit(db_path: str, message: str) -> None:
    """The background task: an audit line, written after the response was sent."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection, connection:
        connection.execute("INSERT INTO audit (message) VALUES (?)", (message,))


# -- users --------------------------------------------------------------------------------

users = APIRouter(prefix="/users", tags=["users"])


@users.post("/", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(user: UserCreate, db: Database, response: Response) -> Any:
    taken = db.execute("SELECT 1 FROM users WHERE username = ?", (user.username,)).fetchone()
    if taken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="Username already registered")
    cursor = db.execute(
        "INSERT INTO users (username, email, password_hash, age) VALUES (?, ?, ?, ?)",
        (user.username, user.email, hash_password(user.password), user.age),
    )
    response.headers["Location"] = f"/users/{cursor.lastrowid}"
    return UserInDB(
        id=cursor.lastrowid or 0,
        username=user.username,
        email=user.email,
        age=user.age,
        password_hash=hash_password(user.password),
    )


@users.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> Any:
    return user


@users.get("/{user_id}", response_model=UserPublic)
def read_user(user_id: Annotated[int, Path(ge=1)], db: Database) -> Any:
    row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="User not found")
    return dict(row)  # password_hash included: the response model drops it


@users.get("/", response_model=list[UserPublic])
def list_users(
    db: Database,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Any:
    rows = db.execute("SELECT * FROM users ORDER BY id LIMIT ? OFFSET ?", (limit, skip))
    return [dict(row) for row in rows]


# -- todos: every route needs a valid token (router-wide dependency) ----------------------

todos = APIRouter(
    prefix="/todos",
    tags=["todos"],
    dependencies=[Depends(get_current_user)],
    responses={401: {"description": "Missing or invalid token"}},
)


def todo_from_row(row: sqlite3.Row) -> Todo:
    return Todo(**{**dict(row), "done": bool(row["done"])})


def owned_todo(todo_id: int, user: UserInDB, db: sqlite3.Connection) -> Todo:
    row = db.execute(
        "SELECT * FROM todos WHERE id = ? AND owner_id = ?", (todo_id, user.id)
    ).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="Todo not found")
    return todo_from_row(row)


@todos.post("/", status_code=201)
def create_todo(
    todo: TodoCreate,
    user: CurrentUser,
    db: Database,
    request: Request,
    background_tasks: BackgroundTasks,
) -> Todo:
    cursor = db.execute(
        "INSERT INTO todos (title, priority, done, owner_id) VALUES (?, ?, ?, ?)",
        (todo.title, todo.priority, int(todo.done), user.id),
    )
    db.commit()  # before the task, which writes with its own connection
    created = Todo(id=cursor.lastrowid or 0, owner_id=user.id, **todo.model_dump())
    background_tasks.add_task(
        record_audit, request.app.state.db_path, f"{user.username} created todo {created.id}"
    )
    return created


@todos.get("/")
def list_todos(
    user: CurrentUser,
    db: Database,
    done: bool | None = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
) -> list[Todo]:
    sql, args = "SELECT * FROM todos WHERE owner_id = ?", [user.id]
    if done is not None:
        sql, args = sql + " AND done = ?", [*args, int(done)]
    if q:
        sql, args = sql + " AND title LIKE ?", [*args, f"%{q}%"]
    return [todo_from_row(row) for row in db.execute(sql + " ORDER BY id", args)]


@todos.get("/{todo_id}", response_model=Todo)
def read_todo(todo_id: int, user: CurrentUser, db: Database) -> Any:
    return owned_todo(todo_id, user, db)


@todos.patch("/{todo_id}", response_model=Todo)
def update_todo(todo_id: int, changes: TodoUpdate, user: CurrentUser, db: Database) -> Any:
    current = owned_todo(todo_id, user, db)
    updated = current.model_copy(update=changes.model_dump(exclude_unset=True))
    db.execute(
        "UPDATE todos SET title = ?, priority = ?, done = ? WHERE id = ?",
        (updated.title, updated.priority, int(updated.done), todo_id),
    )
    return updated


@todos.delete("/{todo_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_todo(todo_id: int, user: CurrentUser, db: Database) -> None:
    owned_todo(todo_id, user, db)
    db.execute("DELETE FROM todos WHERE id = ?", (todo_id,))


# -- the app ------------------------------------------------------------------------------


def create_app(db_path: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.closing(sqlite3.connect(db_path)) as connection:
            connection.executescript(SCHEMA)
        yield

    app = FastAPI(lifespan=lifespan)
    app.state.db_path = db_path
    app.include_router(users)
    app.include_router(todos)

    @app.get("/health")
    def health(response: Response) -> dict[str, str]:
        response.headers["Cache-Control"] = "no-store"
        return {"status": "ok"}

    return app


app = create_app(os.environ.get("TODO_DB", "todo.sqlite3"))
