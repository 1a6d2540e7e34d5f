"""Seconds until the built-in server closes a connection that asked for `Connection: close`.

Issue 17, defect 6. Starts `velocipy run` on the test harness app (default
timeouts: a 30 s body timeout), sends each request below, reads the response
and then waits for EOF, as a client reading to the end does.

    python -m bench.close_after_body
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "Content-Length + Connection: close": (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    ),
    "HTTP/1.0 with a body": b"POST /echo HTTP/1.0\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    "no body + Connection: close": b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
}


def main() -> None:
    port = 18_767
    argv = [sys.executable, "-m", "velocipy", "run", "tests.adapters.test_server_harness:app",
            "--port", str(port), "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for name, data in CASES.items():
            with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
                started = time.monotonic()
                sock.sendall(data)
                received = b""
                while chunk := sock.recv(65536):
                    received += chunk
                status = received.split(b" ", 2)[1].decode()
                print(f"{name}: {status}, EOF after {time.monotonic() - started:.2f}s")
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
