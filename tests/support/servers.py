"""Real servers for tests: start one as a subprocess on 127.0.0.1, wait for it, always stop it.

Every server test goes through `run_server`, so each is bounded in time (start-up
and shutdown both time out) and cleaned up even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running server subprocess and where its output goes."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """Wait until `text` is in the output; return the output. Fails if the process exits."""
        deadline = time.monotonic() + timeout
        while text not in (logs := self.logs()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{logs}")
            time.sleep(0.02)
        return logs

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send `sig` and wait for the exit code; kill it if it outlives `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(
                    f"server did not stop within {timeout}s:\n{self.logs()}"
                ) from None
        return int(self.process.returncode)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


@contextlib.contextmanager
def run_server(
    argv: Sequence[str],
    *,
    port: int,
    env: dict[str, str] | None = None,
    startup_timeout: float = 20.0,
    cwd: Path | None = None,
    own_process_group: bool = False,
) -> Iterator[ServerProcess]:
    """Start `argv` (which must listen on 127.0.0.1:`port`), yield it, stop it afterwards.

    `cwd` defaults to the repository; `own_process_group` starts it as the leader of a
    new process group, so a test can signal the group as a terminal's Ctrl+C does.
    """
    log_file = tempfile.NamedTemporaryFile(prefix="velocipy-server-", suffix=".log", delete=False)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    process = subprocess.Popen(
        list(argv),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=cwd or ROOT,
        start_new_session=own_process_group,
    )
    server = ServerProcess(process, port, Path(log_file.name))
    try:
        try:
            wait_for_port(port, process, startup_timeout)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{error}; server output:\n{server.logs()}") from None
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log_file.close()
        with contextlib.suppress(OSError):
            os.unlink(log_file.name)


PYTHON = sys.executable


@contextlib.contextmanager
def log_config_file(server_loggers: dict[str, Any], **extra: Any) -> Iterator[str]:
    """A `logging.config.dictConfig` JSON file for a server subprocess, removed afterwards.

    Everything goes to stderr as `LEVEL name message`: the server's own loggers
    as given, plus `velocipy` at INFO, so tests can read both from the output.
    """
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            **server_loggers,
            "velocipy": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
        **extra,
    }
    handle, path = tempfile.mkstemp(prefix="velocipy-log-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(config, file)
    try:
        yield path
    finally:
        os.unlink(path)
