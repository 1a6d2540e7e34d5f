"""Route options: tags, summary, description, status codes, extra responses, deprecation."""

from __future__ import annotations

from pydantic import BaseModel

from velocipy import APIRouter, Depends, VelociPy

app = VelociPy(
    title="Shop",
    version="2.5.0",
    description="Sells **things**.",
    openapi_tags=[{"name": "items", "description": "Things we sell."}],
)


class Item(BaseModel):
    id: str
    value: str


class Message(BaseModel):
    message: str


def token() -> str:
    return "t"


@app.get(
    "/items/{item_id}",
    response_model=Item,
    responses={404: {"model": Message, "description": "The item was not found"}},
    tags=["items"],
)
async def read_item(item_id: str) -> Item:
    return Item(id=item_id, value="x")


@app.post(
    "/items/",
    response_model=Item,
    status_code=201,
    tags=["items"],
    summary="Create an item",
    response_description="The created item",
)
async def create_item(item: Item) -> Item:
    """Create an item with all the information.

    - **id**: each item must have one
    - **value**: what it is worth
    """
    return item


@app.get("/elements/", tags=["items"], deprecated=True, operation_id="list_elements")
async def read_elements() -> list[dict[str, str]]:
    return [{"item_id": "Foo"}]


@app.get("/secret", include_in_schema=False)
async def secret() -> dict[str, str]:
    return {"secret": "yes"}


router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(token)])


@router.get("/me")
async def read_me() -> dict[str, str]:
    return {"username": "fakecurrentuser"}


@router.delete("/{username}", status_code=204)
async def delete_user(username: str) -> None:
    return None


app.include_router(router)
