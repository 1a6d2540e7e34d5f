"""Query, header and cookie models: one pydantic model gathering several parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from velocipy import Cookie, Header, Query, VelociPy

app = VelociPy()


class Filters(BaseModel):
    model_config = {"extra": "forbid"}

    limit: int = Field(10, gt=0, le=100, description="How many at most")
    order_by: Literal["created", "price"] = "created"
    tags: list[str] = []
    search: str | None = Field(None, alias="q", min_length=2, examples=["shoe"])


class CommonHeaders(BaseModel):
    x_token: str
    user_agent: str | None = Field(None, title="Agent")
    traceparent: list[str] = []


class Session(BaseModel):
    session_id: str
    theme: Literal["light", "dark"] = "light"


@app.get("/items")
def list_items(filters: Annotated[Filters, Query()]) -> dict[str, object]:
    return filters.model_dump()


@app.get("/headers")
def read_headers(
    headers: Annotated[CommonHeaders, Header()], q: int | None = None
) -> dict[str, object]:
    return headers.model_dump()


@app.get("/raw-headers")
def read_raw_headers(
    headers: Annotated[CommonHeaders, Header(convert_underscores=False)],
) -> dict[str, object]:
    return headers.model_dump()


@app.get("/session")
def read_session(session: Annotated[Session, Cookie()]) -> dict[str, object]:
    return session.model_dump()
