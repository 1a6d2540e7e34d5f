"""Objects the garbage collector tracks per in-flight background task, counted in a real server.

`python -m bench.task_objects [--configs velocipy/own-server-httptools] [--tasks 1000]`
starts each configuration's server with a probe (like `bench.gc_pauses`) and the
signup task sleeping far longer than the count takes (`BENCH_TASK_SLEEP=60`, the
in-flight bound raised). It sends 50 `POST /signup` on 50 keep-alive
connections (the first calls' caches are built, the connections exist), takes a
snapshot, sends `--tasks` more (each leaves one sleeping task behind), takes a
second one, and prints the difference per task, by type. A snapshot is
`gc.collect()` then `gc.get_objects()` counted by type name, made by the probe's
thread on request (a file appears), so it is the server's own heap, with nothing
of the client's in it. Objects frozen at startup (`gc.freeze()`) are not listed
by `gc.get_objects()`, and nothing a request made before the first snapshot is
counted either: the difference is what each sleeping task keeps alive.

Why it matters: the young collections, and the full ones, scan every tracked
object alive; with ~1,000 tasks in flight (1,000 req/s, a 1 s task) what each
keeps alive sets the length of those pauses, which is what a p99 sees
(`bench.latency`, `bench.gc_pauses`).

With `--flow`, the probe also lists one waiting flow's own objects: the new
objects connected to one `Exchange` (what it refers to and what refers to it,
among the objects made since the first snapshot), each with the new objects it
refers to. That says which are ours (the exchange, its flow, the tasks, the
driver) and which the task's own code makes (its coroutine, the sleep's future
and timer), and who keeps each alive.

`python -m bench.task_objects probe FOLDER MODULE ARGS...` is the probe itself.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import runpy
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.configs import BY_NAME, PY, SCENARIOS
from bench.latency import RAISED_BOUND
from bench.servers import Server, free_port, start_all, stop_all

SIGNUP = next(s for s in SCENARIOS if s.name == "signup")
#: Seconds the task sleeps: far longer than sending the requests and counting take.
SLEEP = 60.0
CONNECTIONS = 50


#: The objects alive at the first snapshot (kept, so that no id of theirs is reused).
_before: list[Any] = []


def _flow_objects(objects: list[Any]) -> list[str]:
    """One waiting flow's objects among those new since the first snapshot (see `--flow`).

    The new objects connected to one `Exchange` by references either way, each
    with the types of the flow's objects it refers to.
    """
    old = {id(o) for o in _before}
    new = {id(o): o for o in objects if id(o) not in old}
    exchanges = [o for o in new.values() if type(o).__name__ == "Exchange"]
    if not exchanges:
        return ["(no Exchange among the new objects)"]
    # One from the middle: the first request on each connection after the first snapshot
    # reads its head into a list the connection made before it, an old object.
    exchange = exchanges[len(exchanges) // 2]
    flow = {id(exchange): exchange}
    stack = [exchange]
    while stack:
        thing = stack.pop()
        for near in [*gc.get_referents(thing), *gc.get_referrers(thing)]:
            if id(near) in new and id(near) not in flow:
                flow[id(near)] = near
                stack.append(near)
    lines = []
    for thing in flow.values():
        refers = ", ".join(type(r).__qualname__ for r in gc.get_referents(thing) if id(r) in flow)
        lines.append(f"{type(thing).__qualname__:<26} {repr(thing)[:60]:<62} -> {refers}")
    return sorted(lines)


def _snapshot(name: str, flow: bool) -> dict[str, Any]:
    """Tracked objects by type (and notes in parentheses); the first one is kept."""
    gc.collect()
    objects = gc.get_objects()
    counts: dict[str, Any] = dict(collections.Counter(type(o).__qualname__ for o in objects))
    if name == "before":
        _before[:] = objects
    elif flow:
        counts["(flow)"] = _flow_objects(objects)
    del objects
    times = []
    for _ in range(3):
        started = time.thread_time()
        gc.collect()
        times.append(time.thread_time() - started)
    counts["(full collection, CPU µs)"] = round(min(times) * 1e6)
    counts["(frozen)"] = gc.get_freeze_count()
    return counts


def probe(folder: str, module: str, args: list[str]) -> None:
    """Run `python -m module args...`; write a snapshot for each `N.ask` file in `folder`."""

    def serve_snapshots() -> None:
        base = Path(folder)
        while True:
            time.sleep(0.05)
            for ask in base.glob("*.ask"):
                partial = ask.with_suffix(".partial")
                wants_flow = ask.read_text() == "flow"
                partial.write_text(json.dumps(_snapshot(ask.stem, wants_flow)))
                ask.unlink()
                partial.replace(ask.with_suffix(".json"))

    threading.Thread(target=serve_snapshots, daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _ask(folder: Path, name: str, flow: bool = False) -> dict[str, Any]:
    (folder / f"{name}.ask").write_text("flow" if flow else "")
    answer = folder / f"{name}.json"
    deadline = time.monotonic() + 30
    while not answer.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the probe did not answer within 30 s")
        time.sleep(0.05)
    counts: dict[str, Any] = json.loads(answer.read_text())
    return counts


def _request(port: int) -> bytes:
    body = SIGNUP.body
    head = (
        f"{SIGNUP.method} {SIGNUP.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _exchange(sock: socket.socket, request: bytes) -> None:
    """Send one request and read its whole response (Content-Length framed)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"unexpected response: {head[:80]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)


