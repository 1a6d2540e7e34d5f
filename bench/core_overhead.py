"""Core overhead: microseconds per request through VelociPy's pure core, with no I/O at all.

A minimal sync loop drives each exchange (no TestClient, no event loop: an
async handler that never suspends finishes on its first `send(None)`),
including the response's background task and cleanup. For scale it is set
beside the same work done by hand (the bare apps' logic, no framework) and an
empty function call, all timed with `timeit`.

`python -m bench.core_overhead [--profile hello]` prints the figures, or a
cProfile of the driver loop for one scenario (what dominates the core's time).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import statistics
import timeit
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

from bench.apps._common import current_owner, record_signup, valid_signup
from bench.apps.velocipy_app import make_app
from bench.configs import SCENARIOS, Scenario
from velocipy.core import Application, Call, Done, ReadBody, RequestHead, Respond


def finish(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never suspends (no I/O happens here)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("a benchmark coroutine suspended; the core loop has no event loop")


def serve(app: Application, head: RequestHead, body: bytes) -> Respond:
    """Drive one exchange to `Done` with plain calls; return its response."""
    exchange = app.exchange(head)
    effect: Any = exchange.start()
    response: Respond | None = None
    while True:
        kind = type(effect)
        if kind is Call:
            try:
                result = effect.fn(*effect.args, **effect.kwargs)
                if effect.is_async:
                    result = finish(result)
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(result)
        elif kind is ReadBody:
            effect = exchange.send(body)
        elif kind is Respond:
            response = effect
            effect = exchange.send(None)
        elif kind is Done:
            assert response is not None
            return response
        else:
            raise RuntimeError(f"unexpected effect {effect!r}")


def head_for(scenario: Scenario) -> RequestHead:
    """The head an adapter would build for the scenario's request (as wrk sends it)."""
    path, _, query = scenario.path.partition("?")
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")]
    if scenario.body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(scenario.body)).encode()),
        ]
    return RequestHead(
        method=scenario.method,
        path=path,
        query_string=query.encode(),
        headers=tuple(headers),
        client=("127.0.0.1", 50000),
        server=("127.0.0.1", 8000),
    )


def by_hand(scenario: Scenario) -> Callable[[], bytes]:
    """The scenario's work without a framework (what the bare apps do, minus I/O)."""
    if scenario.name == "hello":
        return lambda: json.dumps({"message": "hello"}).encode()
    if scenario.name == "signup":
        body = scenario.body

        def signup() -> bytes:
            data = json.loads(body)
            if not valid_signup(data):
                raise ValueError("invalid")
            out = json.dumps({"status": "ok", "email": data["email"]}).encode()
            record_signup(data["email"])
            return out

        return signup
    path, _, query = scenario.path.partition("?")

    def items() -> bytes:
        item_id = int(path[len("/items/") :])
        q = parse_qs(query).get("q", [None])[0]
        return json.dumps({"item_id": item_id, "q": q, "owner": current_owner()}).encode()

    return items


def _empty() -> None:
    return None


def per_call_us(fn: Callable[[], Any], number: int, repeat: int) -> dict[str, float]:
    """Microseconds per call: median and min over `repeat` runs of `number` calls."""
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)]
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def measure(number: int = 20_000, repeat: int = 5) -> dict[str, Any]:
    """Core µs per request for each scenario and flavour, beside the same work by hand."""
    apps = {"async": make_app(asynchronous=True), "sync": make_app(asynchronous=False)}
    results: dict[str, Any] = {
        "empty_call_us": per_call_us(_empty, number * 10, repeat),
        "number": number,
        "repeat": repeat,
        "scenarios": {},
    }
    for scenario in SCENARIOS:
        head = head_for(scenario)
        row: dict[str, Any] = {"by_hand_us": per_call_us(by_hand(scenario), number, repeat)}
        for flavour, app in apps.items():
            response = serve(app, head, scenario.body)
            if response.status != 200 or json.loads(response.body) != scenario.expected:
                raise RuntimeError(f"{scenario.name}: core answered {response!r}")
            body = scenario.body
            core = per_call_us(functools.partial(serve, app, head, body), number, repeat)
            row[f"core_{flavour}_us"] = core
            # fastest against fastest: slower repeats measure whatever else the machine ran
            row[f"overhead_{flavour}_us"] = core["min"] - row["by_hand_us"]["min"]
        results["scenarios"][scenario.name] = row
    return results


def profile(scenario_name: str, number: int = 50_000, top: int = 25) -> str:
    """cProfile of the driver loop for one scenario (async flavour), sorted by own time."""
    scenario = next(s for s in SCENARIOS if s.name == scenario_name)
    app = make_app(asynchronous=True)
    head = head_for(scenario)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        serve(app, head, scenario.body)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", metavar="SCENARIO", help="print a cProfile instead")
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    if args.profile:
        print(profile(args.profile, number=args.number))
    else:
        print(json.dumps(measure(number=args.number), indent=2))


if __name__ == "__main__":
    main()
