"""The request target, byte for byte: a real runtime decodes the path and query exactly once,
for an event handler, a real Flask app and a real FastAPI app, and knows the prefix a proxy
stripped (``X-Forwarded-Prefix``).

HTTP clients normalise what they send (aiohttp's would turn ``%2e`` into ``.``), so these
requests go over a plain socket.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CODE = Path(__file__).parent / "runtime_code"


@dataclass
class RawReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


async def raw_get(port: int, target: bytes, headers: dict[str, str] | None = None) -> RawReply:
    """``GET <target>`` with the target bytes exactly as given, on a fresh connection."""
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [f"{name}: {value}".encode() for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(":", 1) for line in header_lines]
    return RawReply(int(status_line.split()[1]), [(k, v.strip()) for k, v in pairs], body)


@pytest.fixture
def event_runtime(runtime_factory):
    return runtime_factory(CODE, "handlers.echo")


@pytest.fixture
def flask_runtime(runtime_factory):
    return runtime_factory(CODE, "flask_app:app", HANSHU_HANDLER_TYPE="wsgi")


@pytest.fixture
def fastapi_runtime(runtime_factory, tmp_path):
    return runtime_factory(
        CODE,
        "fastapi_app:app",
        HANSHU_HANDLER_TYPE="asgi",
        LIFESPAN_MARKER=str(tmp_path / "lifespan"),
    )


# -- decoded exactly once -------------------------------------------------------------------


async def test_event_path_and_query_are_decoded_exactly_once(event_runtime):
    reply = await raw_get(event_runtime.port, b"/echo/%252e?q=%2541&q=a+b&r=%E4%BD%A0")
    assert reply.status == 200
    event = reply.json()["event"]
    assert event["path"] == "/echo/%2e"  # not "/echo/." (decoded twice)
    assert event["queryParameters"] == {"q": "a b", "r": "你"}
    assert event["multiValueQueryParameters"]["q"] == ["%41", "a b"]  # not "A"
    assert event["rawQueryString"] == "q=%2541&q=a+b&r=%E4%BD%A0"
    event = (await raw_get(event_runtime.port, b"/echo/%E4%BD%A0")).json()["event"]
    assert event["path"] == "/echo/你"


async def test_event_keeps_the_raw_path_where_an_encoded_slash_is_told_apart(event_runtime):
    event = (await raw_get(event_runtime.port, b"/echo/a%2Fb")).json()["event"]
    assert event["path"] == "/echo/a/b"
    assert event["rawPath"] == "/echo/a%2Fb"
    assert event["requestContext"]["path"] == "/echo/a/b"
    assert event["requestContext"]["pathPrefix"] == ""


async def test_flask_sees_the_path_and_query_decoded_once(flask_runtime):
    reply = await raw_get(flask_runtime.port, b"/echo/%252e?q=%2541")
    assert reply.status == 200
    body = reply.json()
    assert body["path"] == "/echo/%2e"
    assert body["rest"] == "%2e"
    assert body["args"] == {"q": ["%41"]}
    assert body["SCRIPT_NAME"] == ""
    body = (await raw_get(flask_runtime.port, b"/echo/%E4%BD%A0")).json()
    assert body["path"] == "/echo/你"
    # PEP 3333's native string: the UTF-8 bytes as latin-1 characters, decoded by the app.
    assert body["PATH_INFO"] == "/echo/你".encode().decode("latin-1")


async def test_flask_environ_has_the_raw_request_uri(flask_runtime):
    body = (await raw_get(flask_runtime.port, b"/echo/%252e?q=%2541")).json()
    assert body["RAW_URI"] == body["REQUEST_URI"] == "/echo/%252e?q=%2541"
    body = (await raw_get(flask_runtime.port, b"/echo/%E4%BD%A0")).json()
    assert body["RAW_URI"] == body["REQUEST_URI"] == "/echo/%E4%BD%A0"


async def test_fastapi_sees_the_path_decoded_once_and_the_raw_path(fastapi_runtime):
    reply = await raw_get(fastapi_runtime.port, b"/echo/%252e?q=%2541")
    assert reply.status == 200
    body = reply.json()
    assert body["path"] == body["url_path"] == "/echo/%2e"
    assert body["raw_path"] == "/echo/%252e"
    assert body["rest"] == "%2e"
    assert body["query"] == {"q": ["%41"]}
    body = (await raw_get(fastapi_runtime.port, b"/echo/%E4%BD%A0")).json()
    assert body["path"] == "/echo/你"
    assert body["raw_path"] == "/echo/%E4%BD%A0"


# -- mounted under a prefix the gateway stripped --------------------------------------------

SHOP = {"X-Forwarded-Prefix": "/shop"}


async def test_event_knows_the_prefix_and_the_path_the_client_asked_for(event_runtime):
    event = (await raw_get(event_runtime.port, b"/echo/%252e?x=1", SHOP)).json()["event"]
    assert event["path"] == "/echo/%2e"  # what the Trigger routes to the function
    assert event["requestContext"]["pathPrefix"] == "/shop"
    assert event["requestContext"]["path"] == "/shop/echo/%2e"


async def test_flask_builds_urls_under_the_prefix(flask_runtime):
    body = (await raw_get(flask_runtime.port, b"/echo/a", SHOP)).json()
    assert body["SCRIPT_NAME"] == "/shop"
    assert body["PATH_INFO"] == "/echo/a"
    assert body["url"] == "/shop/echo/a"
    reply = await raw_get(flask_runtime.port, b"/go", SHOP)
    assert reply.status == 302
    assert reply.header("Location") == "/shop/landing"


async def test_flask_gets_a_utf8_prefix_as_a_native_string(flask_runtime):
    body = (await raw_get(flask_runtime.port, b"/echo/a", {"X-Forwarded-Prefix": "/店"})).json()
    assert body["SCRIPT_NAME"] == "/店".encode().decode("latin-1")


async def test_fastapi_root_path_is_the_prefix_and_path_includes_it(fastapi_runtime):
    body = (await raw_get(fastapi_runtime.port, b"/echo/%252e", SHOP)).json()
    assert body["root_path"] == "/shop"
    assert body["path"] == body["url_path"] == "/shop/echo/%2e"
    assert body["raw_path"] == "/shop/echo/%252e"
    assert body["rest"] == "%2e"  # routed on the path below the prefix
    # An app path that happens to start with the prefix is still routed right.
    reply = await raw_get(fastapi_runtime.port, b"/shop/echo/a", SHOP)
    assert reply.status == 404  # the client asked for /shop/shop/echo/a: stripped once only
    body = (await raw_get(fastapi_runtime.port, b"/echo/shop", SHOP)).json()
    assert body["rest"] == "shop"
    assert body["url_for"] == "/shop/echo/shop"


UNSAFE_PREFIXES = [
    "shop",  # not a path
    "//evil.example",  # protocol-relative: every redirect would leave the site
    "/\\evil.example",  # browsers read a backslash as a slash
    "/shop/../admin",
    "/shop/./x",
    "/shop?x=1",
    "/sh op",
    "/" + "a" * 2000,
]


async def test_an_unsafe_prefix_is_ignored(flask_runtime):
    for prefix in UNSAFE_PREFIXES:
        reply = await raw_get(flask_runtime.port, b"/go", {"X-Forwarded-Prefix": prefix})
        assert reply.status == 302, prefix
        assert reply.header("Location") == "/landing", prefix
