"""Short sync tasks under gunicorn: tasks done per second, and what a SIGTERM drain finishes.

Issue 17, defect 4. gunicorn (one gthread worker, 8 threads) serves
`bench.apps.short_tasks:wsgi`; 8 keep-alive clients send `--requests`
`POST /work` (one 5 ms sync task each), then the master gets SIGTERM with
`--graceful-timeout` seconds of grace. Prints the request rate, the task
counts the worker printed at exit (succeeded vs abandoned) and the time the
stop took.

    python -m bench.gunicorn_short_tasks --requests 4000 --graceful-timeout 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--graceful-timeout", type=int, default=10)
    parser.add_argument("--port", type=int, default=18_766)
    options = parser.parse_args()
    log = tempfile.NamedTemporaryFile(prefix="gunicorn-short-", suffix=".log", delete=False)
    argv = [
        sys.executable, "-m", "gunicorn", "bench.apps.short_tasks:wsgi", "-k", "gthread",
        "--threads", "8", "-w", "1", "-b", f"127.0.0.1:{options.port}",
        "--graceful-timeout", str(options.graceful_timeout),
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=5)
                connection.request("POST", "/work", headers={"Content-Length": "0"})
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        per_client = options.requests // options.clients

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=30)
            for _ in range(per_client):
                connection.request("POST", "/work", headers={"Content-Length": "0"})
                connection.getresponse().read()

        threads = [threading.Thread(target=client) for _ in range(options.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        sent = per_client * options.clients + 1
        stop_started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(options.graceful_timeout + 30)
        stop_took = time.monotonic() - stop_started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = Path(log.name).read_text(errors="replace")
    match = re.search(r"COUNTS \d+ (\{.*\})", text)
    counts = json.loads(match.group(1)) if match else {}
    print(
        f"{sent} requests in {elapsed:.2f}s ({sent / elapsed:.0f} req/s); SIGTERM with "
        f"{options.graceful_timeout}s grace: stop took {stop_took:.1f}s; "
        f"succeeded {counts.get('succeeded')}, abandoned {counts.get('abandoned')}, "
        f"cancelled {counts.get('cancelled')}, still running {counts.get('running')}, "
        f"pending {counts.get('pending')}; abandonment lines "
        f"{len(re.findall(r'abandoned: |cut off at exit', text))}"
    )


if __name__ == "__main__":
    main()
