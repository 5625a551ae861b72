"""A FastAPI app behind Mangum, exactly as deployed on Lambda + API Gateway (REST)."""

from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from mangum import Mangum
from pydantic import BaseModel

app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int


@app.get("/orders/{order_id}")
def read_order(order_id: int, request: Request, tag: Annotated[list[str] | None, Query()] = None):
    return {
        "order_id": order_id,
        "tags": tag or [],
        "client": request.client.host if request.client else None,
        "source_ip": request.scope["aws.event"]["requestContext"]["identity"]["sourceIp"],
        "request_id": request.scope["aws.context"].aws_request_id,
    }


@app.post("/orders", status_code=201)
def create_order(order: Order, response: Response):
    response.set_cookie("session", "s-1")
    response.set_cookie("theme", "dark")
    return {"item": order.item, "quantity": order.quantity}


handler = Mangum(app, lifespan="off")
