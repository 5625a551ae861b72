"""A FastAPI app as one function: the runtime speaks ASGI to it, lifespan included."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield {"prices": {"tea": 3.5, "coffee": 4.0}}  # loaded once per replica


app = FastAPI(lifespan=lifespan)


class Order(BaseModel):
    item: str
    quantity: int = 1


@app.post("/orders")
async def order(order: Order):
    return {"item": order.item, "quantity": order.quantity}


@app.get("/health")
async def health():
    return {"ok": True}
