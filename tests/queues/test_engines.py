"""Celery and Dramatiq for real: a web server subprocess publishes to Redis, a worker
subprocess runs the tasks, and the tests count what ran from the tasks' own log.

Every process is bounded in time and always stopped; the broker is the machine's
Redis (a database number and queue names of the test's own) or one started here,
and, for the RabbitMQ cases, the machine's RabbitMQ (queue names of the test's own).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapters.test_asgi_uvicorn import run_uvicorn_argv
from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.queues.conftest import delete_amqp_queues, start_redis
from tests.support.servers import PYTHON, ROOT, free_port, run_server

pytestmark = pytest.mark.server

ENGINES = ["celery", "dramatiq"]


@contextlib.contextmanager
def worker(engine: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """The engine's worker as a subprocess in its own process group; always stopped."""
    queue = env["VELOCIPY_TEST_QUEUE"]
    if engine == "celery":
        argv = [
            PYTHON, "-m", "celery", "-A", "tests.queues.celery_worker", "worker",
            "--pool=solo", "-Q", queue, "--loglevel=INFO",
            # A node name of the test's own: the worker's remote-control queue on RabbitMQ
            # is exclusive and named after it, and other checkouts share the broker.
            "-n", f"{queue}@%h",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
    else:
        argv = [
            PYTHON, "-m", "dramatiq", "tests.queues.dramatiq_worker",
            "--processes", "1", "--threads", "1", "--queues", queue,
        ]  # fmt: skip
    log = tempfile.NamedTemporaryFile(prefix=f"velocipy-{engine}-worker-", suffix=".log")
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
        start_new_session=True,
    )
    process.log_path = log.name  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        kill_group(process, signal.SIGTERM)
        log.close()


def kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the worker and its children; make sure they are gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    # Dramatiq's worker processes may outlive their parent for a moment.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def worker_output(process: subprocess.Popen[bytes]) -> str:
    return Path(process.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def runs(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_for(check: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {said}")
        time.sleep(0.1)


@pytest.fixture
def jobs_log(tmp_path: Path) -> Path:
    return tmp_path / "jobs.jsonl"


def environment(engine: str, broker: str, queue: str, log: Path, **extra: str) -> dict[str, str]:
    return {
        "VELOCIPY_TEST_ENGINE": engine,
        "VELOCIPY_TEST_BROKER": broker,
        "VELOCIPY_TEST_QUEUE": queue,
        "VELOCIPY_JOBS_LOG": str(log),
        **extra,
    }


@contextlib.contextmanager
def web_server(env: dict[str, str], kind: str = "own") -> Iterator[Any]:
    """The test app on our own server, uvicorn (ASGI) or gunicorn gthread (WSGI)."""
    if kind == "gunicorn":
        with gunicorn_process("tests.queues.web:wsgi", "gthread", env=env) as server:
            yield server
        return
    port = free_port()
    if kind == "uvicorn":
        argv = run_uvicorn_argv("tests.queues.web:app", port)
    else:
        argv = [PYTHON, "-m", "velocipy", "run", "tests.queues.web:app", "--port", str(port)]
    with run_server(argv, port=port, env=env) as server:
        yield server


#: What each engine's worker logs once it consumes from the queue.
READY = {"celery": " ready.", "dramatiq": "Worker process is ready for action."}


def both_said(server: Any, process: subprocess.Popen[bytes]) -> str:
    """Both sides' output for a timeout's message: a batch the web server could not
    publish is logged there, not by the worker."""
    return f"worker said:\n{worker_output(process)}\nweb server said:\n{server.logs()}"


@contextlib.contextmanager
def web_and_worker(
    env: dict[str, str], kind: str = "own"
) -> Iterator[tuple[Any, subprocess.Popen[bytes]]]:
    """The web server and a worker, started together; yields (server, worker process).

    The worker starts first and boots while the web server does (both take seconds
    of imports); the block starts once the worker consumes, so that a test's wait
    for its tasks measures them, not the worker's start-up: on a loaded machine
    that alone used to eat the 30 s a RabbitMQ test gave its three tasks.
    """
    engine = env["VELOCIPY_TEST_ENGINE"]
    with worker(engine, env) as process, web_server(env, kind) as server:
        wait_for(
            lambda: READY[engine] in worker_output(process),
            60,
            lambda: f"the {engine} worker to start; it said:\n{worker_output(process)}",
        )
        yield server, process


@pytest.mark.parametrize(
    ("engine", "kind"),
    [("celery", "own"), ("dramatiq", "own"), ("celery", "uvicorn"), ("celery", "gunicorn")],
)
def test_published_once_and_run_once_by_a_worker_with_arguments_and_context(
    engine: str, kind: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    published_once_and_run_once(environment(engine, redis_url, run_id, jobs_log), kind)


@pytest.mark.parametrize("engine", ENGINES)
def test_on_rabbitmq_published_once_and_run_once(
    engine: str, rabbitmq_url: str, run_id: str, jobs_log: Path
) -> None:
    try:
        published_once_and_run_once(environment(engine, rabbitmq_url, run_id, jobs_log), "own")
    finally:
        delete_amqp_queues(rabbitmq_url, run_id)


def published_once_and_run_once(env: dict[str, str], kind: str) -> None:
    with web_and_worker(env, kind) as (server, process):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for n in (1, 2, 3):
                assert client.post("/signup", params={"n": n}).status_code == 200
        wait_for(
            lambda: len(runs(Path(env["VELOCIPY_JOBS_LOG"]))) >= 3,
            30,
            lambda: f"3 runs; {both_said(server, process)}",
        )
        time.sleep(1.0)  # a duplicate would show up now
        done = runs(Path(env["VELOCIPY_JOBS_LOG"]))
        assert sorted(run["n"] for run in done) == [1, 2, 3]
        assert all(run["request_id"] == f"req-{run['n']}" for run in done)
        assert {run["pid"] for run in done}.isdisjoint({server.process.pid})


@pytest.mark.parametrize("engine", ENGINES)
def test_one_requests_tasks_run_in_order_on_the_worker_and_a_failure_is_isolated(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    env = environment(engine, redis_url, run_id, jobs_log)
    with web_and_worker(env) as (server, process):
        assert httpx.post(f"{server.url}/batch", timeout=10).status_code == 200
        wait_for(
            lambda: len(runs(jobs_log)) >= 3,
            30,
            lambda: f"3 runs; {both_said(server, process)}",
        )
        # The async task ran too: Celery cannot run `async def` itself, our runner can.
        assert [run["task"] for run in runs(jobs_log)] == ["record", "fail", "async_record"]
        wait_for(lambda: "failed on purpose" in worker_output(process), 10, "the traceback")
        output = worker_output(process)
        assert "Background task tests.queues.jobs.fail for POST /batch failed" in output
        assert "Traceback" in output


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_the_workers_error_hooks_and_task_timeouts_apply_on_the_worker(
    engine: str, redis_url: str, run_id: str, jobs_log: Path, tmp_path: Path
) -> None:
    hooks_log = tmp_path / "hooks.jsonl"
    env = environment(engine, redis_url, run_id, jobs_log, VELOCIPY_HOOKS_LOG=str(hooks_log))
    labels = lambda: [(r["task"], r["label"]) for r in runs(jobs_log)]  # noqa: E731
    with web_and_worker(env) as (server, process):
        assert httpx.post(f"{server.url}/timeout", timeout=10).status_code == 200
        wait_for(
            lambda: ("record", "after") in labels(),
            30,
            lambda: f"the third task; {both_said(server, process)}",
        )
        # The second task was cut at its timeout=0.5: the third ran before it ended.
        assert ("slow-end", "slow") not in labels()
        wait_for(lambda: len(runs(hooks_log)) == 2, 10, lambda: f"hooks: {runs(hooks_log)}")
        output = worker_output(process)
    # The hooks given to `install` saw each failure, by task, with why.
    assert [(hook["task"], hook["error"]) for hook in runs(hooks_log)] == [
        ("tests.queues.jobs.fail", "RuntimeError"),
        ("tests.queues.jobs.slow", "TaskTimedOut"),
    ]
    assert "timed out after 0.5s" in output


@pytest.mark.parametrize("engine", ENGINES)
def test_each_task_is_an_engine_message_under_its_handle_id(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    each_task_is_a_message(environment(engine, redis_url, run_id, jobs_log))


@pytest.mark.parametrize("engine", ENGINES)
def test_on_rabbitmq_each_task_is_an_engine_message_under_its_handle_id(
    engine: str, rabbitmq_url: str, run_id: str, jobs_log: Path
) -> None:
    try:
        each_task_is_a_message(environment(engine, rabbitmq_url, run_id, jobs_log))
    finally:
        delete_amqp_queues(rabbitmq_url, run_id)


def each_task_is_a_message(env: dict[str, str]) -> None:
    """Three tasks of equal options: one publish by the web process, then each task runs
    as the engine's message of its own id, in order, the failing middle one included."""
    engine, jobs_log = env["VELOCIPY_TEST_ENGINE"], Path(env["VELOCIPY_JOBS_LOG"])
    with web_and_worker(env) as (server, process):
        response = httpx.post(f"{server.url}/ids", timeout=10)
        assert response.status_code == 200
        handles: list[str] = response.json()
        wait_for(
            lambda: len(runs(jobs_log)) >= 3,
            30,
            lambda: f"3 runs; {both_said(server, process)}",
        )
        done = runs(jobs_log)
        assert [run["label"] for run in done] == ["first", "second", "third"]
        assert [run["id"] for run in done] == handles
        assert [run["engine_id"] for run in done] == handles
        wait_for(lambda: "failed on purpose" in worker_output(process), 10, "the traceback")
        if engine == "celery" and not env["VELOCIPY_TEST_BROKER"].startswith("amqp"):
            # Celery's own lookup knows every id: the worker stored each message's result.
            from celery import Celery

            from velocipy.contrib.celery import CeleryBackend

            broker = env["VELOCIPY_TEST_BROKER"]
            backend = CeleryBackend(Celery("lookup", broker=broker, backend=broker), queue="x")
            try:
                wait_for(
                    lambda: [backend.get_state(h) for h in handles] == ["SUCCESS"] * 3,
                    10,
                    lambda: f"the states {[backend.get_state(h) for h in handles]}",
                )
                results = [backend.celery_app.AsyncResult(h).result for h in handles]
            finally:
                backend.close()
            assert results == ["succeeded", "failed", "succeeded"]
        if engine == "dramatiq" and not env["VELOCIPY_TEST_BROKER"].startswith("amqp"):
            # With Dramatiq's Results middleware, each message's result is its task's end.
            from dramatiq.brokers.redis import RedisBroker
            from dramatiq.results import Results
            from dramatiq.results.backends import RedisBackend

            from velocipy.contrib.dramatiq import DramatiqBackend

            url = env["VELOCIPY_TEST_BROKER"]
            lookup = RedisBroker(url=url, namespace=env["VELOCIPY_TEST_QUEUE"])
            lookup.add_middleware(Results(backend=RedisBackend(url=url)))
            states = DramatiqBackend(lookup, queue=env["VELOCIPY_TEST_QUEUE"])
            try:
                wait_for(
                    lambda: (
                        [states.get_state(h) for h in handles]
                        == ["succeeded", "failed", "succeeded"]
                    ),
                    10,
                    lambda: f"the states {[states.get_state(h) for h in handles]}",
                )
                assert states.get_state("no-such-id") is None
            finally:
                states.close()
        time.sleep(0.5)  # a duplicate would show up now
        assert len(runs(jobs_log)) == 3


@pytest.mark.parametrize("engine", ENGINES)
def test_a_delayed_run_waits_once_not_once_per_task(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    env = environment(engine, redis_url, run_id, jobs_log)
    with web_and_worker(env) as (server, process):
        sent = time.time()
        assert httpx.post(f"{server.url}/delayed", params={"seconds": 2}, timeout=10).is_success
        wait_for(
            lambda: len(runs(jobs_log)) >= 2,
            30,
            lambda: f"2 runs; {both_said(server, process)}",
        )
    first, second = runs(jobs_log)
    assert (first["label"], second["label"]) == ("first", "second")
    assert first["at"] - sent >= 1.9  # the delay, waited before the first task
    assert second["at"] - first["at"] < 1.5  # and not again before the second


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_worker_killed_mid_task_runs_it_again(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    killed_worker_runs_it_again(environment(engine, redis_url, run_id, jobs_log))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_on_rabbitmq_a_worker_killed_mid_task_runs_it_again(
    engine: str, rabbitmq_url: str, run_id: str, jobs_log: Path
) -> None:
    try:
        killed_worker_runs_it_again(environment(engine, rabbitmq_url, run_id, jobs_log))
    finally:
        delete_amqp_queues(rabbitmq_url, run_id)


def killed_worker_runs_it_again(env: dict[str, str]) -> None:
    engine, jobs_log = env["VELOCIPY_TEST_ENGINE"], Path(env["VELOCIPY_JOBS_LOG"])
    starts = lambda: [r for r in runs(jobs_log) if r["task"] == "slow-start"]  # noqa: E731
    ends = lambda: [r for r in runs(jobs_log) if r["task"] == "slow-end"]  # noqa: E731
    with web_server(env) as server:
        with worker(engine, env) as first:
            assert (
                httpx.post(f"{server.url}/slow", params={"seconds": 3}, timeout=10).status_code
                == 200
            )
            wait_for(
                lambda: len(starts()) == 1,
                30,
                lambda: f"the start; worker said:\n{worker_output(first)}",
            )
            kill_group(first, signal.SIGKILL)
        assert ends() == []
        with worker(engine, env) as second:
            wait_for(
                lambda: len(ends()) == 1,
                60,
                lambda: f"the rerun; worker said:\n{worker_output(second)}",
            )
    assert len(starts()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_worker_killed_in_a_requests_second_task_reruns_it_and_runs_the_third(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    env = environment(engine, redis_url, run_id, jobs_log)
    labels = lambda: [(r["task"], r["label"]) for r in runs(jobs_log)]  # noqa: E731
    with web_server(env) as server:
        with worker(engine, env) as first:
            response = httpx.post(f"{server.url}/chain", params={"seconds": 3}, timeout=10)
            assert response.status_code == 200
            wait_for(
                lambda: ("slow-start", "slow") in labels(),
                30,
                lambda: f"the second task; worker said:\n{worker_output(first)}",
            )
            kill_group(first, signal.SIGKILL)
        assert labels() == [("record", "before"), ("slow-start", "slow")]
        with worker(engine, env) as second:
            wait_for(
                lambda: ("record", "after") in labels(),
                60,
                lambda: f"the third task; worker said:\n{worker_output(second)}",
            )
            time.sleep(1.0)  # a duplicate would show up now
    # The first task's message was done (and acknowledged) before the kill: it stays
    # done; the second's comes back and runs again; then the third, once.
    assert labels() == [
        ("record", "before"),
        ("slow-start", "slow"),
        ("slow-start", "slow"),
        ("slow-end", "slow"),
        ("record", "after"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_killing_the_web_server_under_load_loses_no_task_of_a_200(
    engine: str, redis_url: str, run_id: str, jobs_log: Path
) -> None:
    env = environment(engine, redis_url, run_id, jobs_log, VELOCIPY_TEST_PUBLISH="before_response")
    answered: list[int] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        n = offset
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{url}/signup", params={"n": n})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    answered.append(n)
                n += 1000

    with worker(engine, env) as process:
        with web_server(env) as server:
            url = server.url
            threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            wait_for(lambda: len(answered) >= 40, 30, "some load")
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            stop.set()
            for thread in threads:
                thread.join(10)
        assert answered, "no request was answered before the kill"
        expected = set(answered)
        wait_for(
            lambda: expected <= {r["n"] for r in runs(jobs_log)},
            60,
            lambda: f"the tasks of {len(expected)} 200s; worker said:\n{worker_output(process)}",
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_stopped_broker_holds_no_request_past_the_deadline(
    engine: str, run_id: str, jobs_log: Path
) -> None:
    with start_redis() as redis:
        assert redis.process is not None
        env = environment(
            engine,
            redis.url(0),
            run_id,
            jobs_log,
            VELOCIPY_TEST_PUBLISH="before_response",
            VELOCIPY_TEST_DEADLINE="0.5",
        )
        with web_server(env) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                # Connected and warm: the first publish also sets up the engine's client.
                wait_for(
                    lambda: client.post("/signup", params={"n": 1}).status_code == 200,
                    20,
                    "a first publish within the deadline",
                )
                redis.process.send_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    response = client.post("/signup", params={"n": 2})
                    elapsed = time.monotonic() - started
                    assert client.get("/nothing").status_code == 404  # the loop is free
                finally:
                    redis.process.send_signal(signal.SIGCONT)
            assert response.status_code == 503 and elapsed < 2.0, (response, elapsed)
            wait_for(lambda: "HOOK tests.queues.jobs.record" in server.logs(), 5, "the hook")
            logs = server.logs()
            assert "no answer within 0.5s" in logs
            assert "HOOK tests.queues.jobs.record TaskTimedOut" in logs


@pytest.mark.parametrize(
    ("engine", "kind"), [("celery", "own"), ("dramatiq", "own"), ("celery", "gunicorn")]
)
def test_after_the_response_a_stopped_broker_is_reported_at_the_deadline(
    engine: str, kind: str, run_id: str, jobs_log: Path
) -> None:
    # The default mode: the request does not wait for the broker at all; the batch that
    # got no answer is logged and hooked on the server when its deadline passes.
    with start_redis() as redis:
        assert redis.process is not None
        env = environment(engine, redis.url(0), run_id, jobs_log, VELOCIPY_TEST_DEADLINE="0.5")
        with web_server(env, kind) as server:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                wait_for(
                    lambda: client.post("/signup", params={"n": 1}).status_code == 200,
                    20,
                    "a first publish",
                )
                redis.process.send_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    response = client.post("/signup", params={"n": 2})
                    elapsed = time.monotonic() - started
                    wait_for(lambda: "HOOK tests.queues.jobs.record" in server.logs(), 5, "hook")
                finally:
                    redis.process.send_signal(signal.SIGCONT)
            assert response.status_code == 200 and elapsed < 0.5, (response, elapsed)
            logs = server.logs()
            assert "no answer within 0.5s" in logs
            assert "HOOK tests.queues.jobs.record TaskTimedOut" in logs
