"""The gateway's upstream HTTP/1.1 client against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from hanshu_api.platform import Endpoint
from hanshu_gateway.upstream import UpstreamClosed, UpstreamPool

from tests.conftest import free_port, serving


@pytest.fixture
async def server() -> AsyncIterator[tuple[Endpoint, list[str]]]:
    peers: list[str] = []

    async def plain(request: web.Request) -> web.Response:
        peers.append(str(request.transport.get_extra_info("sockname") if request.transport else ""))
        peers.append(str(request.transport.get_extra_info("peername") if request.transport else ""))
        body = await request.read()
        response = web.Response(
            status=201, body=body[::-1], headers={"X-Echo-Path": request.path_qs}
        )
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one ", b"two ", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response(text="never")

    app = web.Application()
    app.router.add_route("*", "/plain", plain)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/empty", empty)
    app.router.add_get("/hang-up", hang_up)
    async with serving(app) as port:
        yield Endpoint("127.0.0.1", port), peers


async def test_content_length_reply_headers_and_keep_alive(server):
    endpoint, peers = server
    pool = UpstreamPool()
    first = await pool.request(endpoint, "POST", "/plain?x=1", [("X-A", "b")], b"abc", 5)
    second = await pool.request(endpoint, "POST", "/plain", [], b"xyz", 5)
    assert first.status == 201
    assert first.body == b"cba"
    assert ("X-Echo-Path", "/plain?x=1") in first.headers
    assert [v for k, v in first.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert second.body == b"zyx"
    assert peers[1] == peers[3], "the second request reused the kept-alive connection"
    pool.close()


async def test_chunked_and_bodyless_replies(server):
    endpoint, _ = server
    pool = UpstreamPool()
    reply = await pool.request(endpoint, "GET", "/chunked", [], b"", 5)
    assert reply.body == b"one two three"
    assert (await pool.request(endpoint, "GET", "/empty", [], b"", 5)).status == 204
    assert (await pool.request(endpoint, "GET", "/chunked", [], b"", 5)).body == b"one two three"
    pool.close()


async def test_refused_closed_and_timed_out(server):
    endpoint, _ = server
    pool = UpstreamPool()
    with pytest.raises(ConnectionRefusedError):
        await pool.request(Endpoint("127.0.0.1", free_port()), "GET", "/", [], b"", 5)
    with pytest.raises(UpstreamClosed):
        await pool.request(endpoint, "GET", "/hang-up", [], b"", 5)
    pool.close()
