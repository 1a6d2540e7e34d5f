"""The two load generators behind one call: `wrk` (preferred) and `bench.pyload` (fallback).

Both run as a subprocess pinned to the load core, keep connections alive,
and return the same summary dict: requests, errors, non_2xx, rps, p50/p99 in ms.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.configs import Scenario
from bench.servers import LOAD_CORE, ROOT, pinned

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk_version() -> str:
    if not wrk_available():
        return ""
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _lua(scenario: Scenario) -> str:
    body = scenario.body.decode()
    return (
        f'wrk.method = "{scenario.method}"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """The summary dict from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    assert total is not None, output
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors = sum(int(n) for n in socket_errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M))
    return {
        "requests": int(total.group(1)),
        "errors": errors,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "rps": rps,
        "p50_ms": _ms(percentiles["50"]) if "50" in percentiles else None,
        "p90_ms": _ms(percentiles["90"]) if "90" in percentiles else None,
        "p99_ms": _ms(percentiles["99"]) if "99" in percentiles else None,
    }


def run_wrk(port: int, scenario: Scenario, duration: float, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(scenario))
    try:
        argv = [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
            "-s", script.name, f"http://127.0.0.1:{port}{scenario.path}",
        ]  # fmt: skip
        done = subprocess.run(
            pinned(argv, LOAD_CORE), capture_output=True, text=True, timeout=duration + 30
        )
    finally:
        Path(script.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


def run_pyload(
    port: int,
    scenario: Scenario,
    duration: float,
    connections: int,
    *,
    rate: float = 0.0,
    requests: int = 0,
    warmup: float = 0.0,
    samples: bool = False,
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "bench.pyload", "--port", str(port), "--path", scenario.path,
        "--method", scenario.method, "--body", scenario.body.decode(),
        "--connections", str(connections), "--duration", str(duration),
        "--rate", str(rate), "--requests", str(requests), "--warmup", str(warmup),
    ]  # fmt: skip
    if samples:
        argv.append("--samples")
    done = subprocess.run(
        pinned(argv, LOAD_CORE),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=warmup + duration + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.pyload failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_load(
    tool: str, port: int, scenario: Scenario, duration: float, connections: int
) -> dict[str, Any]:
    """Closed-loop load on one endpoint with `tool` ("wrk" or "python")."""
    if tool == "wrk":
        return run_wrk(port, scenario, duration, connections)
    return run_pyload(port, scenario, duration, connections)
