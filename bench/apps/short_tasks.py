"""An app whose every `POST /work` schedules one 5 ms sync task; counts printed at exit.

Served by gunicorn in `bench/gunicorn_short_tasks.py` (issue 17, defect 4). At
process exit, after the task runner's drain, the worker prints its task counts.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

from velocipy import BackgroundTasks, VelociPy

app = VelociPy()


def five_ms() -> None:
    time.sleep(0.005)


@app.post("/work")
def work(background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(five_ms)
    return "ok"


def _report() -> None:
    counts = app.tasks.snapshot()
    counts.pop("running_names")
    print(f"COUNTS {os.getpid()} {json.dumps(counts)}", file=sys.stderr, flush=True)


# Registered before `app.wsgi` exists, so it runs after the adapter's drain (atexit is LIFO).
atexit.register(_report)
wsgi = app.wsgi
