"""Real brokers for the queue tests.

Redis at 127.0.0.1:6379 is used when it answers (the project's machines and CI
run one); otherwise a `redis-server` from PATH is started on a free port. With
neither, the tests skip with the reason printed, except under `CI=true`, where a
missing broker is a failure. RabbitMQ is the one at 127.0.0.1:5672 (guest/guest,
or `VELOCIPY_TEST_AMQP_URL`), found or skipped the same way; its tests use queue
names of their own and delete them afterwards. Each test gets its own Redis database number and
queue names, so runs in parallel (other checkouts on the same machine) do not
see each other's messages.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.servers import free_port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing broker is a failure)")
    print(f"skipping: {reason}")
    pytest.skip(reason)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def start_redis(port: int | None = None) -> Iterator[RedisServer]:
    """A private `redis-server` on a free port (or `port`), keeping nothing on disk;
    always stopped."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not on PATH")
    if port is None:
        port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield RedisServer(port, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a test may have stopped it
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if _answers(6379):
        yield RedisServer(6379)
        return
    with start_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis URL with a database number of its own (1-15) for this test."""
    return redis_server.url(random.randint(1, 15))


#: The RabbitMQ the tests use: the machine's, or another one named in the environment.
#: The default vhost is spelt `%2F`, which kombu (Celery) and pika (Dramatiq) both read.
AMQP_URL = os.environ.get("VELOCIPY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _amqp_answers(url: str) -> str:
    """Why RabbitMQ at `url` cannot be used ("" when it can)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        return f"no RabbitMQ at {url}: {error!r}"
    return ""


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    problem = _amqp_answers(AMQP_URL)
    if problem:
        _missing(problem)
    return AMQP_URL


def delete_amqp_queues(url: str, prefix: str) -> None:
    """Delete the queues (and Dramatiq's delay and dead-letter queues) a test declared."""
    from kombu import Connection

    with Connection(url, connect_timeout=2) as connection:
        channel = connection.default_channel
        for name in (prefix, f"{prefix}.DQ", f"{prefix}.XQ"):
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
                channel = connection.default_channel  # a missing queue closes the channel


@pytest.fixture
def run_id() -> str:
    """A name unique to this test run, for queues and namespaces."""
    return f"vq-{uuid.uuid4().hex[:10]}"
