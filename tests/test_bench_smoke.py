"""The benchmark harness still works: a seconds-long `python -m bench.run --smoke`, and parsers.

Never a throughput assertion: only that every part ran and reported.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.apps import _common
from bench.configs import SCENARIOS, Scenario
from bench.loadgen import parse_wrk, run_pyload
from bench.pyload import ResponseReader
from bench.servers import Server, free_port

ROOT = Path(__file__).resolve().parents[1]

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8000/hello
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  300.00us   9.50ms   90.00%
    Req/Sec    24.00k     1.00k   26.00k    70.00%
  Latency Distribution
     50%    2.05ms
     75%    2.20ms
     90%  750.00us
     99%    1.20s
  120000 requests in 5.00s, 17.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  23999.50
Transfer/sec:      3.40MB
"""


APPS = [
    ("bare_asgi", "app", "asgi"),
    ("bare_wsgi", "wsgi", "wsgi"),
    ("velocipy_app", "app", "asgi"),
    ("velocipy_app", "wsgi", "wsgi"),
    ("starlette_app", "app", "asgi"),
    ("fastapi_app", "app", "asgi"),
    ("falcon_apps", "asgi", "asgi"),
    ("falcon_apps", "wsgi", "wsgi"),
]


def _app(module_name: str, attribute: str) -> Any:
    peer = {"starlette_app": "starlette", "fastapi_app": "fastapi", "falcon_apps": "falcon"}
    if module_name in peer:
        pytest.importorskip(peer[module_name])
    return getattr(importlib.import_module(f"bench.apps.{module_name}"), attribute)


def _send(client: httpx.Client | httpx.AsyncClient, scenario: Scenario) -> Any:
    return client.request(
        scenario.method,
        scenario.path,
        content=scenario.body or None,
        headers={"content-type": "application/json"} if scenario.body else {},
    )


async def _signup_task_ran(before: int) -> bool:
    # Some apps hand the task to a thread or the loop after the response: wait a little.
    for _ in range(200):
        if _common.SIGNUPS[before:] == ["ada@example.com"]:
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize(("module_name", "attribute", "kind"), APPS)
def test_every_app_does_the_same_work(module_name: str, attribute: str, kind: str) -> None:
    app = _app(module_name, attribute)

    async def check() -> None:
        if kind == "wsgi":
            client: Any = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://b")
        else:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
        for scenario in SCENARIOS:
            before = len(_common.SIGNUPS)
            response = _send(client, scenario)
            if kind == "asgi":
                response = await response
            assert response.status_code == 200, response.text
            assert response.json() == scenario.expected
            if scenario.name == "signup":  # its one background task ran
                assert await _signup_task_ran(before)
        if kind == "asgi":
            await client.aclose()
        else:
            client.close()

    asyncio.run(check())


def test_wrk_output_is_parsed_with_units_and_errors() -> None:
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["rps"] == 23999.5
    assert parsed["requests"] == 120000
    assert parsed["errors"] == 3
    assert parsed["non_2xx"] == 7
    assert parsed["p50_ms"] == pytest.approx(2.05)
    assert parsed["p90_ms"] == pytest.approx(0.75)
    assert parsed["p99_ms"] == pytest.approx(1200.0)


def test_response_reader_splits_pipelined_and_chunked_responses() -> None:
    reader = ResponseReader()
    fixed = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    stream = fixed + chunked + fixed
    assert reader.feed(stream[:10]) == []
    assert reader.feed(stream[10:60]) == [200]
    assert reader.feed(stream[60:]) == [404, 200]
    assert reader.buffer == b""


def test_a_server_that_cannot_start_is_reported_not_raised() -> None:
    port = free_port()
    server = Server("broken", [sys.executable, "-c", "raise SystemExit(3)"], port)
    server.start()
    try:
        assert server.wait_ready(10) is False
        assert "exited with code 3" in server.problem
    finally:
        server.stop()


@pytest.mark.server
def test_the_generator_records_nothing_of_its_warm_up() -> None:
    """`--warmup`: the load runs longer, but only the last `duration` s is recorded."""
    port = free_port()
    ceiling = Server("ceiling", [sys.executable, "-m", "bench.ceiling", "--port", str(port)], port)
    ceiling.start()
    try:
        assert ceiling.wait_ready(30), ceiling.problem
        started = time.monotonic()
        found = run_pyload(port, SCENARIOS[1], 1.0, 4, rate=200, warmup=1.0, samples=True)
        took = time.monotonic() - started
    finally:
        ceiling.stop()
    # 2 s of load at 200 req/s, the last 1 s recorded: about 200, never the ~400 sent.
    assert took >= 2.0
    assert 150 <= found["requests"] <= 210, found["requests"]
    assert len(found["samples_ms"]) == found["requests"]
    assert found["elapsed"] < 1.5


