"""Short sync background tasks under the WSGI adapter's task runner: throughput and drain.

Issue 17, defect 4. Server threads (like gunicorn gthread's) call `app.wsgi` in a
loop; each request schedules one sync task that sleeps `--task-ms`. Reports the
tasks completed per second while requests come in, the backlog left when they
stop, and what a drain with `--grace` seconds finishes and abandons.

    python -m bench.short_tasks --requests 4000 --task-ms 5 --grace 10
"""

from __future__ import annotations

import argparse
import io
import logging
import threading
import time

from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters.task_runner import drain_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--task-ms", type=float, default=5.0)
    parser.add_argument("--server-threads", type=int, default=4)
    parser.add_argument("--task-threads", type=int, default=64)
    parser.add_argument("--grace", type=float, default=10.0)
    options = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    app = VelociPy()
    done = [0]
    pause = options.task_ms / 1000

    def short_task() -> None:
        time.sleep(pause)
        done[0] += 1

    @app.post("/work")
    def work(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(short_task)
        return "ok"

    from velocipy.adapters.wsgi import WSGIAdapter

    wsgi = WSGIAdapter(app, task_threads=options.task_threads)
    per_thread = options.requests // options.server_threads

    def serve() -> None:
        for _ in range(per_thread):
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/work",
                "QUERY_STRING": "",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.input": io.BytesIO(b""),
                "wsgi.url_scheme": "http",
                "CONTENT_LENGTH": "0",
            }
            body = wsgi(environ, lambda status, headers, exc_info=None: lambda data: None)
            for _chunk in body:
                pass
            body.close()  # type: ignore[attr-defined]

    started = time.monotonic()
    servers = [threading.Thread(target=serve) for _ in range(options.server_threads)]
    for thread in servers:
        thread.start()
    for thread in servers:
        thread.join()
    elapsed = time.monotonic() - started
    accepted = per_thread * options.server_threads
    finished_while_serving = done[0]
    runner = wsgi.runner
    assert runner is not None
    print(
        f"accepted {accepted} in {elapsed:.2f}s ({accepted / elapsed:.0f} req/s); "
        f"tasks done meanwhile {finished_while_serving} "
        f"({finished_while_serving / elapsed:.0f} tasks/s); "
        f"backlog {accepted - finished_while_serving}; threads {runner.thread_count}"
    )
    drain_started = time.monotonic()
    complete = drain_all(drain_started + options.grace)
    print(
        f"drain: {'complete' if complete else 'deadline reached'} in "
        f"{time.monotonic() - drain_started:.2f}s; ran {done[0]} of {accepted}, "
        f"abandoned {app.tasks.count('abandoned') + app.tasks.count('running')}"
    )


if __name__ == "__main__":
    main()
