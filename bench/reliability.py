"""Faults in tasks, measured on every real server: does one task's BaseException hurt the rest?

For each server and each kind of `BaseException` (from a sync and from an async
task) a fresh server gets `INFLIGHT` slow tasks (other requests' tasks, still
running), then one request whose first task raises and whose next `AFTER` tasks
should still run, then `LATER` more requests with one task each. Reported per
case: whether the server still runs a second after the fault and at the end (or
its exit code), the status of an async and a sync route afterwards, how many of
the in-flight, same-request and later tasks ran, and how the failing task was logged.

    python -m bench.reliability                       # every server and kind, ~3 min
    python -m bench.reliability --servers velocipy --kinds SystemExit --modes async
"""

from __future__ import annotations

import argparse
import re
import time
import uuid
from typing import Any

import httpx

from tests.reliability.app import KINDS
from tests.reliability.servers import SERVERS, serve, wait_until_ran

INFLIGHT, AFTER, LATER = 50, 5, 20


def measure(server_name: str, kind: str, mode: str, inflight_count: int) -> dict[str, Any]:
    key = uuid.uuid4().hex[:6]
    row: dict[str, Any] = {"server": server_name, "kind": kind, "mode": mode}
    with serve(server_name) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/ping").status_code == 200
        inflight = {f"{key}-inflight-{n:03d}" for n in range(inflight_count)}
        for tag in sorted(inflight):
            client.post("/record", params={"tag": tag, "mode": mode, "sleep": 1.0})
        started = time.monotonic()
        client.post(
            "/fail", params={"kind": kind, "mode": mode, "tag": f"{key}-after", "after": AFTER}
        )
        time.sleep(1.0)
        code = server.process.poll()
        row["alive_after_1s"] = "yes" if code is None else f"no (exit {code})"
        for route in ("/ping", "/ping-sync"):
            try:
                row[route] = client.get(route).status_code
            except httpx.HTTPError as error:
                row[route] = type(error).__name__
        later = {f"{key}-later-{n:03d}" for n in range(LATER)}
        for tag in sorted(later):
            try:
                client.post("/record", params={"tag": tag, "mode": mode})
            except httpx.HTTPError:
                break
        after = {f"{key}-after-{n}" for n in range(AFTER)}
        everything = inflight | after | later
        seen = wait_until_ran(server, everything, timeout=5.0)
        row["took_s"] = round(time.monotonic() - started, 1)
        code = server.process.poll()
        row["alive_at_end"] = "yes" if code is None else f"no (exit {code})"
        row["inflight_ran"] = f"{len(seen & inflight)}/{inflight_count}"
        row["same_request_ran"] = f"{len(seen & after)}/{AFTER}"
        row["later_ran"] = f"{len(seen & later)}/{LATER}"
        logs = server.logs()
        row["logged_as"] = _logged_as(logs, kind)
        row["abandoned_lines"] = sum("abandoned" in line for line in logs.splitlines())
    return row


def _logged_as(logs: str, kind: str) -> str:
    """How the failing task's line reads: `failed (<kind> in traceback)`, `interrupted (X)`…"""
    line = r"Background task \S+\.fail(?:_async)? for \S+ \S+ (\w+)(?: \((\w+)\))?"
    match = re.search(line, logs)
    if match is None:
        return "not logged"
    verb, detail = match.groups()
    if verb == "failed":
        shown = re.search(rf"^(?:\w+\.)*{kind}\b", logs, re.MULTILINE) is not None
        return f"failed ({kind} in traceback)" if shown else "failed (type not shown)"
    return f"{verb} ({detail})" if detail else verb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument(
        "--inflight",
        type=int,
        default=INFLIGHT,
        help="slow tasks in flight at the fault (0: one runner thread under gunicorn)",
    )
    options = parser.parse_args()
    columns = [
        "server", "kind", "mode", "alive_after_1s", "alive_at_end", "/ping", "/ping-sync",
        "inflight_ran", "same_request_ran", "later_ran", "logged_as", "abandoned_lines", "took_s",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for server_name in options.servers.split(","):
        for kind in options.kinds.split(","):
            for mode in options.modes.split(","):
                row = measure(server_name, kind, mode, options.inflight)
                print("| " + " | ".join(str(row[c]) for c in columns) + " |", flush=True)


if __name__ == "__main__":
    main()
