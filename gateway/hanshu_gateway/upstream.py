"""The gateway's hop to function replicas: a small HTTP/1.1 client with keep-alive pools.

The replicas are our own runtime, on a trusted network, answering with Content-Length (or
chunked) bodies. A general client (aiohttp's) spent a third of the gateway's time on this
hop; this one writes the request in one call and parses the reply in place.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hanshu_api.platform import Endpoint
from hanshu_wire import CHUNKED, LINE_BREAKING, TOKEN, MalformedFraming, chunk_size, reply_framing

# What may be written into a request head: a header name or method is a token, a target
# visible ASCII; a value anything but what ends a line.
_TARGET = re.compile(r"[\x21-\x7e]+")
# What, in a reply's head, a lenient reader would split into other fields than we do
# (another framing): a line that is not "token:" (obs-fold, whitespace before the colon,
# no colon). A CR or LF outside a CRLF, and NUL, are counted instead (a regex with a
# look-behind costs more than the rest of the reply's parsing).
_NOT_A_FIELD = re.compile(rb"\r\n(?![!#$%&'*+.^_`|~0-9A-Za-z-]+:)")
IDLE_SECONDS = 30.0  # below aiohttp's 75 s keep-alive: we close first, never race a close
MAX_IDLE_PER_ENDPOINT = 256


class UpstreamClosed(Exception):
    """The replica closed the connection before a complete reply."""

    def __init__(self, received_any: bool) -> None:
        super().__init__(
            "the replica closed the connection"
            + (" mid-reply" if received_any else " before replying")
        )
        self.received_any = received_any


class MalformedReply(Exception):
    pass


class ReplyTimeout(TimeoutError):
    """The replica took the request and did not reply in time. Its own class: TimeoutError
    is an OSError, and an OSError means a refused connection, which is tried elsewhere;
    this request may still be running, so it must not be."""


@dataclass(slots=True)
class UpstreamReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _dechunk(data: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end) when the chunked body starting at ``start`` is complete, else None."""
    parts: list[bytes] = []
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = chunk_size(bytes(data[position:line_end]))
        except MalformedFraming as bad:
            raise MalformedReply(str(bad)) from None
        position = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", position - 2)
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
        if len(data) < position + size + 2:
            return None
        parts.append(bytes(data[position : position + size]))
        position += size + 2


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        # Asked once per connection: asyncio.get_running_loop() is a getpid() system call
        # each time (glibc no longer caches it), twice per request otherwise.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[UpstreamReply] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.keep_alive = True
        self._head_end = -1
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._length: int | None = None
        self._chunked = False
        self._bodyless = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            try:
                reply = self._parse()
            except MalformedReply as error:
                self.keep_alive = False
                self.waiter.set_exception(error)
                return
            if reply is not None:
                self.waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self._head_end >= 0 and self._length is None and not self._chunked:
                # A reply delimited by the end of the connection is now complete.
                body = bytes(self.buffer[self._head_end :])
                self.waiter.set_result(UpstreamReply(self._status, self._headers, body))
            else:
                self.waiter.set_exception(UpstreamClosed(bool(self.buffer)))

    # -- one exchange ---------------------------------------------------------------------

    def send(self, request: bytes, head_only: bool) -> asyncio.Future[UpstreamReply]:
        assert self.transport is not None
        self.buffer.clear()
        self._head_end, self._bodyless = -1, head_only
        self._length, self._chunked = None, False
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter

    def _parse(self) -> UpstreamReply | None:
        if self._head_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            raw = bytes(self.buffer[:end])
            pairs = raw.count(b"\r\n")
            if raw.count(b"\r") != pairs or raw.count(b"\n") != pairs or b"\x00" in raw:
                raise MalformedReply("a bare CR or LF, or a NUL, in the reply's head")
            unsound = _NOT_A_FIELD.search(raw)
            if unsound is not None:
                where = raw[unsound.start() : unsound.start() + 60]
                raise MalformedReply(f"a malformed header line in the reply: {where!r}")
            # UTF-8 as the runtime writes it, so a value reaches the caller unchanged.
            head = raw.decode("utf-8", "replace")
            lines = head.split("\r\n")
            version, _, rest = lines[0].partition(" ")
            try:
                self._status = int(rest[:3])
            except ValueError:
                raise MalformedReply(f"bad status line {lines[0]!r}") from None
            if 100 <= self._status < 200 and self._status != 101:
                # An interim reply (100 Continue, 103 Early Hints) from a server in a user's
                # image: the final reply follows on this connection; never hand it out.
                del self.buffer[: end + 4]
                return self._parse()
            self._headers = headers = []
            lengths: list[str] = []
            encodings: list[str] = []
            connection = ""
            for line in lines[1:]:
                name, _, value = line.partition(":")
                value = value.strip(" \t")
                size = len(name)
                # Only these can change framing (and their lengths are rare among names).
                if size == 14 or size == 17 or size == 10:
                    lower = name.lower()
                    if lower == "content-length":
                        lengths.append(value)
                    elif lower == "transfer-encoding":
                        encodings.append(value)
                    elif lower == "connection":
                        connection = value.lower()
                headers.append((name, value))
            try:
                framing = reply_framing(
                    lengths,
                    encodings,
                    self._bodyless or self._status in (204, 304) or self._status < 200,
                )
            except MalformedFraming as bad:
                raise MalformedReply(str(bad)) from None
            self._chunked = framing == CHUNKED
            self._length = None if framing is None or self._chunked else framing
            self.keep_alive = version == "HTTP/1.1" and connection != "close"
            self._head_end = end + 4
            if framing is None:
                self.keep_alive = False  # the body ends with the connection
        if self._chunked:
            done = _dechunk(self.buffer, self._head_end)
            if done is None:
                return None
            return UpstreamReply(self._status, self._headers, done[0])
        if self._length is not None and len(self.buffer) - self._head_end >= self._length:
            body = bytes(self.buffer[self._head_end : self._head_end + self._length])
            return UpstreamReply(self._status, self._headers, body)
        return None


