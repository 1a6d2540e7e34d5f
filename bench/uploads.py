"""Upload throughput, VelociPy beside FastAPI, both on uvicorn (httptools, uvloop when present).

    python -m bench.uploads [--rounds 3] [--duration 5] [--connections 8]

Each request is a multipart body with a 1 KB form field and a 1 MB file
(`bench/apps/upload_apps.py`: both apps read the file in pieces and answer its
size). Both servers are started at once, each answer is checked first, then wrk
loads them in interleaved rounds; the median requests/s of each is printed with
the ratio. Small scale on purpose: it shows the cost of the upload path (the
streamed read, the parser, the spool to disk past 1 MiB), not the network.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CONFIGS = {
    "velocipy/uvicorn-httptools": "bench.apps.upload_apps:velocipy_app",
    "fastapi/uvicorn-httptools": "bench.apps.upload_apps:fastapi_app",
}
FIELD = "n" * 1024
FILE = bytes(range(256)) * 4096  # 1 MiB


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _uvicorn(target: str) -> Iterator[str]:
    port = _free_port()
    loop = ["--loop", "uvloop"] if _has("uvloop") else []
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and os.cpu_count() != 1 else []
    argv = [*pin, sys.executable, "-m", "uvicorn", target, "--port", str(port)]
    argv += ["--http", "httptools", *loop, "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{target} did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _request() -> tuple[bytes, str]:
    built = httpx.Request(
        "POST",
        "http://bench/upload",
        data={"note": FIELD},
        files={"file": ("photo.bin", FILE, "application/octet-stream")},
    )
    return built.read(), built.headers["content-type"]


def _check(url: str, body: bytes, content_type: str) -> None:
    response = httpx.post(
        f"{url}/upload", content=body, headers={"content-type": content_type}, timeout=30
    )
    expected = {"note": len(FIELD), "filename": "photo.bin", "size": len(FILE)}
    if response.status_code != 200 or response.json() != expected:
        raise RuntimeError(f"{url}: unexpected answer {response.status_code} {response.text!r}")


def _wrk(url: str, script: Path, duration: float, connections: int) -> float:
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() != 1 else []
    seconds = max(1, round(duration))  # wrk takes whole seconds
    argv = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    out = subprocess.run([*argv, f"{url}/upload"], capture_output=True, text=True, check=True)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"{url}: non-2xx answers under load:\n{out.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if match is None:
        raise RuntimeError(f"wrk said:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    body, content_type = _request()
    with tempfile.TemporaryDirectory() as scratch:
        body_path = Path(scratch) / "body.bin"
        body_path.write_bytes(body)
        script = Path(scratch) / "upload.lua"
        script.write_text(
            f'local f = io.open("{body_path}", "rb")\n'
            'wrk.method = "POST"\n'
            "wrk.body = f:read('*all')\n"
            "f:close()\n"
            f'wrk.headers["Content-Type"] = "{content_type}"\n'
        )
        with contextlib.ExitStack() as stack:
            urls = {name: stack.enter_context(_uvicorn(t)) for name, t in CONFIGS.items()}
            for url in urls.values():
                _check(url, body, content_type)
                _wrk(url, script, 1.0, options.connections)  # warm-up
            rates: dict[str, list[float]] = {name: [] for name in urls}
            for _ in range(options.rounds):
                for name, url in urls.items():
                    rates[name].append(_wrk(url, script, options.duration, options.connections))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline = medians["fastapi/uvicorn-httptools"]
    print(f"upload: 1 KB field + 1 MB file, wrk -c{options.connections}, {options.rounds} rounds")
    for name, values in rates.items():
        spread = f"{min(values):.0f}-{max(values):.0f}"
        ratio = medians[name] / baseline
        print(f"  {name:28} {medians[name]:8.1f} req/s  ({spread})  {ratio:.2f}x FastAPI")


if __name__ == "__main__":
    main()
