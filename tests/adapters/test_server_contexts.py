"""The built-in server's request contexts: a ContextVar set by a request dies with it.

A connection serves its requests in its own context until one of them leaves a
value set, then goes on in a fresh copy of the context as it was before any
request (`ConnectionBase.run`, `CleanContext`). These cases walk one keep-alive
connection through that switch, on both parsers, and check what the handlers,
their streams, dependencies, background tasks and the access log see.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.adapters.test_server_harness import (
    PARSERS,
    Reader,
    get,
    post,
    serving,
    using_parser,
)
from velocipy import BackgroundTasks, Depends, StreamingResponse, VelociPy
from velocipy.adapters._contexts import CleanContext

pytestmark = pytest.mark.server

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="unset")
#: What the background tasks saw, by key.
SEEN: dict[str, list[str]] = {}

app = VelociPy()


def record(key: str) -> None:
    SEEN.setdefault(key, []).append(tag.get())


async def record_async(key: str) -> None:
    SEEN.setdefault(key, []).append(tag.get())


@app.get("/tag")
async def read_tag(key: str, background_tasks: BackgroundTasks) -> str:
    """What a request sees without setting anything; its tasks must see the same."""
    background_tasks.add_task(record, key)
    background_tasks.add_task(record_async, key)
    return tag.get()


@app.get("/tag-sync")
def read_tag_sync() -> str:
    return tag.get()


@app.post("/tag/{value}")
async def set_tag(value: str, key: str, background_tasks: BackgroundTasks) -> str:
    tag.set(value)
    background_tasks.add_task(record, key)
    background_tasks.add_task(record_async, key)
    return tag.get()


@app.post("/tag-sync/{value}")
def set_tag_sync(value: str) -> str:
    tag.set(value)
    return tag.get()


async def tag_from_dependency(value: str) -> str:
    tag.set(f"dependency-{value}")
    return value


@app.post("/tag-in-dependency/{value}")
async def set_in_dependency(value: str = Depends(tag_from_dependency)) -> str:
    return tag.get()


@app.post("/tag-stream/{value}")
async def set_and_stream(value: str) -> StreamingResponse:
    tag.set(value)

    async def chunks() -> AsyncIterator[bytes]:
        yield tag.get().encode()
        yield b";"

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Iterator[str]:
    with using_parser(request.param) as http:
        yield http


class Client:
    """One keep-alive connection; each call sends a request and reads its response."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def get(self, path: str) -> str:
        self.reader.sock.sendall(get(path))
        reply = self.reader.response()
        assert reply.status == 200, reply
        return reply.body.decode()

    def post(self, path: str) -> str:
        self.reader.sock.sendall(post(path, b""))
        reply = self.reader.response()
        assert reply.status == 200, reply
        return reply.body.decode()


def wait_seen(key: str, count: int) -> list[str]:
    import time

    deadline = time.monotonic() + 5
    while len(SEEN.get(key, [])) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return sorted(SEEN.get(key, []))


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_a_connection_stays_correct_after_a_request_left_a_value(loop: str) -> None:
    with serving(app, loop=loop) as running, running.connect() as sock:
        client = Client(Reader(sock))
        key = uuid.uuid4().hex
        assert client.get(f"/tag?key={key}") == '"unset"'  # served in the connection's context
        assert client.post(f"/tag/first?key={key}") == '"first"'  # leaves a value behind
        for _ in range(2):  # from here on each request runs in a copy of the clean context
            assert client.get(f"/tag?key={key}") == '"unset"'
            assert client.get("/tag-sync") == '"unset"'
        assert client.post(f"/tag/second?key={key}") == '"second"'
        assert client.get(f"/tag?key={key}") == '"unset"'
        assert client.post("/tag-sync/third") == '"third"'
        assert client.get("/tag-sync") == '"unset"'
        assert client.post("/tag-in-dependency/fourth") == '"dependency-fourth"'
        assert client.get(f"/tag?key={key}") == '"unset"'
        assert client.post("/tag-stream/fifth") == "fifth;"  # the stream sees its request's
        assert client.get(f"/tag?key={key}") == '"unset"'


@pytest.mark.usefixtures("parser")
@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_background_tasks_see_their_own_request_s_context(loop: str) -> None:
    with serving(app, loop=loop) as running, running.connect() as sock:
        client = Client(Reader(sock))
        keys = [uuid.uuid4().hex for _ in range(5)]
        client.get(f"/tag?key={keys[0]}")  # clean connection, nothing set
        client.post(f"/tag/a?key={keys[1]}")  # clean connection, sets: its tasks see it
        client.get(f"/tag?key={keys[2]}")  # the connection switched to copies
        client.post(f"/tag/b?key={keys[3]}")
        client.get(f"/tag?key={keys[4]}")
        expected = ["unset", "a", "unset", "b", "unset"]
        for key, value in zip(keys, expected, strict=True):
            assert wait_seen(key, 2) == [value, value], value


@pytest.mark.usefixtures("parser")
def test_the_server_s_own_log_lines_see_the_request_s_context_or_none() -> None:
    # A logging filter reading a ContextVar (a request id) must find each request's own
    # value in its access-log line, never the value of an earlier request.
    seen: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(tag.get())

    recorder = Recorder()
    access = logging.getLogger("velocipy.access")
    access.addHandler(recorder)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        with serving(app, access_log=True) as running, running.connect() as sock:
            client = Client(Reader(sock))
            key = uuid.uuid4().hex
            client.get(f"/tag?key={key}")
            client.post(f"/tag/a?key={key}")
            client.get(f"/tag?key={key}")
            client.post(f"/tag/b?key={key}")
            client.get(f"/tag?key={key}")
    finally:
        access.removeHandler(recorder)
        access.setLevel(level)
    assert seen == ["unset", "a", "unset", "b", "unset"]


# -- CleanContext, the check itself ---------------------------------------------------------

items: contextvars.ContextVar[list[int]] = contextvars.ContextVar("items")


def test_clean_context_sees_a_value_set_reset_or_replaced_by_an_equal_object() -> None:
    def check() -> None:
        items.set([])
        clean = CleanContext()
        assert not clean.changed()
        token = tag.set("x")
        assert clean.changed()
        tag.reset(token)
        assert not clean.changed()  # reset restores the very same map contents
        token = tag.set("unset")  # a new variable in the map, equal to the default or not
        assert clean.changed()
        tag.reset(token)
        items.set([])  # an equal list, another object: a request's own list
        assert clean.changed()

    contextvars.copy_context().run(check)
