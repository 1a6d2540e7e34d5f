"""Starting and stopping the servers under test: pinned to a core, waited for, checked, cleaned up.

Each server runs in its own process group (so gunicorn's workers go with it),
pinned with `taskset` when the machine has a core to spare for the load
generator. A configuration that does not come up, or answers a scenario with
anything but the expected JSON, is reported with the reason instead of
stopping the run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.configs import Scenario

ROOT = Path(__file__).resolve().parents[1]

#: Cores for the server and for the load generator; None when there is nothing to pin to.
SERVER_CORE: str | None = None
LOAD_CORE: str | None = None
if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
    SERVER_CORE, LOAD_CORE = "0", "1"


def pinned(argv: Sequence[str], core: str | None) -> list[str]:
    """`argv`, run under `taskset -c core` when pinning is possible."""
    return ["taskset", "-c", core, *argv] if core is not None else list(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of `pid` and its children, in KiB, from /proc."""
    current = peak = 0
    for one in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    current += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
    return current, peak


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            for child in map(int, text):
                found += [child, *children(child)]
    return found


@dataclass
class Server:
    """A server process under test."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Why the server is unusable ("" while it is fine).
    problem: str = ""

    def start(self) -> None:
        log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)
        self.log_path = Path(log.name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            pinned(self.argv, SERVER_CORE),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the port accepts; on failure set `problem` and return False."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.problem = f"exited with code {self.process.returncode}: {self.tail()}"
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return True
            time.sleep(0.05)
        self.problem = f"nothing listened on port {self.port} within {timeout:.0f}s: {self.tail()}"
        return False

    def tail(self, lines: int = 6) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check(self, scenario: Scenario) -> str:
        """ "" if the scenario gets a 200 with the expected JSON, else what was wrong."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            headers = {"Content-Type": "application/json"} if scenario.body else {}
            connection.request(scenario.method, scenario.path, scenario.body or None, headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            return f"{scenario.method} {scenario.path} failed: {error!r}"
        finally:
            connection.close()
        try:
            got = json.loads(raw)
        except ValueError:
            got = raw[:200]
        if response.status != 200 or got != scenario.expected:
            return f"{scenario.method} {scenario.path} answered {response.status} {got!r}"
        return ""

    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process group; SIGKILL it if it outlives `grace`."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        with contextlib.suppress(ProcessLookupError):  # stray workers of a dead arbiter
            os.killpg(process.pid, signal.SIGKILL)
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def start_all(servers: list[Server], timeout: float = 30.0) -> None:
    """Start every server at once, then wait for each; failures end up in `problem`."""
    for server in servers:
        server.start()
    for server in servers:
        server.wait_ready(timeout)


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        server.stop()
