"""A request's per-flow state takes no dict of its own, whatever requests came first.

CPython stores the attributes of a class's instances without a dict per instance
while their names are in a table the class's instances share; a name the table
lacks once many instances exist gives each instance that gets it a dict (one more
object per request in flight for the collector to scan, for the process's life).
Which names a request's state gets depends on its route, so this runs in a fresh
interpreter: many requests of one kind first (as health checks are), then
requests of other kinds, each checked while its handler runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import gc
    from typing import Annotated

    from tests.core.handdrive import serve
    from velocipy.core import Application, BackgroundTasks, Depends, Response

    app = Application()
    state_dicts = []


    def count_state_dicts() -> None:
        # A dict holding a request's state fields (not a class's namespace, which names
        # its slots): the state took a dict of its own.
        gc.collect()
        found = [
            o
            for o in gc.get_objects()
            if type(o) is dict and "head" in o and "app" in o and "__module__" not in o
        ]
        state_dicts.append(len(found))


    @app.get("/health")
    def health(verbose: bool = False) -> str:  # a parameter: the general flow, with a state
        return "ok"


    def session() -> object:
        yield "session"  # a cleanup: the state's `exits`


    @app.post("/signup")
    def signup(
        data: dict,
        tasks: BackgroundTasks,
        response: Response,
        db: Annotated[object, Depends(session)],
    ) -> str:
        tasks.add_task(len, "task")
        count_state_dicts()
        return "ok"


    for _ in range(200):
        assert serve(app, "GET", "/health").status == 200
    for _ in range(3):
        outcome = serve(
            app,
            "POST",
            "/signup",
            body=b'{"email": "a@b.c"}',
            headers=[(b"content-type", b"application/json")],
        )
        assert outcome.status == 200, outcome.respond
    print(state_dicts)
    """
)


def test_request_state_takes_no_dict_after_many_requests_of_another_kind() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 0]"
