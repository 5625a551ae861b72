"""The gateway's public HTTP server on the wire: raw bytes over real loopback sockets, for
what an HTTP client library would hide (pipelining, interim replies, a caller still sending
when the reply comes, Upgrade, a caller gone mid-body, shutdown with requests in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from hanshu_gateway import public_http
from hanshu_gateway.public_http import (
    MAX_PIPELINED,
    PARSE_SLICE,
    BodyTooLarge,
    ClientGone,
    InvalidReply,
    PublicRequest,
    PublicServer,
    encode_reply,
)

from tests.support.helpers import eventually
from tests.support.http_wire_cases import REFUSED_FRAMING, SMUGGLED
from tests.support.servers import free_port

LIMIT = 1024
LARGE = b"x" * (8 * 1024 * 1024)


@dataclass
class Seen:
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    gone: int = 0
    holding: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)


def refusal(status: int, error_type: str, message: str) -> web.StreamResponse:
    return web.json_response({"errorType": error_type, "errorMessage": message}, status=status)


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, Seen, PublicServer]]:
    seen = Seen()

    async def handler(request: PublicRequest) -> web.StreamResponse:
        if request.raw_path == "/refuse":  # answers without reading the body
            return refusal(401, "MissingApiKey", "send a key")
        if request.raw_path == "/crash":
            raise RuntimeError("a bug")
        if request.raw_path == "/hold":
            seen.holding += 1
            await seen.release.wait()
        if request.raw_path.startswith("/large"):  # a reply far over any socket buffer
            close = {"Connection": "close"} if request.raw_path == "/large-close" else {}
            return web.Response(body=LARGE, headers=close)
        if request.raw_path == "/switch":  # what a replica's 101 would become
            return web.Response(status=101, headers={"Upgrade": "h2c"})
        try:
            body = await request.read(LIMIT, 5)
        except BodyTooLarge:
            return refusal(413, "RequestTooLarge", "too large")
        except ClientGone:
            seen.gone += 1
            raise
        seen.requests.append((request.method, request.raw_path, body))
        return web.Response(body=b"got " + body, headers={"X-Path": request.raw_path})

    server = PublicServer(
        handler, refusal, max_body_bytes=LIMIT, header_timeout=5, keepalive_timeout=5
    )
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        yield port, seen, server
    finally:
        seen.release.set()
        await server.close(grace=1)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_reply(reader: asyncio.StreamReader, head_only: bool = False) -> Reply:
    async with asyncio.timeout(10):
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = b"" if head_only else await reader.readexactly(length)
    return Reply(int(lines[0].split(" ")[1]), headers, body)


def post(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    fields = "".join(f"{line}\r\n" for line in extra)
    return (
        f"POST {path} HTTP/{version}\r\nHost: gw.test\r\nContent-Length: {len(body)}\r\n"
        f"{fields}\r\n"
    ).encode() + body


async def test_pipelined_requests_are_answered_in_order_on_one_connection(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(post(f"/{n}", b"body %d" % n) for n in range(20)))
    replies = [await read_reply(reader) for _ in range(20)]
    assert [r.body for r in replies] == [b"got body %d" % n for n in range(20)]
    assert [r.headers["x-path"] for r in replies] == [f"/{n}" for n in range(20)]
    assert all("connection" not in r.headers for r in replies)  # kept alive throughout
    writer.close()


async def test_a_client_that_waits_for_100_continue_gets_it_then_the_reply(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = post("/upload", b"", "Expect: 100-continue").replace(
        b"Content-Length: 0", b"Content-Length: 5"
    )
    writer.write(head)
    interim = await read_reply(reader)
    assert interim.status == 100
    writer.write(b"hello")
    assert (await read_reply(reader)).body == b"got hello"
    writer.close()


async def test_a_reply_before_the_body_is_read_reaches_a_caller_still_sending(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # A body far larger than any socket buffer, to a route that answers without reading it.
    big = 8 * 1024 * 1024
    writer.write(
        f"POST /refuse HTTP/1.1\r\nHost: gw.test\r\nContent-Length: {big}\r\n\r\n".encode()
    )

    async def keep_sending() -> None:
        try:
            for _ in range(big // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            pass

    sender = asyncio.create_task(keep_sending())
    reply = await read_reply(reader)
    assert reply.status == 401, reply
    assert reply.headers["connection"] == "close"  # the rest of that body is not read
    assert await reader.read() == b""  # then an orderly close, not a reset
    sender.cancel()
    writer.close()


async def test_a_body_over_the_limit_is_a_413_the_sender_can_read(served):
    port, seen, _ = served
    for declared in (True, False):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if declared:  # refused on its Content-Length, before the body is read
            writer.write(
                b"POST /big HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10000000\r\n\r\n"
                + b"x" * LIMIT
            )
        else:  # chunked: found over the limit only as it arrives
            chunk = b"x" * 512
            writer.write(
                b"POST /big HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"200\r\n" + chunk + b"\r\n" for _ in range(4))
            )
        reply = await read_reply(reader)
        assert reply.status == 413, (declared, reply)
        assert reply.headers["connection"] == "close"  # the rest is never read
        assert await reader.read() == b""
        writer.close()
    assert seen.requests == []


async def test_an_upgrade_request_is_served_as_http11_with_its_body(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        post("/h2c", b"upgraded?", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c")
        + post("/after", b"next")
    )
    assert (await read_reply(reader)).body == b"got upgraded?"
    assert (await read_reply(reader)).body == b"got next"  # HTTP/1.1 continues
    writer.close()


async def test_http10_head_and_a_crash_in_the_handler(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/old", b"one", "Connection: keep-alive", version="1.0"))
    reply = await read_reply(reader)
    assert reply.headers["connection"] == "keep-alive"
    writer.write(b"HEAD /h HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    head = await read_reply(reader, head_only=True)
    assert head.status == 200
    assert head.headers["content-length"] == str(len(b"got "))
    writer.write(b"GET /crash HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    crashed = await read_reply(reader)
    assert crashed.status == 500
    assert json.loads(crashed.body)["errorType"] == "InternalError"
    assert b"a bug" not in crashed.body  # nothing of the failure reaches the caller
    writer.close()
    # The server goes on serving; HTTP/1.0 without keep-alive closes after its reply.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/old", b"two", version="1.0"))
    assert (await read_reply(reader)).headers["connection"] == "close"
    assert await reader.read() == b""
    writer.close()


async def test_a_head_split_into_small_pieces_is_still_bounded(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: gw.test\r\nX-Long: ")
    for _ in range(70):  # 70 KiB of one header value, 1 KiB at a time
        writer.write(b"a" * 1024)
        await writer.drain()
    reply = await read_reply(reader)
    assert reply.status == 431
    writer.close()


async def test_a_caller_gone_mid_body_is_not_served_and_the_server_goes_on(served):
    port, seen, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/cut", b"").replace(b"Content-Length: 0", b"Content-Length: 100") + b"part")
    await writer.drain()
    await asyncio.sleep(0)  # let the head arrive before the connection closes
    writer.transport.abort()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/ok", b"whole"))
    assert (await read_reply(reader)).body == b"got whole"
    assert seen.gone == 1
    assert [path for _, path, _ in seen.requests] == ["/ok"]
    writer.close()


async def test_shutdown_answers_requests_in_flight_and_takes_no_new_ones(served):
    port, seen, server = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/hold", b"wait"))
    await writer.drain()
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    idle_writer.write(post("/quick", b"q"))
    assert (await read_reply(idle_reader)).status == 200
    closing = asyncio.create_task(server.close(grace=10))
    assert await idle_reader.read() == b""  # an idle kept-alive connection is closed
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    seen.release.set()
    reply = await read_reply(reader)
    assert (reply.status, reply.body) == (200, b"got wait")
    assert reply.headers["connection"] == "close"
    await closing
    writer.close()
    idle_writer.close()


async def test_idle_connections_close_after_the_keepalive_timeout_busy_ones_do_not():
    release = asyncio.Event()

    async def handler(request: PublicRequest) -> web.StreamResponse:
        if request.raw_path == "/hold":
            await release.wait()
        return web.Response(body=b"done")

    server = PublicServer(
        handler, refusal, max_body_bytes=LIMIT, header_timeout=5, keepalive_timeout=0.3
    )
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_writer.write(b"GET /hold HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /quick HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert (await read_reply(reader)).body == b"done"
        async with asyncio.timeout(3):
            assert await reader.read() == b""  # idle past 0.3 s: closed
        # Held three times the keep-alive timeout: answered all the same, then kept.
        await asyncio.sleep(0.9)
        release.set()
        reply = await read_reply(busy_reader)
        assert reply.body == b"done"
        assert "connection" not in reply.headers
        writer.close()
        busy_writer.close()
    finally:
        await server.close(grace=1)


async def test_one_read_of_many_pipelined_requests_is_not_all_held(served):
    port, seen, server = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    tiny = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    writer.write(b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n" + tiny * 2000)  # one write
    await writer.drain()
    await eventually(lambda: len(server.connections) == 1)
    (connection,) = server.connections
    await eventually(lambda: connection._reading_paused)
    # Held at most: the read-ahead limit, and what one parser slice can hold past it.
    assert len(connection._queue) <= MAX_PIPELINED + PARSE_SLICE // len(tiny)
    seen.release.set()
    replies = [await read_reply(reader) for _ in range(2001)]
    assert [reply.status for reply in replies] == [200] * 2001  # every one answered, in turn
    writer.close()


async def test_many_pipelined_upgrade_requests_are_each_answered(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    upgrade = b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    writer.write(upgrade * 1500)
    replies = [await read_reply(reader) for _ in range(1500)]
    assert {reply.status for reply in replies} == {200}
    writer.close()


async def test_a_caller_that_never_reads_its_reply_is_dropped(served, monkeypatch):
    port, _, server = served
    monkeypatch.setattr(public_http, "WRITE_STALL_SECONDS", 0.3)
    for path in (b"/large-close", b"/large"):  # closing after the reply, or kept alive
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        await writer.drain()
        await eventually(lambda: len(server.connections) == 1)
        await eventually(lambda: not server.connections, timeout=10)  # not held forever
        writer.close()


async def test_a_slow_reader_that_keeps_reading_gets_the_whole_reply(served, monkeypatch):
    port, _, _ = served
    monkeypatch.setattr(public_http, "WRITE_STALL_SECONDS", 0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
    writer.write(b"GET /large HTTP/1.1\r\nHost: a\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    received = 0
    async with asyncio.timeout(60):
        while received < len(LARGE):  # slower than the stall limit, never stalled
            received += len(await reader.read(256 * 1024))
            await asyncio.sleep(0.05)
    assert b"Content-Length: %d" % len(LARGE) in head
    assert received == len(LARGE)
    writer.close()


async def test_trailers_are_not_headers_and_cannot_grow_without_end(served):
    port, seen, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    many = "".join(f"X-H-{n}: v\r\n" for n in range(120))
    trailers = "".join(f"X-T-{n}: v\r\n" for n in range(10))
    writer.write(
        (
            f"POST /t HTTP/1.1\r\nHost: a\r\n{many}Transfer-Encoding: chunked\r\n\r\n"
            f"2\r\nok\r\n0\r\n{trailers}\r\n"
        ).encode()
    )
    assert (await read_reply(reader)).body == b"got ok"  # 120 headers and 10 trailers: fine
    # A trailer that never ends, behind a request being answered: refused, and the
    # sender is held up by the connection, not buffered without end.
    writer.write(
        b"GET /hold HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: "
    )
    sent = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(2):
            while sent < 256 * 1024 * 1024:
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
    assert sent < 64 * 1024 * 1024  # what the kernel's buffers take, not all of it
    seen.release.set()
    assert (await read_reply(reader)).status == 200
    assert (await read_reply(reader)).status == 431
    writer.close()


async def test_shutdown_is_not_held_by_requests_behind_a_closing_reply(served):
    port, seen, server = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /hold HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    await writer.drain()
    await eventually(lambda: seen.holding == 1)
    closing = asyncio.create_task(server.close(grace=10))
    seen.release.set()
    assert (await read_reply(reader)).headers["connection"] == "close"
    async with asyncio.timeout(3):  # not the whole grace: nothing is left to answer
        await closing
    writer.close()


async def test_a_reply_that_is_not_a_final_one_is_never_written(served):
    port, _, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /switch HTTP/1.1\r\nHost: a\r\n\r\n")
    reply = await read_reply(reader)
    assert reply.status == 502
    assert json.loads(reply.body)["errorType"] == "InvalidResponse"
    writer.close()
    with pytest.raises(InvalidReply, match="header"):
        encode_reply(
            web.Response(status=200, headers={"Bad Name": "v"}),
            keep_alive=True,
            head_only=False,
            http10=False,
        )


@pytest.mark.parametrize(("request_bytes", "status", "error_type"), REFUSED_FRAMING)
async def test_framing_in_doubt_is_refused_and_the_connection_closed(
    served, request_bytes, status, error_type
):
    port, seen, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes + SMUGGLED)
    reply = await read_reply(reader)
    assert reply.status == status, reply.body
    assert reply.headers["connection"] == "close"
    body = json.loads(reply.body)
    assert body["errorMessage"]
    if error_type is not None:
        assert body["errorType"] == error_type
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # nothing after it was served
    writer.close()
    assert seen.requests == []


async def test_framing_the_rules_accept_is_served(served):
    port, seen, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /a HTTP/1.1\r\nHost: a:8080\r\nTransfer-Encoding:  Chunked \r\n\r\n"
        b"003;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 003\r\n\r\ndef"
        b"POST /c HTTP/1.0\r\nContent-Length: 1\r\n\r\ng"  # HTTP/1.0 may lack a Host
    )
    assert [(await read_reply(reader)).status for _ in range(3)] == [200, 200, 200]
    writer.close()
    assert seen.requests == [("POST", "/a", b"abc"), ("POST", "/b", b"def"), ("POST", "/c", b"g")]


async def test_a_refusal_behind_pipelined_requests_comes_after_their_replies(served):
    port, seen, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        post("/first", b"one")
        + b"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
        + SMUGGLED
    )
    first, refused = await read_reply(reader), await read_reply(reader)
    assert (first.status, first.body) == (200, b"got one")
    assert refused.status == 501
    assert refused.headers["connection"] == "close"
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()
    assert seen.requests == [("POST", "/first", b"one")]
