"""A real FastAPI app served as a function (handler type asgi), with a lifespan."""

import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

MARKER = Path(os.environ.get("LIFESPAN_MARKER", "/tmp/hanshu-lifespan"))


@asynccontextmanager
async def lifespan(app):
    MARKER.write_text("started\n")
    yield {"greeting": "hello from lifespan"}
    with MARKER.open("a") as marker:
        marker.write("stopped\n")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@app.post("/items")
async def create(item: Item, request: Request):
    return {
        "name": item.name,
        "price": item.price,
        "query": request.url.query,
        "path": request.url.path,
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "greeting": request.state.greeting,
        "tags": request.query_params.getlist("tag"),
    }


@app.get("/headers")
async def headers(response: Response, request: Request):
    response.headers["X-App"] = "fastapi"
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"multi": request.headers.getlist("x-multi")}
