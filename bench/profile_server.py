"""Profile a server configuration under load: where does a request's time go outside the core?

`python -m bench.profile_server velocipy/own-server signup [--seconds 5] [--task-sleep 1]`
runs the configuration's server under cProfile (pinned like the benchmark),
loads one scenario with wrk (or the pure-Python generator), stops the server
with SIGINT so the profile is written, and prints the functions with the most
own time. Figures are inflated by the profiler; compare them with each other.
Works for the single-process servers (own server, uvicorn), not gunicorn.

What the counts miss (`bench.instructions`, `bench.bytecodes` count work, not
time): `--cpu` loads the configuration and its baseline in interleaved rounds,
at full speed and without a profiler, and reports the CPU time each server
process spent per request (from `/proc/PID/task/*/schedstat`, nanoseconds,
whatever share of the core the server got on a busy machine). `--perf` adds
where that time went, from `perf record -e cpu-clock` on each server: samples
per 1,000 requests by function (the kernel's included), and the interpreter's
loop split by the bytecode handler the sample landed in (`LOAD_ATTR_SLOT`,
`LOAD_GLOBAL_MODULE`, ...: read from the debug information of libpython, when it
has some). A handler that costs more per execution than the baseline's is
waiting on memory or on a mispredicted jump, which no instruction count shows.
`--simulate` counts those under callgrind's cache and branch simulation instead
(repeatable, slow: minutes per configuration): per request, L1 instruction and
data misses and mispredicted conditional and indirect jumps, beside the baseline.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dis
import pstats
import re
import shutil
import signal
import statistics
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from bench.configs import BY_NAME, PY, SCENARIOS, Scenario
from bench.instructions import LONG, SHORT, serve_counted
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


# -- CPU time per request at full speed (`--cpu`, `--perf`) -------------------------------------

#: The interpreter's loop: its samples are split by bytecode handler.
EVAL_LOOP = "_PyEval_EvalFrameDefault"
#: Every handler name the loop may have: bytecodes, their specialised forms (3.11: a private
#: list in `dis`), and the tracing pseudo-instruction.
BYTECODE_NAMES = frozenset(
    [*dis.opname, *getattr(dis, "_specialized_instructions", ()), "DO_TRACING"]
)


def cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of `pid` has run on a CPU so far (`/proc/PID/task/*/schedstat`)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def opcode_labels(dwarf_info: Iterable[str]) -> list[tuple[int, str]]:
    """(source line, handler) of the interpreter's bytecode handlers, sorted by line.

    `dwarf_info` is `objdump --dwarf=info libpython` output: each handler of the
    loop is a C label `TARGET_<NAME>` whose declaration line starts its code. The
    regular expression engine names its handlers so too (`TARGET_SRE_OP_...`, in
    another file): only the names of bytecodes are kept.
    """
    labels: list[tuple[int, str]] = []
    name: str | None = None
    for line in dwarf_info:
        if "DW_TAG_label" in line:
            name = None
        elif "DW_AT_name" in line and (found := re.search(r"\bTARGET_(\w+)", line)):
            name = found.group(1) if found.group(1) in BYTECODE_NAMES else None
        elif name is not None and "DW_AT_decl_line" in line:
            labels.append((int(line.rsplit(":", 1)[1].strip(), 0), name))
            name = None
    return sorted(labels)


def handler_at(labels: list[tuple[int, str]], source_line: int) -> str:
    """The bytecode handler whose code holds `source_line` of ceval.c ("entry" before the first)."""
    index = bisect.bisect_right(labels, (source_line, "\uffff")) - 1
    return labels[index][1] if index >= 0 else "entry (frame set-up, dispatch)"


def perf_samples(report: str) -> dict[str, int]:
    """{key: samples} from `perf report --stdio -F sample,...` output (keys joined by spaces)."""
    samples: dict[str, int] = {}
    for line in report.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        count, _, key = line.strip().partition(" ")
        key = " ".join(key.split())  # column widths differ from one report to the next
        with contextlib.suppress(ValueError):
            samples[key] = samples.get(key, 0) + int(count)
    return samples


def _libpython() -> Path | None:
    folder, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if folder and name and (Path(folder) / name).exists():
        return Path(folder) / name
    return None  # a static interpreter: its symbols are in the executable, not read here


def eval_loop_handlers() -> list[tuple[int, str]]:
    """The loop's handler labels from this interpreter's debug information ([] if it has none)."""
    library = _libpython()
    if library is None or shutil.which("objdump") is None:
        return []
    dump = subprocess.run(
        ["objdump", "--dwarf=info", str(library)], capture_output=True, text=True, timeout=300
    )
    return opcode_labels(dump.stdout.splitlines())


def by_handler(lines: dict[str, int], labels: list[tuple[int, str]]) -> dict[str, int]:
    """Samples of the eval loop by source line (`ceval.c:1234`) summed by bytecode handler."""
    handlers: dict[str, int] = {}
    for where, count in lines.items():
        file, _, number = where.rpartition(":")
        key = handler_at(labels, int(number)) if file == "ceval.c" and number.isdigit() else where
        handlers[key] = handlers.get(key, 0) + count
    return handlers


class Measured:
    """One configuration's server under load: CPU time, requests, and perf samples if asked."""

    def __init__(self, name: str, scenario: Scenario) -> None:
        self.name = name
        self.scenario = scenario
        port = free_port()
        self.server = Server(name, BY_NAME[name].command(port), port)
        self.cpu_per_request: list[float] = []
        self.rates: list[float] = []
        self.functions: dict[str, float] = {}
        self.handlers: dict[str, float] = {}

    def round(self, seconds: float, connections: int, record: Path | None) -> None:
        """Load the server once; record its CPU per request (and perf samples into `record`)."""
        tool = "wrk" if wrk_available() else "python"
        pid = self.server.pid
        perf = None
        if record is not None:
            perf = subprocess.Popen(
                ["perf", "record", "-q", "-e", "cpu-clock", "-o", str(record), "-p", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)  # perf attaches
        before = cpu_ns(pid)
        result = run_load(tool, self.server.port, self.scenario, seconds, connections)
        spent = cpu_ns(pid) - before
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        requests = result["requests"]
        self.cpu_per_request.append(spent / 1000 / requests)
        self.rates.append(result["rps"])
        if record is not None and record.exists():
            self._read_profile(record, requests)

    def _read_profile(self, record: Path, requests: int) -> None:
        def report(*options: str) -> dict[str, int]:
            done = subprocess.run(
                ["perf", "report", "-i", str(record), "--no-children", "-g", "none",
                 "--stdio", *options],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            return perf_samples(done.stdout)

        per_thousand = 1000 / requests
        for key, count in report("--sort", "dso,sym", "-F", "sample,dso,sym").items():
            self.functions[key] = self.functions.get(key, 0.0) + count * per_thousand
        lines = report("--sort", "srcline", "--symbols", EVAL_LOOP, "-F", "sample,srcline")
        for key, count in by_handler(lines, _HANDLERS.labels()).items():
            self.handlers[key] = self.handlers.get(key, 0.0) + count * per_thousand


class _Handlers:
    """The eval loop's handler labels, read once per run (objdump takes a second or two)."""

    def __init__(self) -> None:
        self._labels: list[tuple[int, str]] | None = None

    def labels(self) -> list[tuple[int, str]]:
        if self._labels is None:
            self._labels = eval_loop_handlers()
        return self._labels


_HANDLERS = _Handlers()


def cpu_side_by_side(
    name: str,
    scenario_name: str,
    baseline: str | None,
    rounds: int,
    seconds: float,
    connections: int,
    perf: bool,
    top: int,
) -> Iterator[str]:
    """Lines of the `--cpu` / `--perf` report (see the module docstring)."""
    scenario = next(s for s in SCENARIOS if s.name == scenario_name)
    names = [name] + ([baseline] if baseline and baseline != name else [])
    measured = [Measured(one, scenario) for one in names]
    if perf and shutil.which("perf") is None:
        raise SystemExit("--perf needs `perf` (Debian: apt-get install -y linux-perf)")
    for one in measured:
        one.server.start()
    try:
        for one in measured:
            if not one.server.wait_ready(30):
                raise SystemExit(f"{one.name} did not start: {one.server.problem}")
            problem = one.server.check(scenario)
            if problem:
                raise SystemExit(f"{one.name}: {problem}")
            run_load(
                "wrk" if wrk_available() else "python", one.server.port, scenario, 1, connections
            )
        with tempfile.TemporaryDirectory(prefix="bench-cpu-") as folder:
            for number in range(rounds):
                # Alternate the order: the machine's other load changes within a round too.
                for one in measured if number % 2 == 0 else measured[::-1]:
                    record = Path(folder) / f"{number}-{measured.index(one)}.data" if perf else None
                    one.round(seconds, connections, record)
                    yield (
                        f"round {number + 1}: {one.name:34} {one.cpu_per_request[-1]:7.1f} us CPU"
                        f"/request  {one.rates[-1]:8.0f} req/s"
                    )
    finally:
        for one in measured:
            one.server.stop()
    yield ""
    yield f"{scenario.method} {scenario.path}: server CPU per request, median (min-max) of {rounds}"
    for one in measured:
        cpu = one.cpu_per_request
        yield f"  {one.name:34} {statistics.median(cpu):7.1f} us ({min(cpu):.1f}-{max(cpu):.1f})"
    if len(measured) == 2:
        ours, base = (statistics.median(m.cpu_per_request) for m in measured)
        yield f"  ratio {measured[0].name} / {measured[1].name}: {ours / base:.2f}"
    if perf:
        yield from _profile_lines(measured, rounds, top)


def _profile_lines(measured: list[Measured], rounds: int, top: int) -> Iterator[str]:
    for title, attribute in (("function", "functions"), ("eval-loop handler", "handlers")):
        yield ""
        yield f"cpu-clock samples per 1,000 requests by {title} (each sample: 1/4000 s of CPU):"
        tables = [getattr(m, attribute) for m in measured]
        keys = set().union(*tables)
        base = tables[1] if len(tables) == 2 else {}
        order = sorted(keys, key=lambda k: -abs(tables[0].get(k, 0.0) - base.get(k, 0.0)))
        header = "  ".join(f"{m.name[:24]:>24}" for m in measured)
        yield f"  {header}  {'difference':>10}  {title}"
        for key in order[:top]:
            values = [t.get(key, 0.0) / rounds for t in tables]
            difference = values[0] - values[1] if len(values) == 2 else 0.0
            cells = "  ".join(f"{v:24.2f}" for v in values)
            yield f"  {cells}  {difference:+10.2f}  {key}"
        totals = "  ".join(f"{sum(t.values()) / rounds:24.2f}" for t in tables)
        yield f"  {totals}  {'':>10}  (total)"


# -- callgrind's cache and branch simulation (`--simulate`) --------------------------------------

#: callgrind's events, as its log names them, and what the report calls them.
SIMULATED = {
    "Ir": "instructions",
    "I1mr": "L1 instruction misses",
    "D1mr": "L1 data read misses",
    "D1mw": "L1 data write misses",
    "Bcm": "conditional jumps mispredicted",
    "Bim": "indirect jumps mispredicted",
}


def simulated_events(log: str) -> dict[str, int]:
    """{event: total} from a callgrind log's `Events :` and `Collected :` lines."""
    names = re.search(r"Events\s*:\s*(.*)", log)
    values = re.search(r"Collected\s*:\s*(.*)", log)
    if names is None or values is None:
        raise SystemExit(f"callgrind reported no totals:\n{log[-2000:]}")
    return dict(zip(names.group(1).split(), map(int, values.group(1).split()), strict=True))


def simulate(name: str, scenario: Scenario, requests: int) -> dict[str, int]:
    """callgrind's simulated events while the server of `name` serves `requests`."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as folder:
        log = Path(folder) / "callgrind.log"
        server = Server(
            name,
            ["valgrind", "--tool=callgrind", "--cache-sim=yes", "--branch-sim=yes",
             "--callgrind-out-file=/dev/null", f"--log-file={log}", *BY_NAME[name].command(port)],
            port,
        )  # fmt: skip
        server.env = {"PYTHONHASHSEED": "0"}  # as `bench.instructions` counts
        serve_counted(server, 900, "under valgrind", scenario, requests)
        deadline = time.monotonic() + 10
        while "Collected" not in (text := log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
    return simulated_events(text)


def simulated_side_by_side(name: str, scenario_name: str, baseline: str | None) -> Iterator[str]:
    """Lines of the `--simulate` report: events per request (long run minus short run)."""
    scenario = next(s for s in SCENARIOS if s.name == scenario_name)
    names = [name] + ([baseline] if baseline and baseline != name else [])
    per_request = []
    for one in names:
        short, long = simulate(one, scenario, SHORT), simulate(one, scenario, LONG)
        per_request.append({k: (long[k] - short[k]) / (LONG - SHORT) for k in SIMULATED})
    yield f"{scenario.method} {scenario.path}, per request under callgrind's simulation:"
    yield "  " + "  ".join(f"{one[:28]:>28}" for one in names) + "  event"
    for event, title in SIMULATED.items():
        cells = "  ".join(f"{counts[event]:28,.0f}" for counts in per_request)
        yield f"  {cells}  {title}"


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
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="no profiler: server CPU per request beside the baseline, at full speed",
    )
    parser.add_argument(
        "--perf", action="store_true", help="--cpu, plus where it went (perf record -e cpu-clock)"
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="cache misses and mispredicted jumps per request (callgrind), beside the baseline",
    )
    parser.add_argument("--baseline", help="compared configuration (default: the config's own)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    baseline = args.baseline or BY_NAME[args.config].baseline
    if args.simulate:
        for line in simulated_side_by_side(args.config, args.scenario, baseline):
            print(line, flush=True)
        return
    if args.cpu or args.perf:
        for line in cpu_side_by_side(
            args.config, args.scenario, baseline, args.rounds, args.seconds,
            args.connections, args.perf, args.top,
        ):  # fmt: skip
            print(line, flush=True)
        return
    print(profile_server(args.config, args.scenario, args.seconds, args.top, args.task_sleep))


if __name__ == "__main__":
    main()