# Slow (~25 s: every configuration's server started and measured briefly): a check of
# the benchmark harness, not of the product, so it runs in CI's slow step.
@pytest.mark.slow
@pytest.mark.server
def test_smoke_run_measures_every_part_and_writes_the_report(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["loadgen"] == "python"
    assert results["ceiling"]["pure-Python generator"] > 0
    throughput = results["throughput"]
    for name in ("bare-asgi/uvicorn-h11", "velocipy/uvicorn-h11"):
        assert throughput[name]["status"] == "ok", throughput[name]["reason"]
        for scenario in ("hello", "signup", "items"):
            cell = throughput[name]["scenarios"][scenario]
            assert cell["status"] == "ok", cell["reason"]
            assert cell["rps"]["median"] > 0
    ratio = throughput["velocipy/uvicorn-h11"]["scenarios"]["hello"]["ratio"]
    assert ratio["median"] > 0
    latency = results["latency"]["configs"]["velocipy/uvicorn-h11"]
    assert latency["status"] == "ok" and latency["p99_ratio"] is not None
    assert [row["status"] for row in results["memory"]] == ["ok", "ok"]
    assert results["memory"][0]["open_at_reading"] > 0
    assert results["core"]["scenarios"]["hello"]["core_async_us"]["median"] > 0
    report = (tmp_path / "RESULTS.md").read_text()
    assert results["machine"]["cpu"] in report
    assert "| velocipy/uvicorn-h11 | bare-asgi/uvicorn-h11 |" in report


@pytest.mark.server
def test_middleware_cost_bench_apps_answer_and_the_report_reads_right() -> None:
    from bench import middleware_cost

    frameworks = "velocipy,fastapi" if importlib.util.find_spec("fastapi") else "velocipy"
    done = subprocess.run(
        [sys.executable, "-m", "bench.middleware_cost", "--smoke", "--frameworks", frameworks],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for kind in ("plain", "http", "cors"):
        assert f"velocipy_{kind}: ok" in done.stdout
    counts = {
        "velocipy_plain": 100,
        "velocipy_http": 110,
        "velocipy_cors": 105,
        "fastapi_plain": 200,
        "fastapi_http": 260,
        "fastapi_cors": 230,
    }
    lines = middleware_cost.report(counts)
    assert "| cost of the http middleware | 10 | 60 |" in lines[-2]
    assert "0.17 of FastAPI's (target < 0.33: met)" in lines[-2]
    assert "0.17 of FastAPI's" in lines[-1] and "met" in lines[-1]


def test_bytecode_tracer_counts_each_call_and_twice_the_bytecodes_for_twice_the_work(
    tmp_path: Path,
) -> None:
    # What `bench.bytecodes` divides: per-function counts that grow with the work done.
    (tmp_path / "traced_target.py").write_text(
        "def step(n):\n    return n + 1\n\n"
        "import sys\nfor i in range(int(sys.argv[1])):\n    step(i)\n"
    )
    counts = []
    for runs in (10, 20):
        out = tmp_path / f"counts{runs}.json"
        subprocess.run(
            [sys.executable, "-m", "bench._trace_bytecodes", "traced_target", str(runs)],
            env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "BENCH_BYTECODES_OUT": str(out)},
            cwd=tmp_path,
            check=True,
            timeout=60,
        )
        counts.append(json.loads(out.read_text()))
    (key,) = [k for k in counts[0]["calls"] if k.endswith(":1:step")]
    assert [c["calls"][key] for c in counts] == [10, 20]
    per_call = counts[0]["ops"][key] / 10
    assert per_call >= 2  # at least a load and a return
    assert counts[1]["ops"][key] == 20 * per_call


def test_interpreter_entries_counts_calls_of_the_eval_loop_at_every_depth(tmp_path: Path) -> None:
    from bench.instructions import interpreter_entries

    profile = tmp_path / "callgrind.out"
    profile.write_text(
        "fn=(1) main\n"
        "cfn=(2) _PyEval_EvalFrameDefault\ncalls=3 0\n12 400\n"
        "cfn=(3) PyObject_Malloc\ncalls=5 0\n12 50\n"
        "fn=(2)\n"
        "cfn=(4) _PyEval_EvalFrameDefault'2\ncalls=2 0\n7 100\n"
        "cfn=(2)\ncalls=1 0\n7 10\n"
        "cfn=(3)\ncalls=9 0\n7 10\n"
    )
    # 3 + 2 + 1 entries; the allocator's calls are not counted.
    assert interpreter_entries(profile) == 6


def test_task_queue_bytecodes_list_the_functions_that_differ_most_from_in_process() -> None:
    from bench.task_queues import compare

    base = {
        "ops": {"a.py:1:same": 10.0, "a.py:5:shrinks": 30.0, "a.py:9:gone": 4.0},
        "calls": {"a.py:1:same": 1.0, "a.py:5:shrinks": 2.0, "a.py:9:gone": 1.0},
    }
    other = {
        "ops": {"a.py:1:same": 10.0, "a.py:5:shrinks": 25.0, "q.py:3:added": 100.0},
        "calls": {"a.py:1:same": 1.0, "a.py:5:shrinks": 2.0, "q.py:3:added": 3.0},
    }
    lines = compare(base, other, top=2)
    assert lines[0].startswith("  +91 bytecodes (+206.8%), +2.0 calls")
    # The biggest difference first, only `top` of them, equal counts never listed.
    assert lines[2].endswith("q.py:3:added")
    assert "( +100.0)" in lines[2] and "0.0 ->   3.0" in lines[2]
    assert lines[3].endswith("a.py:5:shrinks") and "(   -5.0)" in lines[3]
    assert len(lines) == 4
    assert not any(line.endswith("same") for line in compare(base, other, top=10))


def test_task_queue_counts_start_each_configuration_with_its_own_backend() -> None:
    from bench.task_queues import APPS, _command

    titles = [title for title, _, _ in APPS]
    assert "null" in [extra.get("BENCH_QUEUE_BACKEND") for _, _, extra in APPS]
    argv = _command(APPS[1][1])(8123)
    assert argv[:2] == [sys.executable, "-m"]  # what the tracer and callgrind can start
    assert "bench.apps.velocipy_queue_app:app" in argv and "8123" in argv
    assert len(set(titles)) == len(titles)


def test_task_queue_bench_reads_a_process_cpu_time_that_grows_with_its_work() -> None:
    import os

    from bench.task_queues import cpu_seconds

    before = cpu_seconds(os.getpid())
    spent = time.process_time()
    while time.process_time() - spent < 0.3:  # busy: 0.3 s of CPU
        pass
    assert 0.2 <= cpu_seconds(os.getpid()) - before <= 1.0
