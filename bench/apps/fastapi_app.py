"""The scenarios in FastAPI, written as its documentation teaches (pydantic model, `Depends`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI
from pydantic import BaseModel

from bench.apps._common import current_owner_async, record_signup_async

app = FastAPI()


class Signup(BaseModel):
    email: str
    name: str


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.post("/signup")
async def signup(data: Signup, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(record_signup_async, data.email)
    return {"status": "ok", "email": data.email}


@app.get("/items/{item_id}")
async def item(
    item_id: int, owner: Annotated[str, Depends(current_owner_async)], q: str | None = None
) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "owner": owner}
