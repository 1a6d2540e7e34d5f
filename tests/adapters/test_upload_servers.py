"""Uploads from a real `curl -F` to every server, and the memory a 100 MB upload costs each.

The memory test (marked slow) sends 100 MB through curl, streamed from a file,
and samples the server's resident memory (its whole process tree) while the
upload runs: the growth must stay under 5 MB, since parts go to disk past
1 MiB and the body is pulled a piece at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.conformance.drivers.uvicorn_h11 import uvicorn_process
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]

MODULE = "tests.adapters.upload_app"


@contextlib.contextmanager
def own_server() -> Iterator[ServerProcess]:
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", f"{MODULE}:app", "--port", str(port)]
    argv += ["--no-access-log", "--max-body-size", str(256 * 1024 * 1024)]
    with run_server(argv, port=port) as server:
        yield server


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[ServerProcess]]] = {
    "server": own_server,
    "uvicorn-h11": lambda: uvicorn_process(f"{MODULE}:app", "h11"),
    "uvicorn-httptools": lambda: uvicorn_process(f"{MODULE}:app", "httptools"),
    "gunicorn-sync": lambda: gunicorn_process(f"{MODULE}:wsgi", "sync"),
    "gunicorn-gthread": lambda: gunicorn_process(f"{MODULE}:wsgi", "gthread"),
}


def curl_upload(url: str, path: Path, note: str = "curl") -> dict[str, object]:
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-F", f"note={note}", "-F", f"file=@{path}", url],
        capture_output=True,
        check=True,
        timeout=130,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of `pid` and all its descendants (Linux /proc)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        pending.extend(int(child) for child in children)
    return total


@pytest.mark.parametrize("name", list(SERVERS))
def test_curl_uploads_a_file_with_a_field(name: str, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)  # past the 1 MiB spool size
    path = tmp_path / "photo.bin"
    path.write_bytes(payload)
    with SERVERS[name]() as server:
        out = curl_upload(f"{server.url}/digest", path, note="from curl")
    assert out == {
        "note": "from curl",
        "filename": "photo.bin",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "on_disk": True,
    }


def big_file(path: Path, size: int) -> str:
    """Write `size` bytes of random blocks to `path`; return their sha256."""
    block = os.urandom(1024 * 1024)
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: size - written]
            out.write(piece)
            hasher.update(piece)
            written += len(piece)
    return hasher.hexdigest()


def curl_stream(url: str, path: Path) -> dict[str, object]:
    """POST the file as a raw body, streamed from disk by curl (no `Expect: 100-continue`)."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-X", "POST", "-T", str(path), "-H", "Expect:"]
        + ["-H", "Content-Type: application/octet-stream", url],
        capture_output=True,
        check=True,
        timeout=130,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def growth_while(server: ServerProcess, send: Callable[[], dict[str, object]]) -> tuple[int, Any]:
    """The peak growth of the server's resident memory while `send()` runs, and its result."""
    before = tree_rss(server.process.pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(server.process.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        out = send()
    finally:
        done.set()
        sampler.join()
    after = tree_rss(server.process.pid)
    return max(peak, after) - before, out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", list(SERVERS))
def test_a_100_mb_upload_grows_the_server_by_under_5_mb(name: str, tmp_path: Path) -> None:
    size = 100 * 1000 * 1000
    path = tmp_path / "big.bin"
    digest = big_file(path, size)
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(2 * 1024 * 1024))
    with SERVERS[name]() as server:
        for _ in range(3):  # warm up: threads, imports, a first spool
            curl_upload(f"{server.url}/digest", small)
        time.sleep(0.3)
        growth, out = growth_while(server, lambda: curl_upload(f"{server.url}/digest", path))
    assert out["sha256"] == digest and out["size"] == size
    print(f"{name}: RSS +{growth / 1e6:.2f} MB for a 100 MB upload")
    assert growth < 5 * 1024 * 1024, f"{name} grew by {growth / 1e6:.1f} MB"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", list(SERVERS))
def test_a_50_mb_body_streamed_to_a_handler_grows_the_server_by_under_5_mb(
    name: str, tmp_path: Path
) -> None:
    size = 50 * 1000 * 1000
    path = tmp_path / "big.bin"
    digest = big_file(path, size)
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(2 * 1024 * 1024))
    with SERVERS[name]() as server:
        for _ in range(3):  # warm up: threads, imports, buffers
            curl_stream(f"{server.url}/stream-digest", small)
        time.sleep(0.3)
        growth, out = growth_while(server, lambda: curl_stream(f"{server.url}/stream-digest", path))
    assert out == {"size": size, "sha256": digest}
    print(f"{name}: RSS +{growth / 1e6:.2f} MB for a 50 MB streamed body")
    assert growth < 5 * 1024 * 1024, f"{name} grew by {growth / 1e6:.1f} MB"


def temp_fds(pid: int) -> list[str]:
    """The temporary files the process tree of `pid` holds open (Linux /proc)."""
    found = []
    pending = [pid]
    tmp = tempfile.gettempdir()
    while pending:
        current = pending.pop()
        try:
            fds = os.listdir(f"/proc/{current}/fd")
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{current}/fd/{fd}")
            except OSError:
                continue
            # Uploads spool to anonymous files (O_TMPFILE): "/tmp/#123 (deleted)".
            if target.startswith(os.path.join(tmp, "#")):
                found.append(target)
        pending.extend(int(child) for child in children)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", list(SERVERS))
def test_a_client_gone_mid_upload_leaves_no_temporary_file_open(name: str) -> None:
    head = (
        "POST /digest HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {8 * 1024 * 1024}\r\n\r\n"
        '--B\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    ).encode()
    with SERVERS[name]() as server:
        before = temp_fds(server.process.pid)
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)
            chunk = b"x" * 65536
            for _ in range(48):  # 3 MiB: past the spool size, so a temporary file is open
                sock.sendall(chunk)
            time.sleep(0.5)
            during = temp_fds(server.process.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(temp_fds(server.process.pid)) > len(before):
            time.sleep(0.1)
        after = temp_fds(server.process.pid)
        assert len(during) > len(before), "the upload never reached a temporary file"
        assert len(after) == len(before), f"{name} still holds {after}\n{server.logs()}"
        # and it still serves
        assert curl_ok(server.url)


def curl_ok(url: str) -> bool:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-F",
            "file=@/dev/null",
            f"{url}/digest",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout == "200"
