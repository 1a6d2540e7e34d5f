"""The app the browser test opens in Swagger UI and ReDoc."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel

from velocipy import Query, VelociPy

app = VelociPy(title="Greeter", version="1.0.0")


class Greeting(BaseModel):
    message: str


@app.get("/greet/{name}", tags=["greetings"], response_model=Greeting)
def greet(name: str, punctuation: Annotated[str, Query(max_length=3)] = "!") -> Greeting:
    """Greet someone by name."""
    return Greeting(message=f"Hello, {name}{punctuation}")


@app.get("/health", tags=["ops"])
def health() -> dict[str, str]:
    return {"status": "ok"}
