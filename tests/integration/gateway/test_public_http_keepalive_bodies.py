"""Large bodies on a kept-alive connection: what a request's body weighed is never counted
against the next request's head (a 100 KB upload once made the next request on the same
connection a 431 HeadersTooLarge)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hanshu_gateway.public_http import PublicRequest, PublicServer

from tests.support.servers import free_port

LIMIT = 8 * 1024 * 1024
CODE = Path(__file__).resolve().parent.parent / "runtime_code"


def refusal(status: int, error_type: str, message: str) -> web.StreamResponse:
    return web.json_response({"errorType": error_type, "errorMessage": message}, status=status)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async def handler(request: PublicRequest) -> web.StreamResponse:
        body = await request.read(LIMIT, 5)
        return web.Response(body=str(len(body)).encode())

    server = PublicServer(
        handler, refusal, max_body_bytes=LIMIT, header_timeout=5, keepalive_timeout=5
    )
    port = free_port()
    await server.start("127.0.0.1", port)
    try:
        yield port
    finally:
        await server.close(grace=1)


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


@pytest.mark.parametrize("size", [64 * 1024, 100_000, 1024 * 1024])
@pytest.mark.parametrize("chunked", [False, True])
async def test_the_request_after_a_large_body_is_served(port: int, size: int, chunked: bool):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b"x" * size
    if chunked:
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part)
            for part in (body[i : i + 30_000] for i in range(0, size, 30_000))
        )
        head = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + framed + b"0\r\n\r\n")
    else:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(body)
    # In the same write as the end of the body, then on its own: the next request.
    writer.write(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(_reply(reader), 10) == (200, str(size).encode())
    assert await asyncio.wait_for(_reply(reader), 10) == (200, b"0")
    writer.write(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(_reply(reader), 10) == (200, b"0")
    writer.close()


async def test_a_replica_serves_the_request_after_a_large_body(runtime_factory: Any) -> None:
    """The same on a function pod's server: the upload, then the next request."""
    runtime = runtime_factory(CODE, "handlers.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", runtime.port)
    size = 1024 * 1024
    writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    writer.write(b"x" * size + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(_reply(reader), 10))[0] == 200
    assert (await asyncio.wait_for(_reply(reader), 10))[0] == 200
    writer.close()
