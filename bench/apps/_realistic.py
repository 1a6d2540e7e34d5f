"""What the "realistic route" apps share: the models, the dependency's rule, the task.

`POST /orders?tenant=acme` with a JSON order: a pydantic body with constraints,
a dependency (the tenant, from a constrained query parameter), a response model
that drops an internal field the handler's value carries, and one background
task. Every framework's app does exactly this work, written as its users do.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from bench.apps._common import record_signup_async

#: The request body and the answer every app must give.
BODY = {"sku": "ABC-123", "quantity": 2, "email": "ada@example.com", "note": "ring twice"}
PATH = "/orders?tenant=acme"
EXPECTED = {
    "id": "acme-ABC-123",
    "sku": "ABC-123",
    "quantity": 2,
    "email": "ada@example.com",
    "tenant": "acme",
    "status": "accepted",
}
BODY_BYTES = json.dumps(BODY).encode()


class OrderIn(BaseModel):
    sku: str = Field(min_length=3, max_length=20, pattern=r"^[A-Z]+-[0-9]+$")
    quantity: int = Field(ge=1, le=100)
    email: str = Field(max_length=100)
    note: str | None = Field(default=None, max_length=200)


class OrderOut(BaseModel):
    id: str
    sku: str
    quantity: int
    email: str
    tenant: str
    status: str


class OrderInternal(OrderOut):
    """What the handler builds: one field more, which must not be sent."""

    cost_cents: int


def internal_order(order: OrderIn, tenant: str) -> OrderInternal:
    return OrderInternal(
        id=f"{tenant}-{order.sku}",
        sku=order.sku,
        quantity=order.quantity,
        email=order.email,
        tenant=tenant,
        status="accepted",
        cost_cents=order.quantity * 1999,
    )


async def record_order(order_id: str) -> None:
    """The background task (the shared signup task: appends to a bounded list)."""
    await record_signup_async(order_id)
