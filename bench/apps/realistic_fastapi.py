"""The realistic route in FastAPI, as its documentation teaches."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Query

from bench.apps._realistic import OrderIn, OrderOut, internal_order, record_order

app = FastAPI()


async def current_tenant(tenant: Annotated[str, Query(min_length=2, max_length=20)]) -> str:
    return tenant


@app.post("/orders", response_model=OrderOut)
async def create_order(
    order: OrderIn,
    tenant: Annotated[str, Depends(current_tenant)],
    background_tasks: BackgroundTasks,
) -> OrderOut:
    created = internal_order(order, tenant)
    background_tasks.add_task(record_order, created.id)
    return created
