"""Run `python -m MODULE ARGS...` counting the bytecodes and calls of every Python function.

`python -m bench._trace_bytecodes MODULE ARGS...` is how `bench.bytecodes` starts a
server: the module runs as `__main__` under a trace function that asks for one event
per bytecode, and at exit (SIGINT, SIGTERM or a normal return) the counts are written
as JSON to the file `BENCH_BYTECODES_OUT` names. Tracing slows the server some
hundred times; what it counts does not depend on speed.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
from collections import Counter
from types import FrameType
from typing import Any

ops: Counter[str] = Counter()
calls: Counter[str] = Counter()
_keys: dict[Any, str] = {}
_ROOT = os.getcwd() + os.sep


def _key(code: Any) -> str:
    key = _keys.get(code)
    if key is None:
        # Shorter names: a package by its import path, the project's files from its root.
        filename = code.co_filename.rsplit("site-packages/", 1)[-1].removeprefix(_ROOT)
        key = _keys[code] = f"{filename}:{code.co_firstlineno}:{code.co_qualname}"
    return key


def _trace(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode":
        ops[_key(frame.f_code)] += 1
    elif event == "call":  # also each resumption of a generator or coroutine
        calls[_key(frame.f_code)] += 1
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
    return _trace


def _write() -> None:
    sys.settrace(None)
    with open(os.environ["BENCH_BYTECODES_OUT"], "w") as out:
        json.dump({"ops": ops, "calls": calls}, out)


def main() -> None:
    atexit.register(_write)
    # SIGTERM ends the process without atexit handlers unless it raises.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    module, sys.argv = sys.argv[1], sys.argv[1:]
    threading.settrace(_trace)
    sys.settrace(_trace)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
