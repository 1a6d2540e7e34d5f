"""Every ASGI-spec test runs once per server: the built-in one with each parser, and uvicorn
with each parser as the reference. The same assertions must pass on all four."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.conformance.drivers.uvicorn_h11 import uvicorn_process
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

SERVERS = ("velocipy-h11", "velocipy-httptools", "uvicorn-h11", "uvicorn-httptools")

#: uvicorn's httptools protocol as a second reference only in the slow run (`-m slow`).
PARAMS = [
    pytest.param(name, marks=pytest.mark.slow) if name == SERVERS[-1] else name for name in SERVERS
]


@contextlib.contextmanager
def serving(name: str, target: str, *extra: str) -> Iterator[ServerProcess]:
    """`target` served by the server `name` (one of `SERVERS`) on a free port."""
    kind, http = name.split("-")
    if kind == "uvicorn":
        with uvicorn_process(target, http, *extra) as server:
            yield server
        return
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", target, "--port", str(port), "--http", http]
    argv += ["--no-access-log", "--graceful-timeout", "5", *extra]
    with run_server(argv, port=port) as server:
        yield server


@pytest.fixture(scope="session", params=PARAMS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """`tests/asgi_spec/app.py` on each server."""
    with serving(request.param, "tests.asgi_spec.app:app") as running:
        yield running


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Files of a test CA and of a certificate for 127.0.0.1 it signed (`trustme`)."""
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    authority.cert_pem.write_to_path(str(paths["ca"]))
    issued.private_key_and_cert_chain_pem.write_to_path(str(paths["cert"]))
    issued.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()}
