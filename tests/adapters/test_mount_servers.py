"""Foreign mounts on real servers: an ASGI app under uvicorn and the built-in server, a WSGI
app under gunicorn, and each refused, by name, where it cannot be served (never skipped)."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from tests.asgi_spec.conftest import serving
from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.conformance.drivers.uvicorn_h11 import uvicorn_process
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

APP = "tests.adapters.mount_servers_app"


@pytest.mark.parametrize("name", ["uvicorn-h11", "velocipy-h11", "velocipy-httptools"])
def test_asgi_mounts_are_served_with_starlettes_root_path(name: str) -> None:
    # The built-in server serves such an app through its ASGI entry (`app.needs_asgi`).
    with serving(name, f"{APP}:asgi_parent") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            where = client.get("/starlette/where").json()
            assert where["path"] == "/starlette/where"
            assert where["root_path"] == "/starlette"
            assert where["url"] == f"{server.url}/starlette/where"
            assert where["for"] == f"{server.url}/starlette/where"
            raw = client.get("/raw/a/b").json()
            assert raw == {"path": "/raw/a/b", "root_path": "/raw"}
            assert client.get("/own").json() == {"own": "/own"}
            assert client.get("/elsewhere").status_code == 404


def test_gunicorn_serves_wsgi_mounts_with_script_name() -> None:
    with gunicorn_process(f"{APP}:wsgi", "gthread") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            legacy = client.get("/legacy/a/b").json()
            assert legacy == {"script_name": "/legacy", "path_info": "/a/b"}
            assert client.get("/own").json() == {"own": "/own"}


def test_uvicorn_refuses_to_start_with_a_wsgi_mount_naming_it() -> None:
    with pytest.raises(RuntimeError) as failure:
        with uvicorn_process(f"{APP}:wsgi_parent", "h11", "--lifespan", "auto"):
            pass
    assert "mount '/legacy' ('legacy')" in str(failure.value)
    assert "cannot be served over ASGI" in str(failure.value)


def refusal_logs(start: contextlib.AbstractContextManager[ServerProcess]) -> str:
    """The output of a server that must stop by itself. It may refuse before it listens
    (`run_server` then raises with the output) or after (its master or CLI bound the port
    first): both happen, depending on timing."""
    try:
        with start as server:
            deadline = time.monotonic() + 30
            while server.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.process.poll() is not None, "the server kept running"
            return server.logs()
    except RuntimeError as exited_early:
        return str(exited_early)


def test_gunicorn_refuses_to_start_with_an_asgi_mount_naming_it() -> None:
    logs = refusal_logs(gunicorn_process(f"{APP}:asgi_parent_as_wsgi", "sync"))
    assert "mount '/starlette'" in logs
    assert "cannot be served over WSGI" in logs


def test_the_built_in_server_refuses_a_wsgi_mount_naming_it() -> None:
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", f"{APP}:wsgi_parent", "--port", str(port)]
    logs = refusal_logs(run_server(argv, port=port))
    assert "mount '/legacy' ('legacy')" in logs
    assert "cannot be served by this server" in logs
