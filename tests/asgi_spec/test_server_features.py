"""The built-in server's own features hold for a plain ASGI app: lifespan outcomes, body
limit, root path, proxy headers, TLS, worker recycling with the app's work drained."""

from __future__ import annotations

import ssl
import subprocess

import httpx
import pytest

from tests.asgi_spec.conftest import serving
from tests.support.servers import PYTHON, ROOT, free_port


@pytest.mark.parametrize("name", ["velocipy-h11", "uvicorn-h11"])
def test_a_failed_startup_stops_the_server_with_the_apps_message(name: str) -> None:
    port = str(free_port())
    target = "tests.asgi_spec.lifespan_apps:failing"
    if name.startswith("uvicorn"):
        argv = [PYTHON, "-m", "uvicorn", target, "--port", port]
    else:
        argv = [PYTHON, "-m", "velocipy", "run", target, "--port", port]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=30, text=True)
    assert done.returncode == 3
    assert "no database at db:5432" in done.stdout + done.stderr


@pytest.mark.parametrize("app", ["unsupported", "silent"])
def test_an_app_without_lifespan_support_is_served(app: str) -> None:
    with serving("velocipy-h11", f"tests.asgi_spec.lifespan_apps:{app}") as server:
        assert httpx.get(server.url + "/", timeout=10).text == "hello"
        if app == "unsupported":
            assert "ASGI 'lifespan' protocol appears unsupported." in server.logs()


def test_limits_root_path_and_proxy_headers_apply_to_an_asgi_app() -> None:
    extra = ("--max-body-size", "1000", "--root-path", "/api", "--proxy-headers")
    with (
        serving("velocipy-httptools", "tests.asgi_spec.app:app", *extra) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        scope = client.get(
            "/scope", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        ).json()
        assert scope["root_path"] == "/api"
        assert scope["path"] == "/api/scope"
        assert scope["raw_path"] == "/api/scope"
        assert scope["client"][0] == "203.0.113.9"
        assert scope["scheme"] == "https"
        assert client.post("/echo", content=b"x" * 999).json()["size"] == 999
        refused = client.post("/echo", content=b"x" * 5000)
        assert refused.status_code == 413
        assert refused.headers["connection"] == "close"

        def chunks() -> object:
            for _ in range(5):
                yield b"y" * 400

        assert client.post("/echo", content=chunks()).status_code == 413  # chunked, counted


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_retiring_worker_drains_the_apps_work_after_its_response(http: str) -> None:
    with serving(
        f"velocipy-{http}", "tests.asgi_spec.app:app", "--limit-max-requests", "2"
    ) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/background").text == "sent"
            assert client.get("/length").status_code == 200  # the limit: a graceful stop
        assert server.process.wait(15) == 0
        assert "background work done" in server.logs()


def test_an_asgi_app_is_served_over_tls(certificate: dict[str, str]) -> None:
    tls = ("--ssl-certfile", certificate["cert"], "--ssl-keyfile", certificate["key"])
    with serving("velocipy-httptools", "tests.asgi_spec.app:app", *tls) as server:
        verify = ssl.create_default_context(cafile=certificate["ca"])
        base = f"https://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, verify=verify, timeout=10) as client:
            assert client.get("/scope").json()["scheme"] == "https"
            assert client.post("/echo", content=b"z" * 70_000).json()["size"] == 70_000
            assert client.get("/stream").text == "one,two,three"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_works_on_every_loop_for_a_velocipy_app_too(
    certificate: dict[str, str], loop: str
) -> None:
    # uvloop hands back its own SSL protocol from connect_accepted_socket: the server
    # once took it for the connection's channel and dropped every TLS connection.
    pytest.importorskip(loop)
    tls = ("--ssl-certfile", certificate["cert"], "--ssl-keyfile", certificate["key"])
    target = "tests.conformance.app:app"
    with serving("velocipy-h11", target, "--loop", loop, *tls) as server:
        verify = ssl.create_default_context(cafile=certificate["ca"])
        base = f"https://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, verify=verify, timeout=10) as client:
            assert client.get("/hello").status_code == 200
