"""Reload latency: from a file saved to the new code answering, `velocipy run --reload` vs uvicorn.

`python -m bench.reload_latency [--saves 5] [--servers velocipy,uvicorn]` writes a
small VelociPy app into a fresh directory, serves it with each server's
`--reload` (the same app, the same directory, one server at a time, taking turns
save by save so that the machine's load falls on both alike), then saves a new
version of the app file and polls `GET /version` on fresh connections every
10 ms until the new version answers. The time from the save to that answer is
the latency; the figures are per save, with the median and the range per server.

It is wall-clock time on a real socket, so it moves with the machine's load:
compare the servers within one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from bench.servers import ROOT, free_port

APP = """
from velocipy import VelociPy

app = VelociPy()


@app.get("/version")
def version() -> dict[str, int]:
    return {{"version": {version}}}
"""

#: Longest wait for one reload (a fresh interpreter on a loaded machine).
TIMEOUT = 60.0
POLL = 0.01


def command(server: str, port: int) -> list[str]:
    if server == "velocipy":
        return [sys.executable, "-m", "velocipy", "run", "app:app", "--port", str(port),
                "--reload", "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--reload",
            "--no-access-log"]  # fmt: skip


def version(port: int) -> int | None:
    """The version answering on `port` (a fresh connection), or None if none answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return int(body.decode().split(":")[1].strip(" }"))
    except (OSError, http.client.HTTPException, ValueError, IndexError):
        return None
    finally:
        connection.close()


def wait_for(port: int, wanted: int) -> float:
    """Seconds until `wanted` answers on `port`."""
    began = time.monotonic()
    while version(port) != wanted:
        if time.monotonic() - began > TIMEOUT:
            raise SystemExit(f"version {wanted} did not answer within {TIMEOUT:.0f} s")
        time.sleep(POLL)
    return time.monotonic() - began


@contextlib.contextmanager
def serving(server: str, folder: Path) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(folder / f"{server}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command(server, port), cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(port, 0)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def save(folder: Path, number: int) -> None:
    (folder / "app.py").write_text(textwrap.dedent(APP.format(version=number)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--servers", default="velocipy,uvicorn")
    args = parser.parse_args()
    servers = args.servers.split(",")
    results: dict[str, list[float]] = {server: [] for server in servers}
    with contextlib.ExitStack() as stack:
        folders: dict[str, Path] = {}
        ports: dict[str, int] = {}
        for server in servers:
            folders[server] = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            save(folders[server], 0)
            ports[server] = stack.enter_context(serving(server, folders[server]))
        time.sleep(1.0)  # both watchers settled
        for number in range(1, args.saves + 1):
            for server in servers:
                save(folders[server], number)
                seconds = wait_for(ports[server], number)
                results[server].append(seconds)
                print(f"{server:9} save {number}: {seconds * 1000:6.0f} ms", flush=True)
                time.sleep(0.5)
    print()
    for server, figures in results.items():
        ms = sorted(f * 1000 for f in figures)
        print(
            f"{server:9} median {statistics.median(ms):6.0f} ms  "
            f"(min {ms[0]:.0f}, max {ms[-1]:.0f}, {len(ms)} saves)"
        )


if __name__ == "__main__":
    main()
