"""The publishing thread's own Redis connection, against a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis
import redis.exceptions
from celery import Celery

from tests.queues.conftest import start_redis
from velocipy.contrib._redis_wire import RedisWire
from velocipy.contrib.celery import CeleryBackend
from velocipy.tasks import Envelope


def test_pushes_in_order_into_the_chosen_database_with_a_password() -> None:
    with start_redis() as server:
        admin = redis.Redis(port=server.port)
        admin.config_set("requirepass", "s3cret")
        client = redis.Redis(port=server.port, password="s3cret", db=3)
        pool = redis.ConnectionPool.from_url(f"redis://:s3cret@127.0.0.1:{server.port}/3")
        wire = RedisWire.for_pool(pool)
        assert wire is not None
        try:
            wire.lpush([("a", ["1", "2"]), ("b", ["x"])])
            wire.lpush([("a", ["3"])])
        finally:
            wire.close()
        assert client.lrange("a", 0, -1) == [b"3", b"2", b"1"]  # LPUSH: newest first
        assert client.lrange("b", 0, -1) == [b"x"]

        refused = RedisWire("127.0.0.1", server.port, password="wrong")
        with pytest.raises(redis.exceptions.ConnectionError, match="refused"):
            refused.lpush([("a", ["4"])])
        assert client.llen("a") == 3


def test_an_error_answer_raises_and_the_connection_stays_usable(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    wire = RedisWire.for_pool(redis.ConnectionPool.from_url(redis_url))
    assert wire is not None
    client.set("vq-wire-string", "not a list")
    try:
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            wire.lpush([("vq-wire-list", ["1"]), ("vq-wire-string", ["2"])])
        wire.lpush([("vq-wire-list", ["3"])])
        assert client.lrange("vq-wire-list", 0, -1) == [b"3", b"1"]
    finally:
        wire.close()
        client.delete("vq-wire-list", "vq-wire-string")


def test_only_plain_tcp_gets_the_wire() -> None:
    assert RedisWire.for_pool(redis.ConnectionPool.from_url("unix:///tmp/redis.sock")) is None
    assert RedisWire.for_pool(redis.ConnectionPool.from_url("rediss://127.0.0.1:1/0")) is None


def test_celery_reconnects_when_redis_dropped_its_connection() -> None:
    with start_redis() as server:
        url = f"redis://127.0.0.1:{server.port}/0"
        backend = CeleryBackend(Celery("velocipy-tests-wire", broker=url), queue="web")
        client = redis.Redis.from_url(url)

        def publish(ident: str) -> None:
            backend.publish(
                [Envelope(id=ident, task="tests.queues.jobs:record", name="record", queue="web")]
            )

        try:
            publish("id-1")
            assert isinstance(backend._wire, RedisWire)  # the fast path's own connection
            client.client_kill_filter(_type="normal", skipme=True)  # drops the backend's
            publish("id-2")  # retried on a new connection, within the deadline
        finally:
            backend.close()
        ids = [json.loads(message)["headers"]["id"] for message in client.lrange("web", 0, -1)]
        assert ids == ["id-2", "id-1"]
