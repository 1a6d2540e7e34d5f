"""RSS of a server process while many background tasks are in flight, and after they end.

Issue 17, defect 7. The server runs `bench.apps.pending_tasks:app` (one task per
`POST /signup`, waiting until SIGUSR1). `--connections` keep-alive
clients send `--requests` signups between them; once no response has come for
`--stall` seconds (the server applies backpressure) or all are answered, the
server's RSS is read ("in flight"), the tasks are released, the rest of the
requests are sent, and RSS is read again once every task has finished ("after").

    python -m bench.tasks_in_flight --server velocipy --requests 10000
    python -m bench.tasks_in_flight --server uvicorn --requests 10000
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = "bench.apps.pending_tasks:app"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start(server: str, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    if server == "velocipy":
        argv = [sys.executable, "-m", "velocipy", "run", APP, "--port", str(port), *extra]
    else:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            APP,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/tasks")
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def counts(port: int) -> dict[str, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/tasks")
    return json.loads(connection.getresponse().read())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["velocipy", "uvicorn"], default="velocipy")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--stall", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=18_765)
    parser.add_argument("extra", nargs="*", help="more server options (after --)")
    options = parser.parse_args()
    process = start(options.server, options.port, options.extra)
    try:
        time.sleep(0.5)
        before = rss_mb(process.pid)
        answered = [0]
        last = [time.monotonic()]
        lock = threading.Lock()
        per_client = options.requests // options.connections
        body = json.dumps({"email": "someone@example.com"})

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=600)
            for _ in range(per_client):
                connection.request("POST", "/signup", body, {"content-type": "application/json"})
                connection.getresponse().read()
                with lock:
                    answered[0] += 1
                    last[0] = time.monotonic()

        clients = [threading.Thread(target=client, daemon=True) for _ in range(options.connections)]
        started = time.monotonic()
        for thread in clients:
            thread.start()
        while answered[0] < per_client * options.connections:
            time.sleep(0.2)
            if time.monotonic() - last[0] > options.stall:
                break
        in_flight_rss = rss_mb(process.pid)
        state = {}
        stalled_at = answered[0]
        process.send_signal(signal.SIGUSR1)
        for thread in clients:
            thread.join(300)
        elapsed = time.monotonic() - started
        while True:
            state = counts(options.port)
            if state["pending"] + state["running"] == 0:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        after = rss_mb(process.pid)
        print(
            f"{options.server} {' '.join(options.extra)}: RSS {before:.1f} MB before; "
            f"{in_flight_rss:.1f} MB (+{in_flight_rss - before:.1f}) with {stalled_at} requests "
            f"answered and their tasks in flight; {after:.1f} MB (+{after - before:.1f}) after "
            f"all {answered[0]} tasks ended ({state['succeeded']} succeeded) in {elapsed:.1f}s"
        )
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