def count(name: str, tasks: int, flow: bool = False) -> dict[str, Any]:
    """Tracked objects per sleeping task in configuration `name`, by type (`flow`: see `--flow`)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-objects-"))
    argv = BY_NAME[name].command(0)
    if argv[1] != "-m":
        raise SystemExit(f"{name}: not started as `python -m MODULE`")
    port = free_port()
    command = [PY, "-m", "bench.task_objects", "probe", str(folder)]
    command += [argv[2], *BY_NAME[name].command(port)[3:]]
    server = Server(name, command, port)
    server.env = {"BENCH_TASK_SLEEP": str(SLEEP), "BENCH_MAX_TASKS_IN_FLIGHT": str(RAISED_BOUND)}
    try:
        start_all([server])
        if server.problem:
            raise SystemExit(server.problem)
        request = _request(port)
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        for sock in sockets:
            _exchange(sock, request)
        time.sleep(0.3)
        before = _ask(folder, "before")
        started = time.monotonic()
        for number in range(tasks):
            _exchange(sockets[number % CONNECTIONS], request)
        time.sleep(0.3)
        after = _ask(folder, "after", flow)
        if time.monotonic() - started > SLEEP - 5:
            raise SystemExit("too slow: the first tasks may have finished before the count")
        for sock in sockets:
            sock.close()
    finally:
        stop_all([server])
    flow_objects = after.pop("(flow)", [])
    notes = {k: (before.pop(k, 0), after.pop(k, 0)) for k in list(after) if k[0] == "("}
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    per_type = {k: v / tasks for k, v in diff.items() if abs(v) >= tasks // 10 and k[0] != "("}
    return {
        "config": name,
        "tasks": tasks,
        "per_task": sum(diff.values()) / tasks,
        "tracked": (sum(before.values()), sum(after.values())),
        "notes": notes,
        "by_type": dict(sorted(per_type.items(), key=lambda kv: -kv[1])),
        "flow": flow_objects,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["probe"]:
        probe(argv[1], argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.task_objects", description=__doc__)
    parser.add_argument("--configs", default="velocipy/own-server-httptools")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--flow", action="store_true", help="also list one waiting flow's objects (see above)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    results = [count(name, args.tasks, args.flow) for name in names]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        print(f"{result['config']}: {result['per_task']:.1f} tracked objects per sleeping task")
        before, after = result["tracked"]
        print(f"  tracked, not frozen: {before} before, {after} with the tasks sleeping")
        for note, (was, now) in result["notes"].items():
            print(f"  {note}: {was} before, {now} after")
        for kind, per in result["by_type"].items():
            print(f"  {per:6.2f}  {kind}")
        if result["flow"]:
            print(f"  one waiting flow's {len(result['flow'])} objects (type, repr -> refers to):")
            for line in result["flow"]:
                print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
