"""Apps mounted under a Trigger prefix the gateway strips: the real gateway (dev mode) in front
of real runtime processes serving a real FastAPI app, a real Flask app and an event handler.
Every URL the app builds for the browser must stay under the prefix the browser used."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.dev_platform import function, trigger

RUNTIME_CODE = Path(__file__).resolve().parent.parent / "runtime_code"
WARM = {"minReplicas": 1, "scaleToZeroGracePeriod": "60s"}


def app_function(name: str, module: str, handler_type: str, **spec: Any) -> dict[str, Any]:
    """A Function whose inline code is one of the runtime tests' apps, file for file."""
    code = {f"{module}.py": (RUNTIME_CODE / f"{module}.py").read_text()}
    return function(
        name,
        handler=f"{module}:app" if handler_type != "event" else f"{module}.echo",
        handlerType=handler_type,
        code={"inline": code},
        scaling=WARM,
        **spec,
    )


@pytest.fixture
def platform(platform_factory, tmp_path):
    lifespan = {"name": "LIFESPAN_MARKER", "value": str(tmp_path / "lifespan")}
    return platform_factory(
        [
            app_function("shop", "fastapi_app", "asgi", env=[lifespan]),
            app_function("todos", "flask_app", "wsgi"),
            app_function("events", "handlers", "event"),
            trigger("shop", "shop", path="/shop", stripPrefix=True),
            trigger("todos", "todos", path="/flask/", stripPrefix=True),
            trigger("events", "events", path="/ev", stripPrefix=True),
        ]
    )


async def test_fastapi_docs_load_the_schema_from_under_the_prefix(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/shop/docs") as reply:
            assert reply.status == 200
            assert reply.content_type == "text/html"
            page = await reply.text()
        assert "'/shop/openapi.json'" in page
        async with http.get(f"{platform.url}/shop/openapi.json") as reply:
            assert reply.status == 200
            schema = await reply.json()
        assert schema["servers"] == [{"url": "/shop"}]  # "Try it out" calls go under /shop
        assert "/echo/{rest}" in schema["paths"]  # the app's own routes, without the prefix
        async with http.get(f"{platform.url}/shop/echo/a?q=1") as reply:
            assert reply.status == 200
            body = await reply.json()
        assert body["url_path"] == "/shop/echo/a"  # request.url is the URL the client used
        assert body["url_for"] == "/shop/echo/a"


async def test_flask_redirects_stay_under_the_prefix(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/flask/go", allow_redirects=False) as reply:
            assert reply.status == 302
            assert reply.headers["Location"] == "/flask/landing"
        async with http.get(f"{platform.url}/flask/go") as reply:  # and the browser lands
            assert reply.status == 200
            assert await reply.text() == "landed"
        async with http.get(f"{platform.url}/flask/echo/a") as reply:
            body = await reply.json()
        assert body["url"] == "/flask/echo/a"
        assert body["SCRIPT_NAME"] == "/flask"
        assert body["PATH_INFO"] == "/echo/a"


async def test_event_handlers_see_the_prefix_and_the_path_the_client_asked_for(platform):
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/ev/orders/7") as reply:
        event = (await reply.json())["event"]
    assert event["path"] == "/orders/7"
    assert event["requestContext"]["pathPrefix"] == "/ev"
    assert event["requestContext"]["path"] == "/ev/orders/7"


async def _raw_get(port: int, target: bytes) -> tuple[int, bytes]:
    """A request line with the target bytes exactly as given (clients normalise targets)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_the_target_is_decoded_once_end_to_end(platform):
    """Needs the gateway to forward the still-encoded target (issue 8, item 2)."""
    status, body = await _raw_get(platform.port, b"/ev/echo/%252e?q=%2541")
    assert status == 200
    event = json.loads(body)["event"]
    assert event["path"] == "/echo/%2e"
    assert event["queryParameters"] == {"q": "%41"}
    assert event["requestContext"]["path"] == "/ev/echo/%2e"
    status, body = await _raw_get(platform.port, b"/shop/echo/%E4%BD%A0")
    assert status == 200
    assert json.loads(body)["path"] == "/shop/echo/你"
