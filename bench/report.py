"""Writes a run's results: `results.json` (everything) and `RESULTS.md` (the tables people read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.configs import (
    BY_NAME,
    CORE_US_TARGET,
    P99_RATIO_TARGET,
    SCENARIO_TITLES,
    TARGETS,
)


def _range(summary: dict[str, float] | None, digits: int = 2, scale: float = 1.0) -> str:
    if not summary:
        return "–"
    median, low, high = (summary[k] * scale for k in ("median", "min", "max"))
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def _fastest(summary: dict[str, float], digits: int = 1) -> str:
    low, median, high = summary["min"], summary["median"], summary["max"]
    return f"{low:.{digits}f} ({median:.{digits}f}, {high:.{digits}f})"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, target, measured, verdict) for every target the run could judge."""
    rows: list[tuple[str, str, str, str]] = []
    throughput = results.get("throughput", {})
    for (name, scenario), minimum in TARGETS.items():
        config = BY_NAME[name]
        what = f"{SCENARIO_TITLES[scenario]}: {name} vs {config.baseline}"
        cell = throughput.get(name, {}).get("scenarios", {}).get(scenario)
        entry = throughput.get(name)
        if entry is None:
            continue
        if entry["status"] != "ok" or not cell or not cell.get("ratio"):
            reason = entry["status"] if entry["status"] != "ok" else (cell or {}).get("status")
            rows.append((what, f"≥ {minimum}", "–", f"not measured ({reason})"))
            continue
        median = cell["ratio"]["median"]
        verdict = "**met**" if median >= minimum else "missed"
        rows.append((what, f"≥ {minimum}", _range(cell["ratio"]), verdict))
    for name, entry in results.get("latency", {}).get("configs", {}).items():
        if not name.startswith("velocipy/"):
            continue  # a reference, shown in the latency table only
        ratio = entry.get("p99_ratio")
        sleep = results["latency"]["task_sleep"]
        what = f"p99 of POST /signup, {sleep:g} s task / no-op task: {name}"
        if ratio is None:
            rows.append((what, f"≤ {P99_RATIO_TARGET}", "–", f"not measured ({entry['status']})"))
        else:
            verdict = "**met**" if ratio <= P99_RATIO_TARGET else "missed"
            rows.append((what, f"≤ {P99_RATIO_TARGET}", f"{ratio:.2f}", verdict))
    core = (results.get("core") or {}).get("scenarios", {}).get("hello")
    if core:
        for flavour in ("async", "sync"):
            overhead = core[f"overhead_{flavour}_us"]
            total = core[f"core_{flavour}_us"]["min"]
            verdict = "**met**" if overhead <= CORE_US_TARGET else "missed"
            rows.append(
                (
                    f"core overhead, GET /hello ({flavour} handler), µs over the same work by hand",
                    f"≤ {CORE_US_TARGET:g} µs",
                    f"{overhead:.1f} µs (whole exchange {total:.1f} µs)",
                    verdict,
                )
            )
    return rows


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    settings = results["settings"]
    out: list[str] = []
    add = out.append
    add("# Benchmark results\n")
    add(
        f"Produced by `{settings['command']}` on {results['finished']} (git {machine['git']}). "
        "Every figure below comes from this one run; ratios divide by a baseline measured "
        "in the same run, round by round, because this machine is noisy. See "
        "[README.md](README.md) for the method.\n"
    )
    add("## Machine\n")
    versions = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    add(f"- CPU: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB RAM")
    add(f"- OS: {machine['os']}; {machine['python']}")
    start, end = machine.get("load_average_start"), machine.get("load_average_end")
    if start is not None:
        busy = max(start, end or 0) > (machine["cores"] or 1)
        add(
            f"- Load average (1 min) at start {start:g}, at end {end if end is not None else '?'}"
            + (
                f": other processes competed for the {machine['cores']} cores during this "
                "run, so expect wide min–max ranges and trust only the same-round ratios"
                if busy
                else ""
            )
        )
    add(f"- Packages: {versions}")
    pin = (
        f"server on core {machine['server_core']}, load generator on core {machine['load_core']}"
        if machine["server_core"] is not None
        else "no pinning (taskset missing or a single core)"
    )
    add(
        f"- Load: {settings['loadgen_label']}, {settings['connections']} keep-alive "
        f"connections; {pin}"
    )
    add(
        f"- Rounds: {settings['rounds']} interleaved rounds of {settings['duration']:g} s per "
        f"configuration and scenario, after {settings['warmup']:g} s of warm-up each"
    )
    ceiling = results.get("ceiling", {})
    if ceiling:
        parts = [f"{tool}: {_num(rps, 0)} req/s" for tool, rps in ceiling.items()]
        add(
            "- Load generator ceiling (GET against `bench.ceiling`, a canned-response "
            f"Python server on the server core): {'; '.join(parts)}. A configuration "
            "near its generator's ceiling is measuring the generator."
        )
    add("")
    rows = target_rows(results)
    if rows:
        add("## Targets (issue 6)\n")
        add("| what | target | measured: median (min–max) | verdict |")
        add("|---|---|---|---|")
        for row in rows:
            add("| " + " | ".join(row) + " |")
        add("")
    throughput = results.get("throughput", {})
    if throughput:
        add("## Throughput\n")
        add(
            "Requests/s and ratio to the configuration's baseline: median (min–max) over the "
            "rounds. Baselines: bare ASGI on uvicorn httptools (ASGI on httptools), bare ASGI "
            "on uvicorn h11 (our own server, and ASGI on h11), bare WSGI on gunicorn gthread.\n"
        )
        scenario_names = settings["scenarios"]
        for scenario in scenario_names:
            add(f"### {SCENARIO_TITLES[scenario]}\n")
            add("| configuration | baseline | req/s | ratio to baseline | p50 ms | p99 ms |")
            add("|---|---|---|---|---|---|")
            for name, entry in throughput.items():
                baseline = BY_NAME[name].baseline or "(baseline)"
                cell = entry["scenarios"].get(scenario)
                if entry["status"] != "ok" or not cell:
                    add(f"| {name} | {baseline} | {entry['status']} | – | – | – |")
                    continue
                if cell["status"] != "ok" and not cell.get("rps"):
                    add(f"| {name} | {baseline} | {cell['status']} | – | – | – |")
                    continue
                add(
                    f"| {name} | {baseline} | {_range(cell['rps'], 0)} | "
                    f"{_range(cell.get('ratio'))} | "
                    f"{_num((cell.get('p50_ms') or {}).get('median'))} | "
                    f"{_num((cell.get('p99_ms') or {}).get('median'))} |"
                )
            add("")
        problems = [
            (name, entry["status"], entry["reason"])
            for name, entry in throughput.items()
            if entry["status"] != "ok"
        ] + [
            (f"{name} {scenario}", cell["status"], cell["reason"])
            for name, entry in throughput.items()
            for scenario, cell in entry["scenarios"].items()
            if cell["reason"]
        ]
        if problems:
            add("Not measured, or measured with errors:\n")
            for what, status, reason in problems:
                add(f"- {what}: {status}: {reason[:300]}")
            add("")
    latency = results.get("latency")
    if latency:
        add("## Latency under background tasks\n")
        floor = latency["generator_floor"]
        warmup = latency.get("warmup") or 0
        add(
            f"POST /signup at a fixed {latency['rate']:g} req/s over the pure-Python generator's "
            f"keep-alive connections for {latency['duration']:g} s"
            + (f" (after {warmup:g} s of load not recorded)" if warmup else "")
            + f", {latency['rounds']} rounds alternating between a server whose task does "
            f"nothing and one whose task sleeps {latency['task_sleep']:g} s. Medians over "
            "rounds; the ratio by round is the median (min–max) of each round's own. "
            f"Generator noise floor (same load against `bench.ceiling`): "
            f"p50 {_num(floor['p50_ms'])} ms, p99 {_num(floor['p99_ms'])} ms: differences of "
            "that order are the generator's, not the server's. Configurations other than "
            "VelociPy's are references: the same task with no framework, and on a peer."
        )
        if floor.get("p99_ratio") is not None:
            add(
                "The same canned-response server measured twice a round (first and last) "
                f"reads a p99 ratio of {_num(floor['p99_ratio'])} (of medians), "
                f"{_range(floor.get('p99_ratio_by_round'))} by round: what this method "
                "reports as a difference when there is none."
            )
        bound = latency.get("max_tasks_in_flight")
        if bound:
            add(
                f"The VelociPy apps run with `max_tasks_in_flight={bound:,}` "
                "(`BENCH_MAX_TASKS_IN_FLIGHT`): about 1,000 tasks are in flight at this load, "
                "the default bound, where the servers would stop reading requests "
                "(backpressure) and this would measure that instead."
            )
        add("")
        task = f"{latency['task_sleep']:g} s task"
        add(f"| configuration | p50 no-op | p50 {task} | p50 ratio | p99 no-op | p99 {task} "
            "| p99 ratio | p99 ratio by round |")  # fmt: skip
        add("|---|---|---|---|---|---|---|---|")
        for name, entry in latency["configs"].items():
            if entry["status"] != "ok":
                add(f"| {name} | {entry['status']} | | | | | | |")
                continue
            idle, sleeping = entry["idle"], entry["sleeping"]
            add(
                f"| {name} | {_num(idle['p50_ms'])} ms | {_num(sleeping['p50_ms'])} ms | "
                f"{_num(entry['p50_ratio'])} | {_num(idle['p99_ms'])} ms | "
                f"{_num(sleeping['p99_ms'])} ms | {_num(entry['p99_ratio'])} | "
                f"{_range(entry.get('p99_ratio_by_round'))} |"
            )
        default = latency.get("default_bound")
        if default and default.get("status") == "ok":
            add(
                f"| {default['config']}, default bound (backpressure) | | "
                f"{_num(default['p50_ms'])} ms | | | {_num(default['p99_ms'])} ms | | |"
            )
        add("")
    core = results.get("core")
    if core and "scenarios" not in core:
        add(f"## Core overhead (no I/O)\n\nFailed: {core.get('reason')}\n")
    elif core:
        add("## Core overhead (no I/O)\n")
        add(
            "Microseconds per request through `app.exchange(...)` driven by a minimal sync "
            "loop (`bench/core_overhead.py`: no TestClient, no event loop), background task "
            "included: the fastest of "
            f"{core['repeat']} × {core['number']:,} requests (timeit's advice: slower repeats "
            "measure other processes), with the median and slowest in brackets. *By hand* is "
            "the same work done without a framework (the bare apps' logic); overhead = core "
            "− by hand, fastest against fastest. An empty function call costs "
            f"{core['empty_call_us']['min'] * 1000:.0f} ns.\n"
        )
        add("| scenario | by hand | core, async handlers | overhead | core, sync handlers "
            "| overhead |")  # fmt: skip
        add("|---|---|---|---|---|---|")
        for scenario, row in core["scenarios"].items():
            add(
                f"| {SCENARIO_TITLES[scenario]} | {_fastest(row['by_hand_us'])} | "
                f"{_fastest(row['core_async_us'])} | {row['overhead_async_us']:.1f} | "
                f"{_fastest(row['core_sync_us'])} | {row['overhead_sync_us']:.1f} |"
            )
        add("")
    memory = results.get("memory")
    if memory:
        add("## Memory\n")
        add("| measurement | configuration | result | RSS before | RSS with load | peak RSS | "
            "per item |")  # fmt: skip
        add("|---|---|---|---|---|---|---|")
        for row in memory:
            if row["status"] != "ok":
                add(f"| {row['what']} | {row['config']} | {row['status']}: "
                    f"{row['reason'][:120]} | | | | |")  # fmt: skip
                continue
            per = row.get("per_connection_kib", row.get("per_task_kib"))
            add(
                f"| {row['what']} | {row['config']} | {row.get('note', '')} | "
                f"{row['rss_before_kib'] / 1024:.1f} MiB | {row['rss_kib'] / 1024:.1f} MiB | "
                f"{row['peak_rss_kib'] / 1024:.1f} MiB | {per:.2f} KiB |"
            )
        add("")
    profile = results.get("profile")
    if isinstance(profile, str):
        add("## Where the core's time goes (cProfile, GET /hello, async handler)\n")
        add("```")
        add(profile.strip())
        add("```\n")
    return "\n".join(out)


def write(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "results.json"
    md_path = directory / "RESULTS.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results))
    return md_path, json_path
