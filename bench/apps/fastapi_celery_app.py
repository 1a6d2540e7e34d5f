"""`POST /signup` + one task in FastAPI, the way its users reach Celery: `.delay()` in the
handler (bench.task_queues). The call blocks the event loop while it talks to Redis.

`BENCH_REDIS_URL` and `BENCH_QUEUE` say where the messages go.
"""

from __future__ import annotations

import os

from celery import Celery
from fastapi import FastAPI
from pydantic import BaseModel

from bench.apps._common import record_signup

celery_app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
celery_app.conf.task_default_queue = os.environ.get("BENCH_QUEUE", "velocipy-bench")

app = FastAPI()


@celery_app.task(name="bench.record_signup")
def record_signup_task(email: str) -> None:
    record_signup(email)


class Signup(BaseModel):
    email: str
    name: str


@app.post("/signup")
async def signup(data: Signup) -> dict[str, str]:
    record_signup_task.delay(data.email)
    return {"status": "ok", "email": data.email}