def _request_head(
    endpoint: Endpoint,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    length: int,
    host: str | None = None,
) -> bytes:
    """The request head for a replica. Whatever would end a line early is refused here,
    the one place the hop's request lines are written: no caller can split a request on
    a connection other callers' requests share. ``host`` is the caller's Host, passed on
    as nginx's ``proxy_set_header Host $host`` does (the app builds its URLs from it);
    without one (probes, schedules), the replica's own address."""
    if not TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ValueError(f"refusing to write the request line {method!r} {target!r}")
    if host is None:
        host = f"{endpoint.host}:{endpoint.port}"
    elif not _TARGET.fullmatch(host):
        raise ValueError(f"refusing to write the Host {host!r}")
    head = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers:
        if not TOKEN.fullmatch(name) or LINE_BREAKING.search(value):
            raise ValueError(f"refusing to write the header {name!r}: {value!r}")
        head.append(f"{name}: {value}\r\n")
    head.append(f"Content-Length: {length}\r\n\r\n")
    # aiohttp's parser gives header bytes that are not UTF-8 as surrogates: this writes
    # every value back as the bytes the caller sent.
    return "".join(head).encode("utf-8", "surrogateescape")


def _expire(waiter: asyncio.Future[UpstreamReply]) -> None:
    if not waiter.done():
        waiter.set_exception(ReplyTimeout())


class UpstreamPool:
    def __init__(self) -> None:
        self._idle: dict[Endpoint, list[_Connection]] = {}

    async def _connect(self, endpoint: Endpoint) -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, endpoint.host, endpoint.port
        )
        return connection

    def _reuse(self, endpoint: Endpoint) -> _Connection | None:
        idle = self._idle.get(endpoint)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            if connection.transport is not None:
                connection.transport.close()
        return None

    def _release(self, endpoint: Endpoint, connection: _Connection) -> None:
        idle = self._idle.setdefault(endpoint, [])
        if connection.closed or not connection.keep_alive or len(idle) >= MAX_IDLE_PER_ENDPOINT:
            if connection.transport is not None:
                connection.transport.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def request(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        within: float,
        host: str | None = None,
    ) -> UpstreamReply:
        """One exchange. Raises OSError when the replica refuses the connection,
        UpstreamClosed when it closes without replying (or dies, perhaps of this request),
        ReplyTimeout past ``within`` s, ValueError (before sending anything) for a target
        or header that would break a line. The Host is per request, never per connection:
        one kept-alive connection carries requests for any host."""
        request = _request_head(endpoint, method, target, headers, len(body), host) + body
        connection = self._reuse(endpoint)
        reused = connection is not None
        if connection is None:
            connection = await self._connect(endpoint)
        loop = connection.loop
        for attempt in (1, 2):
            waiter = connection.send(request, method == "HEAD")
            # One timer on the reply's future: asyncio.timeout() costs a context manager
            # and a reschedule per request (docs/architecture.md, "Measured choices").
            timer = loop.call_later(within, _expire, waiter)
            try:
                reply = await waiter
            except UpstreamClosed as closed:
                if connection.transport is not None:
                    connection.transport.close()
                # A kept-alive connection closed without a byte of reply: either the replica
                # closed it while idle (then a fresh connection to it is accepted, and our
                # request was never read), or the replica died, perhaps of this very
                # request. Only the first may be sent again: a refused reconnect is the
                # second, and is reported as such, never retried on another replica.
                if reused and attempt == 1 and not closed.received_any:
                    try:
                        connection = await self._connect(endpoint)
                    except OSError:
                        raise closed from None
                    reused = False
                    continue
                raise
            except BaseException:
                if connection.transport is not None:
                    connection.transport.close()
                raise
            finally:
                timer.cancel()
            self._release(endpoint, connection)
            return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                if connection.transport is not None:
                    connection.transport.close()
        self._idle.clear()
