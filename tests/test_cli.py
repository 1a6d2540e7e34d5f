"""`velocipy run` and `python -m velocipy`: argument errors, app loading, dispatch, serving.

Mistakes end with exit code 2 and one line on stderr (no traceback); they are
checked in-process through `main()`. Serving is checked in a subprocess.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import PYTHON, ROOT, free_port, run_server
from velocipy import cli


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("velocipy: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["run", "no_such_module_xyz:app"], ["no_such_module_xyz"]),
        (["run", "tests.conformance.app:nope"], ["has no attribute 'nope'"]),
        (
            ["run", "tests.conformance.app:EVENTS"],
            ["neither a VelociPy application nor an ASGI app"],
        ),
        (["run", "tests.conformance.app"], ["MODULE:APP"]),
        (["run", "tests.conformance.app:app", "--port", "http"], ["--port", "http"]),
        (["run", "tests.conformance.app:app", "--port", "70000"], ["65535"]),
        (["run", "tests.conformance.app:app", "--max-body-size", "lots"], ["--max-body-size"]),
        (["run", "tests.conformance.app:app", "--header-timeout", "-1"], ["--header-timeout"]),
        (["run", "tests.conformance.app:app", "--keepalive-timeout", "0"], ["keepalive_timeout"]),
        (["run", "tests.conformance.app:app", "--loop", "tokio"], ["--loop"]),
        (["run", "tests.conformance.app:app", "--http", "picohttp"], ["--http"]),
        (["run", "tests.conformance.app:app", "--workers", "0"], ["--workers"]),
        (["run", "tests.conformance.app:app", "--log-level", "loud"], ["--log-level"]),
        (["serve"], ["serve"]),
    ],
)
def test_mistakes_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, err = run_main(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *fragments)


def test_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_main(capsys, "run", "tests.conformance.app:app", "--port", str(port))
    assert code == 2
    assert_one_line_error(err, f"127.0.0.1:{port}", "already in use")


def test_sizes_accept_binary_units() -> None:
    assert cli.size("65536") == 65536
    assert cli.size("64k") == cli.size("64KiB") == 65536
    assert cli.size("16MiB") == 16 * 1024 * 1024


def fake_runner(monkeypatch: pytest.MonkeyPatch, module: str, function: str) -> list[Any]:
    calls: list[Any] = []

    def runner(target: str, **kwargs: Any) -> int:
        calls.append((target, kwargs))
        return 0

    fake = types.ModuleType(module)
    setattr(fake, function, runner)
    monkeypatch.setitem(sys.modules, module, fake)
    return calls


def test_server_uvicorn_dispatches_to_the_runner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_runner(monkeypatch, "velocipy.adapters.uvicorn_runner", "run_uvicorn")
    argv = ["run", "tests.conformance.app:app", "--server", "uvicorn", "--workers", "3"]
    code, _ = run_main(capsys, *argv, "--port", "9001", "--no-access-log", "--log-level", "debug")
    assert code == 0
    assert calls == [
        (
            "tests.conformance.app:app",
            {
                "host": "127.0.0.1",
                "port": 9001,
                "workers": 3,
                "log_level": "debug",
                "access_log": False,
            },
        )
    ]


def test_server_gunicorn_dispatches_to_the_runner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_runner(monkeypatch, "velocipy.adapters.gunicorn_runner", "run_gunicorn")
    argv = ["run", "tests.conformance.app:wsgi", "--server", "gunicorn", "--workers", "2"]
    code, _ = run_main(capsys, *argv, "--threads", "4", "--graceful-timeout", "7")
    assert code == 0
    assert calls == [
        (
            "tests.conformance.app:wsgi",
            {
                "host": "127.0.0.1",
                "port": 8000,
                "workers": 2,
                "threads": 4,
                "log_level": "info",
                "access_log": True,
                "graceful_timeout": 7.0,
            },
        )
    ]


def test_a_missing_runner_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "velocipy.adapters.gunicorn_runner", None)
    code, err = run_main(capsys, "run", "tests.conformance.app:app", "--server", "gunicorn")
    assert code == 2
    assert_one_line_error(err, "--server gunicorn is not available")


@pytest.mark.server
@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "trio"])
def test_python_m_velocipy_run_serves_and_stops_cleanly(loop: str) -> None:
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", "tests.conformance.app:app", "--port", str(port)]
    with run_server([*argv, "--loop", loop], port=port) as server:
        response = httpx.get(f"{server.url}/hello", timeout=5)
        assert response.status_code == 200 and response.json() == {"message": "hello"}
        assert response.headers["server"] == "velocipy"
        assert server.stop() == 0
        logs = server.logs()
    serving_lines = [line for line in logs.splitlines() if "serving" in line]
    assert serving_lines == [
        f"VelociPy serving tests.conformance.app:app on http://127.0.0.1:{port} "
        "(press CTRL+C to stop)"
    ]
    assert '"GET /hello HTTP/1.1" 200' in logs  # the access log


def test_the_console_script_entry_point_has_help() -> None:
    result = subprocess.run(
        [PYTHON, "-m", "velocipy", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 0
    for flag in ("--max-head-size", "--graceful-timeout", "--keepalive-timeout", "--loop"):
        assert flag in result.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("velocipy ") and "Python" in out


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--server", "uvicorn", "--ssl-certfile", "cert.pem"], ["--ssl-certfile", "built-in"]),
        (["--server", "gunicorn", "--proxy-headers"], ["--proxy-headers", "built-in"]),
        (["--header", "no-colon"], ["--header", "NAME:VALUE"]),
        (["--ssl-certfile", "/nonexistent/cert.pem"], ["TLS certificate"]),
        (["--uds", "/tmp/x.sock", "--fd", "3"], ["--uds and --fd"]),
        (["--env-file", "/nonexistent/.env"], ["--env-file"]),
        (["--log-config", "/nonexistent/log.json"], ["--log-config"]),
        (["--limit-max-requests", "0"], ["--limit-max-requests"]),
    ],
)
def test_production_flag_mistakes_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, err = run_main(capsys, "run", "tests.conformance.app:app", *argv)
    assert code == 2
    assert_one_line_error(err, *fragments)


@pytest.mark.server
def test_env_file_log_config_and_app_loggers(tmp_path: Path) -> None:
    """--env-file is loaded before the app is imported; --log-config (YAML) routes the logs."""
    module = tmp_path / "envapp.py"
    module.write_text(
        "import logging, os\n"
        "from velocipy import VelociPy\n"
        "app = VelociPy()\n"
        "GREETING = os.environ['VP_GREETING']\n"
        "@app.get('/hello')\n"
        "async def hello() -> dict[str, str]:\n"
        "    logging.getLogger('envapp').info('app log line %s', GREETING)\n"
        "    return {'message': GREETING}\n"
    )
    (tmp_path / ".env").write_text("VP_GREETING=bonjour\n")
    (tmp_path / "log.yaml").write_text(
        "version: 1\n"
        "disable_existing_loggers: false\n"
        "formatters: {plain: {format: 'YAMLLOG %(name)s %(message)s'}}\n"
        "handlers: {err: {class: logging.StreamHandler, formatter: plain, stream: ext://sys.stderr}}\n"
        "root: {handlers: [err], level: INFO}\n"
    )
    port = free_port()
    argv = [
        PYTHON, "-m", "velocipy", "run", "envapp:app", "--port", str(port),
        "--env-file", str(tmp_path / ".env"), "--log-config", str(tmp_path / "log.yaml"),
    ]  # fmt: skip
    env = {"PYTHONPATH": str(tmp_path)}
    with run_server(argv, port=port, env=env) as server:
        assert httpx.get(f"{server.url}/hello", timeout=5).json() == {"message": "bonjour"}
        assert server.stop() == 0
        logs = server.logs()
    assert "YAMLLOG envapp app log line bonjour" in logs
    assert "YAMLLOG velocipy.access" in logs


@pytest.mark.server
def test_app_loggers_show_at_the_chosen_level_and_the_access_log_has_a_duration(
    tmp_path: Path,
) -> None:
    module = tmp_path / "logapp.py"
    module.write_text(
        "import logging\n"
        "from velocipy import VelociPy\n"
        "app = VelociPy()\n"
        "@app.get('/hello')\n"
        "async def hello() -> dict[str, str]:\n"
        "    logging.getLogger('logapp').info('info from the app')\n"
        "    logging.getLogger('logapp').debug('debug from the app')\n"
        "    return {'message': 'hi'}\n"
    )
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", "logapp:app", "--port", str(port)]
    with run_server(argv, port=port, env={"PYTHONPATH": str(tmp_path)}) as server:
        httpx.get(f"{server.url}/hello", timeout=5)
        assert server.stop() == 0
        logs = server.logs()
    assert "info from the app" in logs and "debug from the app" not in logs
    access = [line for line in logs.splitlines() if '"GET /hello HTTP/1.1" 200' in line]
    assert len(access) == 1 and access[0].rstrip().endswith("ms"), logs
