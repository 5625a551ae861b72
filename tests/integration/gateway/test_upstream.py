"""The gateway's upstream HTTP/1.1 client against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from hanshu_api.platform import Endpoint
from hanshu_gateway.upstream import MalformedReply, UpstreamClosed, UpstreamPool

from tests.support.servers import free_port, serving


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


# Replies from a server in a user's image whose framing two readers could take apart:
# each is a MalformedReply (the gateway answers 502), never a body cut one way.
MALFORMED_REPLIES = {
    "/te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "/cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    "/cl-two": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "/cl-sign": b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
    "/chunk-0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "/chunk-under": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\nabc\r\n0\r\n\r\n",
    "/bare-lf": b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 9\r\nContent-Length: 3\r\n\r\nabc",
    "/space-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 9\r\nContent-Length: 3\r\n\r\nabc",
}
GOOD_REPLIES = {
    "/cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
    "/chunk-ext": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
    b"03;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
}


@pytest.fixture
async def raw_replica() -> AsyncIterator[Endpoint]:
    """A replica that answers each request with the canned reply of its path, as bytes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                writer.write({**MALFORMED_REPLIES, **GOOD_REPLIES}[path])
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Endpoint("127.0.0.1", port)


@pytest.mark.parametrize("path", sorted(MALFORMED_REPLIES))
async def test_a_reply_whose_framing_is_in_doubt_is_malformed(raw_replica, path):
    pool = UpstreamPool()
    with pytest.raises(MalformedReply):
        await pool.request(raw_replica, "GET", path, [], b"", 5)
    pool.close()


async def test_reply_framing_the_rules_accept(raw_replica):
    pool = UpstreamPool()
    assert (await pool.request(raw_replica, "GET", "/cl-list", [], b"", 5)).body == b"abc"
    reply = await pool.request(raw_replica, "GET", "/chunk-ext", [], b"", 5)
    assert reply.body == b"abc"
    assert ("X-T", "1") not in reply.headers  # a trailer is not a header
    pool.close()
