"""One parameter read by the handler and its dependencies: listed once, required wins."""

from __future__ import annotations

from typing import Annotated

from velocipy import Depends, Header, Query, VelociPy

app = VelociPy()


def owner(key: str, q: str | None = None, x_trace: Annotated[str | None, Header()] = None) -> str:
    return key


def audit(key: str, q: Annotated[str, Query(min_length=2)], who: str = Depends(owner)) -> str:
    return who


@app.post("/things/{key}")
def update(key: str, who: Annotated[str, Depends(audit)], x_trace: Annotated[str, Header()]) -> str:
    return who


@app.get("/things/{key}")
def read(key: str, who: Annotated[str, Depends(owner)], q: int = 0) -> str:
    return who
