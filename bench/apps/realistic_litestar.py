"""The realistic route in Litestar, written as its documentation teaches
(`Provide` for the dependency, a `BackgroundTask` on the response, pydantic models)."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from litestar.params import Parameter

from bench.apps._realistic import OrderIn, OrderOut, internal_order, record_order


async def current_tenant(
    tenant: Annotated[str, Parameter(query="tenant", min_length=2, max_length=20)],
) -> str:
    return tenant


@post("/orders", dependencies={"tenant_name": Provide(current_tenant)}, status_code=200)
async def create_order(data: OrderIn, tenant_name: str) -> Response[OrderOut]:
    created = internal_order(data, tenant_name)
    # Litestar serialises the declared type; the internal field is dropped by building
    # the public model, Litestar's way of doing what response_model does.
    public = OrderOut(**created.model_dump(exclude={"cost_cents"}))
    return Response(public, background=BackgroundTask(record_order, created.id))


app = Litestar([create_order])
