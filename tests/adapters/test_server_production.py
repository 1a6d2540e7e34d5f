"""The built-in server's production flags over real sockets: TLS, proxies, unix sockets, recycling.

In-process servers (`serving`) for what a `ServerConfig` decides, parametrised
over both request parsers; `velocipy run` subprocesses for what happens around
the server (listening on a unix socket or an inherited descriptor, retiring
after `--limit-max-requests`).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.adapters.test_server_harness import PARSERS, Reader, get, serving, using_parser
from tests.support.servers import ROOT, ServerProcess, free_port, run_server

pytestmark = pytest.mark.server

APP = "tests.adapters.test_server_harness:app"


@pytest.fixture(autouse=True, params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Iterator[str]:
    with using_parser(request.param) as http:
        yield http


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA of the test's own and a server certificate for 127.0.0.1 signed by it (files)."""
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    issued.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    issued.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()}


def test_tls_handshake_and_requests_with_a_real_client(certificate: dict[str, str]) -> None:
    with serving(ssl_certfile=certificate["cert"], ssl_keyfile=certificate["key"]) as running:
        verify = ssl.create_default_context(cafile=certificate["ca"])
        with httpx.Client(verify=verify, timeout=5) as client:
            base = f"https://127.0.0.1:{running.port}"
            assert client.get(f"{base}/hello").json() == {"message": "hello"}
            echoed = client.post(f"{base}/echo", content=b"secret").json()
            assert echoed == {"length": 6, "text": "secret"}
            # the app sees the scheme it was reached by
            assert client.get(f"{base}/whoami").json()["url"].startswith("https://")


def test_tls_refuses_plain_http_and_untrusted_clients_but_keeps_serving(
    certificate: dict[str, str],
) -> None:
    with serving(ssl_certfile=certificate["cert"], ssl_keyfile=certificate["key"]) as running:
        with running.connect() as sock:  # plain HTTP to a TLS port: the handshake fails
            sock.sendall(get("/hello"))
            sock.settimeout(5)
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            assert not data.startswith(b"HTTP/1.1 200")
        with pytest.raises(httpx.ConnectError):  # a client that does not trust our CA
            httpx.get(f"https://127.0.0.1:{running.port}/hello", timeout=5)
        verify = ssl.create_default_context(cafile=certificate["ca"])
        reply = httpx.get(f"https://127.0.0.1:{running.port}/hello", verify=verify, timeout=5)
        assert reply.status_code == 200


