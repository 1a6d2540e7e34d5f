"""A worker that cannot publish the rest of a request loses none of it, for real.

The worker's own publishing (the forward of a request's later tasks) goes
through a TCP proxy to the same Redis the web process publishes to; the test
shuts the proxy while the request's second task runs, so the forward is refused
by the network, not by a mock. Every task must still run, in order.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.queues.proxy import TcpProxy
from tests.queues.test_engines import environment, runs, wait_for, web_server, worker, worker_output

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture
def jobs_log(tmp_path: Path) -> Path:
    return tmp_path / "jobs.jsonl"


def _through(proxy: TcpProxy, url: str) -> str:
    """`url` with its port replaced by the proxy's."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


def test_celery_requeues_a_message_whose_forward_failed_and_every_task_runs(
    redis_url: str, run_id: str, jobs_log: Path
) -> None:
    proxy = TcpProxy(urlsplit(redis_url).port or 6379)
    env = environment(
        "celery",
        redis_url,
        run_id,
        jobs_log,
        VELOCIPY_TEST_WRITE_BROKER=_through(proxy, redis_url),
        VELOCIPY_TEST_FORWARD_ATTEMPTS="3",
        VELOCIPY_TEST_FORWARD_BACKOFF="0.2",
    )
    labels = lambda: [(r["task"], r["label"]) for r in runs(jobs_log)]  # noqa: E731
    try:
        with web_server(env) as server, worker("celery", env) as process:
            said = lambda: f"worker said:\n{worker_output(process)}"  # noqa: E731
            response = httpx.post(f"{server.url}/chain", params={"seconds": 2}, timeout=10)
            assert response.status_code == 200
            wait_for(lambda: ("slow-start", "slow") in labels(), 30, said)
            proxy.down()  # the second task's forward of the third is refused
            # Its three attempts fail, the message is requeued and runs again.
            wait_for(lambda: labels().count(("slow-start", "slow")) == 2, 60, said)
            assert ("record", "after") not in labels()
            proxy.up()  # the rerun's forward goes through
            wait_for(lambda: ("record", "after") in labels(), 60, said)
            wait_for(lambda: labels().count(("slow-end", "slow")) == 2, 10, said)
            output = worker_output(process)
    finally:
        proxy.close()
    assert labels() == [
        ("record", "before"),
        ("slow-start", "slow"),
        ("slow-end", "slow"),
        ("slow-start", "slow"),
        ("slow-end", "slow"),
        ("record", "after"),
    ]
    assert "publishing the rest of a task batch failed (attempt 1 of 3" in output
    assert "could not publish the rest of a task batch (3 attempt(s)" in output
    assert "requeueing the Celery message" in output
    assert "tests.queues.jobs:record [" in output  # the third task, named with its id


def test_dramatiq_retries_a_refused_forward_until_the_broker_answers(
    redis_url: str, run_id: str, jobs_log: Path
) -> None:
    proxy = TcpProxy(urlsplit(redis_url).port or 6379)
    env = environment(
        "dramatiq",
        redis_url,
        run_id,
        jobs_log,
        VELOCIPY_TEST_WRITE_BROKER=_through(proxy, redis_url),
        VELOCIPY_TEST_FORWARD_ATTEMPTS="8",
        VELOCIPY_TEST_FORWARD_BACKOFF="0.5",
    )
    labels = lambda: [(r["task"], r["label"]) for r in runs(jobs_log)]  # noqa: E731
    try:
        with web_server(env) as server, worker("dramatiq", env) as process:
            said = lambda: f"worker said:\n{worker_output(process)}"  # noqa: E731
            response = httpx.post(f"{server.url}/chain", params={"seconds": 2}, timeout=10)
            assert response.status_code == 200
            wait_for(lambda: ("slow-start", "slow") in labels(), 30, said)
            proxy.down()
            wait_for(
                lambda: (
                    "publishing the rest of a task batch failed (attempt 2 of 8"
                    in worker_output(process)
                ),
                30,
                said,
            )
            assert ("record", "after") not in labels()
            proxy.up()
            wait_for(lambda: ("record", "after") in labels(), 60, said)
            time.sleep(1.0)  # a duplicate would show up now
            output = worker_output(process)
    finally:
        proxy.close()
    assert labels() == [
        ("record", "before"),
        ("slow-start", "slow"),
        ("slow-end", "slow"),
        ("record", "after"),
    ]
    assert "published the rest of a task batch at attempt" in output
