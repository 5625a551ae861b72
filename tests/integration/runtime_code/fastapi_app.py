"""A real FastAPI app served as a function (handler type asgi), with a lifespan."""

import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
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


@app.get("/echo/{rest:path}")
async def echo(rest: str, request: Request):
    scope = request.scope
    return {
        "rest": rest,
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "root_path": scope["root_path"],
        "url_path": request.url.path,
        "query": {key: request.query_params.getlist(key) for key in request.query_params},
        "url_for": str(request.url_for("echo", rest=rest).path),
    }


@app.get("/own-503")
async def own_503():
    # A function's own 503 that looks like the runtime's draining reply, header and all.
    return JSONResponse(
        {"errorType": "Draining", "errorMessage": "our database is draining"},
        status_code=503,
        headers={"X-Hanshu-Draining": "true"},
    )
