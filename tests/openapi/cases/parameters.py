"""Parameters with constraints, aliases and documentation keywords, in every source."""

from __future__ import annotations

from typing import Annotated

from velocipy import Cookie, Header, Path, Query, VelociPy

app = VelociPy()


@app.get("/items/{item_id}")
async def read_items(
    item_id: Annotated[int, Path(title="The ID of the item to get", ge=1, le=1000)],
    q: Annotated[
        str | None,
        Query(
            alias="item-query",
            title="Query string",
            description="Query string for the items to search in the database",
            min_length=3,
            max_length=50,
            pattern="^fixedquery$",
            deprecated=True,
        ),
    ] = None,
    size: Annotated[float, Query(gt=0, lt=10.5)] = 1.0,
    tags: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI's own spelling
    hidden: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> dict[str, object]:
    return {"item_id": item_id, "q": q, "size": size, "tags": tags, "hidden": hidden}


@app.get("/agents")
async def read_agent(
    user_agent: Annotated[str | None, Header()] = None,
    x_token: Annotated[list[str] | None, Header()] = None,
    ads_id: Annotated[str | None, Cookie()] = None,
) -> dict[str, object]:
    return {"User-Agent": user_agent, "X-Token values": x_token, "ads_id": ads_id}
