"""The broker fixtures' rule: a missing broker skips with its reason printed, except
under `CI=true`, where it fails. Checked by running a RabbitMQ test in a pytest
subprocess pointed at a port where nothing listens."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.servers import PYTHON, ROOT, free_port

TEST = "tests/queues/test_engines.py::test_on_rabbitmq_published_once_and_run_once[celery]"


def run_without_rabbitmq(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["VELOCIPY_TEST_AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    if ci:
        env["CI"] = "true"
    # `-n 0`: one test, run in process (no xdist workers), so `-s` shows what the fixture printed.
    return subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider", "-n", "0", TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # two pytest subprocesses: ~20 s each on a loaded machine
@pytest.mark.parametrize("ci", [False, True], ids=["locally", "under-ci"])
def test_a_missing_rabbitmq_skips_with_its_reason_only_outside_ci(ci: bool) -> None:
    result = run_without_rabbitmq(ci)
    output = result.stdout + result.stderr
    assert "no RabbitMQ at amqp://guest:guest@127.0.0.1:" in output, output
    if ci:
        assert result.returncode == 1, output
        assert "CI=true: a missing broker is a failure" in output
    else:
        assert result.returncode == 0, output
        assert "1 skipped" in output and "skipping: no RabbitMQ" in output
