"""Memory: peak RSS of a server holding many idle keep-alive connections, or many queued tasks.

All the servers a run needs start together (start-up is the slow part of a
short run); each is stopped right after its measurement. Idle connections:
each makes one `GET /hello` (so the server has really served it and keeps it
alive), then stays open and silent while the server's peak RSS (VmHWM, with
its child processes) is read. Queued tasks: the server runs with the signup
task sleeping for minutes, receives that many `POST /signup` requests, and its
RSS is read while every task still waits. Its app runs with `max_tasks_in_flight`
raised above that many (`BENCH_MAX_TASKS_IN_FLIGHT`): with the default bound of
1,000 the server would stop reading requests once 1,000 tasks wait (backpressure,
by design) and the generator would wait out its timeout.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any

from bench.configs import BY_NAME, SCENARIOS, idle_options
from bench.loadgen import run_pyload
from bench.pyload import ResponseReader, build_request
from bench.servers import Server, free_port, rss_kib

SIGNUP = next(s for s in SCENARIOS if s.name == "signup")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def raise_open_files(wanted: int) -> int:
    """Raise this process's (and so its children's) open-file limit toward `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open_idle(port: int, count: int, batch: int = 250) -> list[Stream]:
    request = build_request("GET", "/hello", f"127.0.0.1:{port}", b"")

    async def exchange(reader: asyncio.StreamReader) -> None:
        parser = ResponseReader()
        while not parser.feed(await reader.read(65536)):
            if reader.at_eof():
                raise ConnectionError("closed before answering")

    async def one() -> Stream | None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None
        writer.write(request)
        try:
            await asyncio.wait_for(exchange(reader), 15)
        except (OSError, ConnectionError, asyncio.TimeoutError):
            writer.close()  # never served (a connection cap?): not counted as held
            return None
        return reader, writer

    writers: list[Stream] = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        writers += [s for s in await asyncio.gather(*(one() for _ in range(size))) if s]
    return writers


async def _hold(port: int, count: int, pid: int) -> dict[str, Any]:
    before = rss_kib(pid)
    began = time.monotonic()
    writers = await _open_idle(port, count)
    opened = time.monotonic() - began
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    # A server may drop idle connections (keep-alive timeout): count those still open.
    open_now = sum(1 for reader, _ in writers if not reader.at_eof())
    for _, writer in writers:
        writer.close()
    return {
        "connections": count,
        "open_at_reading": open_now,
        "seconds_to_open": opened,
        "rss_before_kib": before[0],
        "rss_kib": after[0],
        "peak_rss_kib": after[1],
        "served": len(writers),
        "per_connection_kib": (after[0] - before[0]) / max(1, len(writers)),
    }


def idle_server(name: str, count: int) -> Server:
    """The server (not started) for `idle_connections`: its connection caps raised."""
    raise_open_files(count * 2 + 1024)
    port = free_port()
    config = BY_NAME[name]
    return Server(name, config.command(port) + idle_options(config, count), port)


def tasks_server(name: str, count: int) -> Server:
    """The server (not started) for `queued_tasks` of `count` tasks: they sleep for minutes.

    Its in-flight bound is raised above `count`, so all of them are taken.
    """
    port = free_port()
    server = Server(name, BY_NAME[name].command(port), port)
    server.env = {"BENCH_TASK_SLEEP": "600", "BENCH_MAX_TASKS_IN_FLIGHT": str(count * 2)}
    return server


def idle_connections(server: Server, count: int) -> dict[str, Any]:
    """Peak RSS of a started `idle_server` holding `count` idle keep-alive connections."""
    try:
        problem = server.problem or server.check(SCENARIOS[0])
        if problem:
            return {"status": "unavailable", "reason": problem}
        log(f"memory: {server.name} holding {count} idle connections ...")
        result = asyncio.run(_hold(server.port, count, server.pid))
        return {"status": "ok", "reason": "", **result}
    except Exception as error:
        return {"status": "failed", "reason": repr(error)[:300]}
    finally:
        server.stop()


def queued_tasks(server: Server, count: int, connections: int) -> dict[str, Any]:
    """RSS of a started `tasks_server` after `count` requests whose tasks all still sleep."""
    try:
        problem = server.problem or server.check(SIGNUP)
        if problem:
            return {"status": "unavailable", "reason": problem}
        before = rss_kib(server.pid)
        log(f"memory: {server.name} queuing {count} background tasks ...")
        load = run_pyload(server.port, SIGNUP, 600, connections, requests=count - 1)
        time.sleep(0.5)
        after = rss_kib(server.pid)
        return {
            "status": "ok",
            "reason": "",
            "tasks": load["requests"] + 1,
            "errors": load["errors"] + load["non_2xx"],
            "seconds": load["elapsed"],
            "rss_before_kib": before[0],
            "rss_kib": after[0],
            "peak_rss_kib": after[1],
            "per_task_kib": (after[0] - before[0]) / count,
        }
    except Exception as error:
        return {"status": "failed", "reason": repr(error)[:300]}
    finally:
        server.stop(grace=0.2)  # its tasks sleep for minutes: no point waiting for them
