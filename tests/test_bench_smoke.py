"""The benchmark harness still works: a seconds-long `python -m bench.run --smoke`, and parsers.

Never a throughput assertion: only that every part ran and reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadgen import parse_wrk
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
