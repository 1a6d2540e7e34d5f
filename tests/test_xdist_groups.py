"""The default run's grouping under xdist (tests/conftest.py): the tests sharing one
instance of a session- or module-scoped fixture run on one worker, which starts it once.

If pytest or xdist change how a group reaches the scheduler, the suite still passes but
every shared server starts on every worker; this test is what notices.
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.servers import PYTHON, ROOT

pytest.importorskip("xdist")


@pytest.mark.slow  # an inner pytest with two workers: a few seconds of imports
def test_tests_sharing_a_fixture_instance_run_on_one_worker_which_starts_it_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "probe.log"
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"]
        + ["tests/support/xdist_probe.py"],
        cwd=ROOT,
        env={**os.environ, "VELOCIPY_PROBE_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "16 passed" in result.stdout, result.stdout
    setups: dict[str, list[str]] = defaultdict(list)
    workers: dict[str, set[str]] = defaultdict(set)
    for line in log.read_text().splitlines():
        event, param, pid = line.split()
        if event == "setup":
            setups[param].append(pid)
        else:
            workers[param].add(pid)
    assert {param: len(pids) for param, pids in setups.items()} == {"a": 1, "b": 1, "c": 1}
    for param in "abc":
        assert workers[param] == set(setups[param]), f"{param}'s tests ran on several workers"
    assert len(set().union(*workers.values())) == 2, "both workers ran tests"
