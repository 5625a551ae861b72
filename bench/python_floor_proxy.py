"""The Python floor: the leanest proxy Python can be on the gateway's stack (uvloop,
httptools), the second peer of the gateway's warm path.

No routing, limits, metrics, queue, retries or timeouts; no task or future per request:
a request is written upstream from the parser's callback, and the reply back from the
upstream connection's. Each caller connection gets its own upstream connection. It adds
the headers the gateway adds (X-Forwarded-*, X-Request-Id), so the replica does the same
work behind either. What it costs per request is as low as the gateway's Python could go
here; the gateway's own figure minus this one is what its features cost.

Made for the benchmark's load only: bodyless requests, replies framed by Content-Length.

    python bench/python_floor_proxy.py LISTEN_PORT UPSTREAM_HOST:UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httptools
import uvloop

if TYPE_CHECKING:
    from common import RunningPeer

_ids = itertools.count(1)


class _Upstream(asyncio.Protocol):
    def __init__(self, caller: _Caller) -> None:
        self.caller = caller
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.caller.upstream_ready(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        length = 0
        kept = [lines[0]]
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() not in (b"connection", b"keep-alive", b"x-request-id"):
                kept.append(line)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        kept.append(b"X-Request-Id: %d" % next(_ids))
        kept.append(b"Content-Length: %d\r\n\r\n" % length)
        self.caller.reply(b"\r\n".join(kept) + body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.caller.close()


class _Caller(asyncio.Protocol):
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.upstream_address = upstream
        self.upstream: _Upstream | None = None
        self.transport: asyncio.Transport | None = None
        self.connecting: asyncio.Task[object] | None = None
        self.pending: list[bytes] = []  # requests parsed before the upstream connected
        self.url = b""
        self.headers: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = self.upstream_address
        loop = asyncio.get_running_loop()
        # Kept: a task only the loop refers to may be collected before it runs.
        self.connecting = loop.create_task(
            loop.create_connection(lambda: _Upstream(self), host, port)
        )

    def upstream_ready(self, upstream: _Upstream) -> None:
        self.upstream = upstream
        assert upstream.transport is not None
        for request in self.pending:
            upstream.transport.write(request)
        self.pending = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"host", b"connection", b"content-length"):
            self.headers.append(name + b": " + value + b"\r\n")

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        request = b"%s %s HTTP/1.1\r\nHost: replica\r\n%sX-Forwarded-For: 127.0.0.1\r\n" % (
            method,
            self.url,
            b"".join(self.headers),
        )
        request += b"X-Forwarded-Proto: http\r\nX-Forwarded-Host: bench\r\n\r\n"
        self.url, self.headers = b"", []
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(request)
        else:
            self.upstream.transport.write(request)

    def reply(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(port: int, upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Caller(upstream), "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


@contextmanager
def python_floor_in_front_of(upstream: str) -> Iterator[RunningPeer]:
    """This proxy as its own process on a free loopback port."""
    # Imported here, not at the top: the proxy's own process would import the platform's
    # packages with it, for nothing.
    from common import free_port, running_peer

    port = free_port()
    with running_peer(
        [sys.executable, str(Path(__file__).resolve()), str(port), upstream], port
    ) as peer:
        yield peer


if __name__ == "__main__":
    host, _, upstream_port = sys.argv[2].rpartition(":")
    uvloop.run(serve(int(sys.argv[1]), (host, int(upstream_port))))
