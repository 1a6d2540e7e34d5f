"""This tree against an older one, side by side: `python -m bench.versus REV`.

A ratio in `bench/RESULTS.md` compares a configuration with a bare app measured
in the same run; a run on another day, or on another machine, has another bare
app. To tell whether the code got slower, this runs the benchmark app of both
trees at once: `git archive REV` into a temporary folder, then the bare ASGI app,
REV's VelociPy app and this tree's, all on uvicorn (httptools, uvloop), loaded
with wrk in interleaved rounds (GET /hello and POST /signup + task). It prints
each tree's ratio to the bare app and this tree's ratio to REV's, per round and as
a median (min–max). Needs wrk, git, and a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.configs import SCENARIOS
from bench.loadgen import run_load
from bench.servers import ROOT, free_port

SHOWN = ("hello", "signup")


def export(rev: str, into: Path) -> None:
    """The files of `rev`, without the working tree's changes, in `into`."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)


def start(tree: Path, app: str) -> tuple[int, subprocess.Popen[bytes]]:
    """uvicorn serving `app` imported from `tree` (its folder first on the path)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--http", "httptools",
         "--loop", "uvloop", "--no-access-log", "--log-level", "warning"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return port, process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{app} from {tree} did not listen within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the older tree: a commit, tag or branch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    args = parser.parse_args()
    scenarios = [scenario for scenario in SCENARIOS if scenario.name in SHOWN]
    with tempfile.TemporaryDirectory(prefix="bench-versus-") as folder:
        old = Path(folder)
        export(args.rev, old)
        servers = {
            "bare": start(ROOT, "bench.apps.bare_asgi:app"),
            args.rev: start(old, "bench.apps.velocipy_app:app"),
            "this tree": start(ROOT, "bench.apps.velocipy_app:app"),
        }
        rps: dict[tuple[str, str], list[float]] = {}
        try:
            for number in range(args.rounds):
                for scenario in scenarios:
                    for name, (port, _) in servers.items():
                        result = run_load("wrk", port, scenario, args.duration, 50)
                        rps.setdefault((name, scenario.name), []).append(result["rps"])
                print(f"round {number + 1}/{args.rounds} done", flush=True)
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(10)
    for scenario in scenarios:
        for name in (args.rev, "this tree"):
            print(scenario.name, name, "/ bare:", _summary(rps, name, "bare", scenario.name))
        print(
            scenario.name,
            f"this tree / {args.rev}:",
            _summary(rps, "this tree", args.rev, scenario.name),
        )


def _summary(rps: dict[tuple[str, str], list[float]], top: str, bottom: str, scenario: str) -> str:
    ratios = [a / b for a, b in zip(rps[(top, scenario)], rps[(bottom, scenario)], strict=True)]
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"


if __name__ == "__main__":
    main()