def test_tls_with_an_encrypted_key(certificate: dict[str, str], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(certificate["key"]).read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with serving(
        ssl_certfile=certificate["cert"],
        ssl_keyfile=str(encrypted),
        ssl_keyfile_password="s3cret",
    ) as running:
        verify = ssl.create_default_context(cafile=certificate["ca"])
        reply = httpx.get(f"https://127.0.0.1:{running.port}/hello", verify=verify, timeout=5)
        assert reply.status_code == 200


# -- behind a proxy ----------------------------------------------------------------------------


def whoami(port: int, *headers: str) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(get("/whoami", *headers))
        reply = Reader(sock).response()
    assert reply.status == 200, reply
    result: dict[str, Any] = json.loads(reply.body)
    return result


def test_proxy_headers_from_a_trusted_peer_are_believed() -> None:
    with serving(proxy_headers=True, forwarded_allow_ips="127.0.0.1") as running:
        seen = whoami(running.port, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        assert seen["client"] == ["203.0.113.7", 0]
        assert str(seen["url"]).startswith("https://test/")
        # a chain: the proxies we trust are skipped from the right
        seen = whoami(running.port, "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 127.0.0.1")
        assert seen["client"] == ["203.0.113.7", 0]
        # RFC 7239 wins over X-Forwarded-*
        seen = whoami(
            running.port,
            'Forwarded: for="[2001:db8::1]:4711";proto=https, for=127.0.0.1',
            "X-Forwarded-For: 192.0.2.99",
        )
        assert seen["client"] == ["2001:db8::1", 4711]
        assert str(seen["url"]).startswith("https://")


def test_proxy_headers_from_an_untrusted_peer_are_ignored() -> None:
    with serving(proxy_headers=True, forwarded_allow_ips="192.0.2.1, 10.0.0.0/8") as running:
        seen = whoami(running.port, "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https")
        assert seen["client"][0] == "127.0.0.1"
        assert str(seen["url"]).startswith("http://")
    with serving() as running:  # off by default
        seen = whoami(running.port, "Forwarded: for=203.0.113.7;proto=https")
        assert seen["client"][0] == "127.0.0.1"


def test_root_path_is_in_the_urls_the_app_builds() -> None:
    with serving(root_path="/api") as running:
        assert whoami(running.port)["url"] == "http://test/api/whoami"


# -- response headers --------------------------------------------------------------------------


def test_default_headers_and_switching_off_server_and_date() -> None:
    with serving(headers=(("X-Frame-Options", "DENY"), ("Server", "edge"))) as running:
        with running.connect() as sock:
            sock.sendall(get("/hello"))
            reply = Reader(sock).response()
        assert reply.header("x-frame-options") == "DENY"
        assert reply.header("server") == "edge"
        assert reply.header("date") is not None
    with serving(server_header="", date_header=False) as running:
        with running.connect() as sock:
            sock.sendall(get("/hello"))
            reply = Reader(sock).response()
        assert reply.header("server") is None
        assert reply.header("date") is None


# -- where it listens (subprocesses) -----------------------------------------------------------


def velocipy_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "velocipy", "run", APP, "--log-level", "info", *args]


def test_unix_socket(parser: str) -> None:
    folder = tempfile.mkdtemp(prefix="vp-uds-")
    path = os.path.join(folder, "server.sock")
    process = subprocess.Popen(
        velocipy_run("--uds", path, "--http", parser),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, timeout=5) as client:
            for _ in range(50):
                try:
                    reply = client.get("http://localhost/hello")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert reply.json() == {"message": "hello"}
            assert client.get("http://localhost/whoami").json()["client"] is None
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    assert "http+unix:" + path in output
    assert process.returncode == 0, output


def test_inherited_file_descriptor(parser: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    with tempfile.NamedTemporaryFile(prefix="velocipy-server-", suffix=".log") as log:
        process = subprocess.Popen(
            velocipy_run("--fd", str(fd), "--http", parser),
            cwd=ROOT,
            pass_fds=(fd,),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        listener.close()  # the server holds it now
        server = ServerProcess(process, port, Path(log.name))
        try:
            # A client that comes before the server is ready waits in the inherited
            # socket's backlog and is served once it is (how socket activation works).
            with socket.create_connection(("127.0.0.1", port), timeout=5) as early:
                early.sendall(get("/hello", "Connection: close"))
                # Importing the app can take longer than any read timeout on a loaded
                # machine: the reply is awaited only once the server says it serves.
                server.wait_for_log("VelociPy serving")
                early.settimeout(5)
                assert Reader(early).response().status == 200
            reply = httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5)
            assert reply.json() == {"message": "hello"}
        finally:
            code = server.stop()
        assert code == 0, server.logs()


def test_limit_max_requests_stops_after_draining_tasks(parser: str) -> None:
    port = free_port()
    argv = velocipy_run("--port", str(port), "--http", parser, "--limit-max-requests", "3")
    with run_server(argv, port=port) as server:
        for key in ("a", "b", "c"):
            reply = httpx.post(f"{server.url}/task/async/{key}?seconds=0.5", timeout=5)
            assert reply.status_code == 200
        assert server.process.wait(15) == 0
        logs = server.logs()
    assert "Maximum request limit of 3 reached" in logs
    for key in ("a", "b", "c"):  # every task ran before the process went away
        assert f"EVENT slow-async {key}" in logs, logs


def test_limit_max_requests_recycles_workers_without_losing_tasks(parser: str) -> None:
    port = free_port()
    argv = velocipy_run(
        "--port", str(port), "--http", parser, "--limit-max-requests", "2", "--workers", "2"
    )  # fmt: skip
    with run_server(argv, port=port) as server:
        keys = [f"k{index}" for index in range(8)]
        for key in keys:  # a new connection each: the kernel spreads them over the workers
            reply = httpx.post(
                f"{server.url}/task/async/{key}?seconds=0.3",
                headers={"Connection": "close"},
                timeout=10,
            )
            assert reply.status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            f"EVENT slow-async {key}" in server.logs() for key in keys
        ):
            time.sleep(0.1)
        logs = server.logs()
        code = server.stop()
        assert code == 0, server.logs()
    for key in keys:
        assert f"EVENT slow-async {key}" in logs, logs
    assert logs.count("Started worker") >= 4, logs  # two retired at least, replaced
