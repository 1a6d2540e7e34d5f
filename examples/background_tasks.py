"""Every example from the background-tasks guide, as one runnable app.

Serve it with any of:

    velocipy run examples.background_tasks:app          # the built-in server
    uvicorn examples.background_tasks:app               # ASGI
    gunicorn examples.background_tasks:wsgi -k gthread  # WSGI

then, for instance:

    curl -X POST localhost:8000/signup -H 'content-type: application/json' \\
         -d '{"email": "ada@example.com"}'
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from velocipy import BackgroundTasks, Depends, VelociPy

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

app = VelociPy()


# -- Scheduling post-response work ------------------------------------------------------------


async def send_welcome_email(email: str) -> None:
    await asyncio.sleep(0.1)  # Simulate an API call.
    print(f"Sent welcome email to {email}")


@app.post("/signup")
async def signup(
    data: dict[str, Any],
    background_tasks: BackgroundTasks,
) -> dict[str, str]:
    email = data.get("email", "user@example.com")
    background_tasks.add_task(send_welcome_email, email)
    return {"status": "ok", "email": email}


# -- Queuing multiple tasks: they run in the order added --------------------------------------


async def log_event(email: str) -> None:
    print(f"Logged signup for {email}")


@app.post("/newsletter")
async def newsletter(
    data: dict[str, Any],
    background_tasks: BackgroundTasks,
) -> dict[str, str]:
    email = data["email"]
    background_tasks.add_task(log_event, email)
    background_tasks.add_task(send_welcome_email, email)
    return {"status": "subscribed"}


# -- Passing extra arguments and keyword arguments --------------------------------------------


async def notify_admin(event: str, *, priority: str = "normal") -> None:
    print(f"[{priority}] Admin notified: {event}")


@app.post("/report")
async def report(
    background_tasks: BackgroundTasks,
) -> dict[str, str]:
    background_tasks.add_task(
        notify_admin,
        "user_report",
        priority="high",
    )
    return {"status": "reported"}


# -- Error handling: a failing task is logged, the others still run ---------------------------


async def flaky_task() -> None:
    raise RuntimeError("Something went wrong in the underbrush")


@app.post("/fire-and-forget")
async def fire_and_forget(
    background_tasks: BackgroundTasks,
) -> dict[str, str]:
    background_tasks.add_task(flaky_task)
    return {"status": "accepted"}


# -- A dependency prepares a helper; the route schedules the work -----------------------------
# (The guide's version used `Analytics` before defining it; here the class comes first.)


class Analytics:
    async def track(self, event: str) -> None:
        print(f"Tracked: {event}")


async def analytics() -> Analytics:
    return Analytics()


@app.post("/checkout")
async def checkout(
    background_tasks: BackgroundTasks,
    analytics: Annotated[Analytics, Depends(analytics)],
) -> dict[str, str]:
    background_tasks.add_task(analytics.track, "checkout_complete")
    return {"status": "confirmed"}


# For WSGI servers: `gunicorn examples.background_tasks:wsgi`.
wsgi = app.wsgi
