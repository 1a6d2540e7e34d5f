"""The first steps of FastAPI's tutorial: path and query parameters, a model body and answer."""

from __future__ import annotations

from pydantic import BaseModel

from velocipy import VelociPy

app = VelociPy()


class Item(BaseModel):
    name: str
    description: str | None = None
    price: float
    tax: float | None = None


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello World"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}


@app.post("/items/", response_model=Item)
async def create_item(item: Item) -> Item:
    return item


@app.put("/items/{item_id}")
async def update_item(item_id: int, item: Item, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, **item.model_dump(), "q": q}
