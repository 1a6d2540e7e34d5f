"""The "realistic route": VelociPy beside FastAPI (and Litestar, when installed), one route each.

`POST /orders?tenant=acme`: a pydantic body with constraints, a dependency reading
a constrained query parameter, a response model that drops a field the handler's
value carries, and one background task (see `bench/apps/_realistic.py`). Each
framework serves it on uvicorn with httptools, one worker, pinned as in
`bench.run`; every server must first answer exactly the expected JSON. Rounds
are interleaved (A B C A B C ...); the report gives each framework's median
requests/s and VelociPy's ratio to FastAPI (issue 11's target: at least 2x).

    python -m bench.realistic                 # 3 rounds of 10 s
    python -m bench.realistic --quick         # 2 rounds of 3 s
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys

from bench.apps._realistic import BODY_BYTES, EXPECTED, PATH
from bench.configs import Scenario, uvicorn
from bench.loadgen import run_load, wrk_available
from bench.machine import load_average
from bench.servers import Server, free_port, start_all, stop_all

SCENARIO = Scenario("realistic", "POST", PATH, BODY_BYTES, EXPECTED)

#: (name, app module under bench/apps, the package that must be importable)
FRAMEWORKS = (
    ("velocipy", "realistic_velocipy:app", "velocipy"),
    ("fastapi", "realistic_fastapi:app", "fastapi"),
    ("litestar", "realistic_litestar:app", "litestar"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--loadgen", choices=("wrk", "python"), default=None)
    options = parser.parse_args()
    if options.quick:
        options.rounds, options.duration = 2, 3.0
    tool = options.loadgen or ("wrk" if wrk_available() else "python")

    servers: list[Server] = []
    for name, target, package in FRAMEWORKS:
        if importlib.util.find_spec(package) is None:
            print(f"{name}: not installed, skipped")
            continue
        servers.append(Server(name, list(uvicorn(target, "httptools")), free_port()))
    for server in servers:
        server.argv = [part.format(port=server.port) for part in server.argv]
    start_all(servers)
    try:
        usable = []
        for server in servers:
            problem = server.problem or server.check(SCENARIO)
            if problem:
                print(f"{server.name}: unusable: {problem}")
            else:
                usable.append(server)
        rates: dict[str, list[float]] = {server.name: [] for server in usable}
        for server in usable:  # warm up
            run_load(tool, server.port, SCENARIO, 1.0, options.connections)
        for _ in range(options.rounds):
            for server in usable:
                result = run_load(
                    tool, server.port, SCENARIO, options.duration, options.connections
                )
                if result["errors"] or result["non_2xx"]:
                    print(f"{server.name}: {result['errors']} errors, {result['non_2xx']} non-2xx")
                rates[server.name].append(result["rps"])
    finally:
        stop_all(servers)

    print(
        f"POST {PATH} (body constraints + response_model + dependency + task), "
        f"uvicorn httptools, {tool} -c{options.connections}, "
        f"{options.rounds} rounds x {options.duration:.0f}s, load average {load_average()}"
    )
    medians = {name: statistics.median(values) for name, values in rates.items() if values}
    for name, values in rates.items():
        if values:
            spread = f"{min(values):,.0f}-{max(values):,.0f}"
            print(f"  {name:<10} {medians[name]:>9,.0f} req/s  (rounds: {spread})")
    if "velocipy" in medians and "fastapi" in medians:
        ratio = medians["velocipy"] / medians["fastapi"]
        verdict = "met" if ratio >= 2.0 else "NOT met"
        print(f"  velocipy / fastapi = {ratio:.2f}x (target >= 2x: {verdict})")
    if "velocipy" in medians and "litestar" in medians:
        print(f"  velocipy / litestar = {medians['velocipy'] / medians['litestar']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
