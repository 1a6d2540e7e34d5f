"""Profile a server configuration under load: where does a request's time go outside the core?

`python -m bench.profile_server velocipy/own-server signup [--seconds 5] [--task-sleep 1]`
runs the configuration's server under cProfile (pinned like the benchmark),
loads one scenario with wrk (or the pure-Python generator), stops the server
with SIGINT so the profile is written, and prints the functions with the most
own time. Figures are inflated by the profiler; compare them with each other.
Works for the single-process servers (own server, uvicorn), not gunicorn.
"""

from __future__ import annotations

import argparse
import pstats
import signal
import tempfile
from pathlib import Path

from bench.configs import BY_NAME, PY, SCENARIOS
from bench.loadgen import run_load, wrk_available
from bench.servers import Server, free_port


def profile_server(
    name: str, scenario_name: str, seconds: float, top: int, task_sleep: float = 0.0
) -> str:
    config = BY_NAME[name]
    scenario = next(s for s in SCENARIOS if s.name == scenario_name)
    port = free_port()
    argv = config.command(port)
    if argv[:2] != [PY, "-m"]:
        raise SystemExit(f"{name} is not started as `python -m ...`; cannot profile it")
    out = Path(tempfile.mkdtemp(prefix="bench-profile-")) / "server.prof"
    server = Server(name, [PY, "-m", "cProfile", "-o", str(out), *argv[1:]], port)
    server.env = {"BENCH_TASK_SLEEP": str(task_sleep)}
    server.start()
    try:
        if not server.wait_ready(30):
            raise SystemExit(f"{name} did not start: {server.problem}")
        problem = server.check(scenario)
        if problem:
            raise SystemExit(problem)
        tool = "wrk" if wrk_available() else "python"
        result = run_load(tool, port, scenario, seconds, 50)
    finally:
        # SIGINT: uvicorn re-raises the stop signal after shutting down, and only an
        # interrupt (KeyboardInterrupt) still lets cProfile write its file.
        server.stop(grace=15.0 + task_sleep, sig=signal.SIGINT)
    if not out.exists():
        raise SystemExit("the server wrote no profile (did it exit cleanly on SIGTERM?)")
    text = Path(out).with_suffix(".txt")
    with text.open("w") as stream:
        stats = pstats.Stats(str(out), stream=stream)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
    header = f"{name} {scenario.method} {scenario.path}: {result['rps']:.0f} req/s under cProfile\n"
    return header + text.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(BY_NAME))
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--task-sleep",
        type=float,
        default=0.0,
        help="seconds the signup task sleeps (pending tasks)",
    )
    args = parser.parse_args()
    print(profile_server(args.config, args.scenario, args.seconds, args.top, args.task_sleep))


if __name__ == "__main__":
    main()
