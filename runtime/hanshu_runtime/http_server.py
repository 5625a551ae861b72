"""The runtime's HTTP/1.1 server: asyncio and httptools' parser, nothing more.

Why not aiohttp.web, which served here before: importing it takes about 180 ms on our
2-core machine (``python -X importtime``), more than the whole boot budget of a cold
start (the runtime bench prints the boot next to a bare aiohttp app's). The function
contract buffers both ways (a whole request in, a whole reply out), so what the runtime
needs of a server is small and is all here: parse HTTP/1.1 with httptools (the C parser
uvicorn uses; it imports in about a millisecond), keep connections alive, answer
pipelined requests in order, cap the body (413 without reading the rest), send
``100 Continue`` when asked, write each reply in one call, and stop accepting then close
idle connections when draining.

Requests reach the handler whole; the handler's reply is framed here (Content-Length,
Connection, Date), so a reply cannot set its own framing. A request's head, its limits and
its framing are read by hanshu_wire (the gateway's public port reads them the same way):
what RFC 9112 says a server must refuse is refused, and the connection closed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools
from hanshu_wire import (
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    MAX_PIPELINED,
    NO_BODY_STATUSES,
    SERVER_OWNED_HEADERS,
    TOKEN_CHARS,
    HeadReader,
    Refusal,
    expects_continue,
    framing_fields,
)

log = logging.getLogger("hanshu.runtime")
# aiohttp's server default: longer than any client pool keeps an idle connection (the
# gateway's keeps one 15 s), so the client, not the server, closes an idle connection and
# never sends on one the server is closing.
KEEPALIVE_SECONDS = 75.0
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class Headers(Mapping[str, str]):
    """A request's headers by name in any case (the first value of a repeated one)."""

    __slots__ = ("_by_name", "_pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._by_name: dict[str, str] | None = None

    def _index(self) -> dict[str, str]:
        if self._by_name is None:  # built on the first lookup: most requests need none
            self._by_name = {}
            for name, value in self._pairs:
                self._by_name.setdefault(name.lower(), value)
        return self._by_name

    def __getitem__(self, name: str) -> str:
        return self._index()[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def append(self, name: str, value: str) -> None:
        """One more header (last in order), without rebuilding the index: the runtime adds
        a ``traceparent`` to a request that came without one."""
        self._pairs.append((name, value))
        if self._by_name is not None:
            self._by_name.setdefault(name.lower(), value)


@dataclass(slots=True)
class Request:
    method: str
    path: str  # as sent: still percent-encoded, never normalised
    raw_query: str
    headers: list[tuple[str, str]]  # in the order sent, names as sent
    version: str  # "1.1"
    client_ip: str
    body: bytes = b""
    # Over the body limit: the body is not read (``body`` is empty) and the connection
    # closes after the reply.
    body_too_large: bool = False
    by_name: Headers = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = Headers(self.headers)


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False  # close the connection after this reply


Handler = Callable[[Request], Awaitable[Response]]


def invalid_reply(status: int, headers: list[tuple[str, str]]) -> str | None:
    """What is wrong with a reply, or None. A status outside 200-599 is not a final reply
    (a client would wait for the real one); a header name that is not an HTTP token or a
    value with a line break would let a reply write headers (or a second reply) of its own;
    a value that is not text (a request's undecodable bytes sent back) cannot be sent."""
    if not 200 <= status <= 599:
        return f"the status {status} is not a final HTTP status (200 to 599)"
    for name, value in headers:
        if not name or not set(name) <= TOKEN_CHARS:
            return f"the header name {name!r} is not a valid HTTP header name"
        if "\r" in value or "\n" in value or "\0" in value:
            return f"the value of header {name!r} contains a line break or NUL"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"the value of header {name!r} is not valid text"
    return None


def json_response(status: int, payload: object, close: bool = False) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, [("Content-Type", "application/json")], body, close)


def refusal_response(refusal: Refusal) -> Response:
    """The JSON error for a request the wire rules refuse; its connection ends."""
    payload = {"errorType": refusal.error_type, "errorMessage": refusal.message}
    return json_response(refusal.status, payload, close=True)


_INTERNAL_ERROR = json_response(
    500, {"errorType": "InternalError", "errorMessage": "the runtime failed"}, close=True
)


def encode_response(
    response: Response, keep_alive: bool, head: bool, version: str = "1.1"
) -> bytes:
    """The reply's bytes: status line, the handler's headers minus framing, our framing."""
    status = response.status
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
    has_type = False
    for name, value in response.headers:
        lowered = name.lower()
        if lowered in SERVER_OWNED_HEADERS:
            continue
        if lowered == "content-type":
            has_type = True
        lines.append(f"{name}: {value}\r\n")
    body = response.body
    length: int | None = None
    if status in NO_BODY_STATUSES or status < 200:
        body = b""
    else:
        if body and not has_type:
            lines.append("Content-Type: application/octet-stream\r\n")
        length = len(body)
    lines.append(framing_fields(length, keep_alive=keep_alive, http10=version == "1.0"))
    head_bytes = "".join(lines).encode("utf-8")
    return head_bytes if head or not body else head_bytes + body


class _Connection(HeadReader, asyncio.Protocol):
    """One client connection: parse, queue complete requests, answer them in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._client_ip = ""
        # Complete requests in arrival order (with whether the client keeps the connection),
        # or a ready reply to a request that could not be parsed.
        self._queue: collections.deque[tuple[Request, bool] | Response] = collections.deque()
        self._worker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._can_write: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._queued_bytes = 0  # bodies of the queued requests
        self._lingering = False  # replied and closing; reading only to discard
        # An Upgrade request whose body is still arriving: (request, keep-alive, length,
        # the body so far).
        self._held: tuple[Request, bool, int, bytearray] | None = None
        self._closed = False
        self._ignore_input = False  # after a parse error, an upgrade or an oversized body
        # The request being parsed (its target and fields: HeadReader's).
        self._fields: list[tuple[str, str]] = []
        # Bytes received while a request head was incomplete (bounded by MAX_HEAD_BYTES).
        self._in_head = True
        self._head_size = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        # The reply to a request refused from a parser callback (its head or framing).
        self._refusal: Response | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client_ip = peer[0] if isinstance(peer, tuple) else ""
        self._server.connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._cancel_idle_timer()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        # A handler running for this connection finishes (aiohttp's default too): its
        # side effects happened or are happening; only its reply has nowhere to go.

    def data_received(self, data: bytes) -> None:
        if self._ignore_input:
            return  # dropped: the connection closes after its last reply
        self._cancel_idle_timer()
        if self._held is not None:
            self._feed_held_body(data)
            return
        if self._in_head:
            # The parser keeps a head it has not finished; a request completed in this
            # chunk sets the count back to 0 (pipelined requests are not one big head).
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self._ignore_upgrade(data[offset:])
            return
        except httptools.HttpParserError as error:
            self._ignore_input = True
            if self._refusal is not None:
                self._push(self._refusal)
            else:
                self._answer_malformed(str(error))
            return
        if self._in_head and self._head_size > MAX_HEAD_BYTES:
            self._ignore_input = True
            self._push(
                json_response(
                    431,
                    {
                        "errorType": "HeadersTooLarge",
                        "errorMessage": "the request line and headers are over "
                        f"{MAX_HEAD_BYTES} bytes",
                    },
                    close=True,
                )
            )
            return
        if self._worker is None:
            # Between requests, or a request still arriving: the idle clock starts again,
            # so a client that stops halfway through a request is not held forever.
            self._arm_idle_timer()

    # -- Upgrade: refused by ignoring it ----------------------------------------------------

    def _ignore_upgrade(self, rest: bytes) -> None:
        """A request asking to switch protocols (``curl --http2`` sends ``Upgrade: h2c``
        with every request) is served as the HTTP/1.1 request it also is, as RFC 9110
        lets a server do. httptools stops at its head, so its body is read here."""
        item = self._queue[-1] if self._queue else None
        if not isinstance(item, tuple) or item[0].body_too_large:
            self._ignore_input = True  # answered already (413, 400): the connection ends
            return
        request, keep_alive = item
        by_name = request.by_name
        if "transfer-encoding" in by_name:
            self._queue.pop()
            self._ignore_input = True
            self._push(
                json_response(
                    400,
                    {
                        "errorType": "BadRequest",
                        "errorMessage": "a request with Upgrade and a chunked body is not "
                        "supported: send it without Upgrade, or with a Content-Length",
                    },
                    close=True,
                )
            )
            return
        length = int(by_name.get("content-length", "0") or "0")
        self._parser = httptools.HttpRequestParser(self)  # what follows is HTTP/1.1 again
        if length == 0:
            self._continue_with(rest)
            return
        self._queue.pop()  # not answered until its body is here (the worker has not run)
        self._held = (request, keep_alive, length, bytearray())
        self._feed_held_body(rest)

    def _feed_held_body(self, data: bytes) -> None:
        assert self._held is not None
        request, keep_alive, length, body = self._held
        missing = length - len(body)
        body += data[:missing]
        if len(body) < length:
            if self._worker is None:
                self._arm_idle_timer()  # a body that stops arriving is not held forever
            return
        self._held = None
        request.body = bytes(body)
        self._push((request, keep_alive))
        self._continue_with(data[missing:])

    def _continue_with(self, rest: bytes) -> None:
        self._in_head, self._head_size = True, 0
        if rest:
            self.data_received(rest)
        elif self._worker is None:
            self._arm_idle_timer()

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------

    def message_begins(self) -> None:
        self._body = []
        self._body_size = 0
        self._too_large = False

    def head_refused(self, refusal: Refusal) -> None:
        self._refusal = refusal_response(refusal)  # answered in turn; the connection ends

    def head_complete(self, framing: int) -> None:
        self._in_head = False
        if framing > self._server.max_body_bytes:
            self._too_large = True
            self._enqueue()  # answered now; the body is never read
            return
        # Only for a request nothing is answered ahead of: an interim reply must not come
        # before the replies of earlier pipelined requests (without it, a client sends
        # its body after a short wait anyway).
        idle = self._worker is None and not self._queue
        if idle and expects_continue(self._noted, self._parser.get_http_version()):
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return
        self._body_size += len(body)
        if self._body_size > self._server.max_body_bytes:
            self._too_large = True
            self._body = []
            self._enqueue()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_head, self._head_size = True, 0
        if not self._too_large:
            self._enqueue()

    # -- requests and replies ---------------------------------------------------------------

    def _enqueue(self) -> None:
        if self._ignore_input:
            return  # a request pipelined after one that ends the connection
        parser = self._parser
        try:
            url = httptools.parse_url(self._target)
        except httptools.HttpParserInvalidURLError:
            self._ignore_input = True
            self._answer_malformed(f"the request target {self._target[:200]!r} is not a URL path")
            return
        request = Request(
            method=parser.get_method().decode("ascii"),
            path=(url.path or b"/").decode("utf-8", "surrogateescape"),
            raw_query=(url.query or b"").decode("utf-8", "surrogateescape"),
            headers=self._fields,
            version=parser.get_http_version(),
            client_ip=self._client_ip,
            body=b"".join(self._body) if not self._too_large else b"",
            body_too_large=self._too_large,
        )
        self._server.last_request_at = self._loop.time()
        keep_alive = parser.should_keep_alive() and not self._too_large
        if self._too_large:
            self._ignore_input = True
        self._push((request, keep_alive))

    def _answer_malformed(self, reason: str) -> None:
        self._push(
            json_response(
                400,
                {"errorType": "BadRequest", "errorMessage": f"malformed HTTP request: {reason}"},
                close=True,
            )
        )

    def _push(self, item: tuple[Request, bool] | Response) -> None:
        self._queue.append(item)
        if isinstance(item, tuple):
            self._queued_bytes += len(item[0].body)
        # Read ahead of the request being answered only so far: a client that pipelines
        # large bodies must not make the runtime hold many of them at once.
        if (
            len(self._queue) >= MAX_PIPELINED or self._queued_bytes > self._server.max_body_bytes
        ) and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        if self._worker is None:
            self._worker = self._loop.create_task(self._answer_queue())

    async def _answer_queue(self) -> None:
        try:
            while self._queue and not self._closed:
                item = self._queue.popleft()
                if isinstance(item, tuple):
                    self._queued_bytes -= len(item[0].body)
                if self._reading_paused and not self._queue:
                    assert self._transport is not None
                    self._transport.resume_reading()
                    self._reading_paused = False
                if isinstance(item, Response):
                    response, keep_alive, head, version = item, False, False, "1.1"
                else:
                    request, keep_alive = item
                    head, version = request.method == "HEAD", request.version
                    response = await self._answer(request)
                keep_alive = keep_alive and not response.close and not self._server.draining
                if self._ignore_input and not self._queue:
                    keep_alive = False
                try:
                    data = encode_response(response, keep_alive, head, version)
                except Exception:
                    # A reply that cannot be written (the handler checks what it can): a
                    # bug of ours, answered rather than leaving the client waiting.
                    log.exception("a reply could not be encoded")
                    keep_alive = False
                    data = encode_response(_INTERNAL_ERROR, keep_alive, head, version)
                if not self._write(data):
                    return
                if not keep_alive:
                    self._close_after_reply()
                    return
                if self._can_write is not None and not self._can_write.done():
                    # A client that does not read its replies is not held forever.
                    stalled = self._loop.call_later(self._server.keepalive_seconds, self.abort)
                    try:
                        await self._can_write
                    finally:
                        stalled.cancel()
        finally:
            self._worker = None
            if not self._closed and not self._lingering:
                self._arm_idle_timer()

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._server.handler(request)
        except Exception:
            # The handler answers every fault of its own; this is a bug of ours.
            log.exception("the request handler raised")
            return _INTERNAL_ERROR

    def _write(self, data: bytes) -> bool:
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    # -- idleness and closing ---------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        self._cancel_idle_timer()
        self._idle_timer = self._loop.call_later(self._server.keepalive_seconds, self.close)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def close(self) -> None:
        self._cancel_idle_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        self._cancel_idle_timer()
        if self._transport is not None:
            self._transport.abort()

    def _close_after_reply(self) -> None:
        """Close once the reply is out. When the client may still be sending (a body over
        the limit, a request that could not be parsed), closing at once would make the
        kernel reset the connection, and a client busy sending would never read the
        reply: so only our side is shut, and what still comes is read and dropped until
        the client closes or ``LINGER_SECONDS`` pass."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._ignore_input or not transport.can_write_eof():
            self.close()
            return
        self._lingering = True
        transport.write_eof()
        if self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False
        self._cancel_idle_timer()
        self._idle_timer = self._loop.call_later(LINGER_SECONDS, self.close)


class HttpServer:
    """Listen on one address and give each complete request to ``handler``."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_seconds = keepalive_seconds
        self.loop = asyncio.get_running_loop()
        self.connections: set[_Connection] = set()
        self.draining = False
        self.last_request_at = self.loop.time()
        self._server: asyncio.AbstractServer | None = None

    async def listen(self, host: str, port: int, backlog: int = 1024) -> None:
        """Raises ``OSError`` when the address cannot be had."""
        self._server = await self.loop.create_server(
            lambda: _Connection(self), host, port, backlog=backlog, reuse_address=True
        )

    def stop_accepting(self) -> None:
        """Draining: no new connections, and each reply from now on ends its connection.

        Idle connections stay open: a request a client sends on one is answered (the
        handler says it is draining) rather than lost to a close racing with the send,
        after which the client cannot know whether the function ran."""
        self.draining = True
        if self._server is not None:
            self._server.close()

    async def until_quiet(self, quiet_seconds: float, limit_seconds: float) -> None:
        """Draining: until every client has closed its connection, or none has sent a
        request for ``quiet_seconds`` (it has learnt this replica is going), or
        ``limit_seconds`` pass. Closing kept-alive connections earlier would race with
        requests already on their way, which then end without a reply."""
        deadline = self.loop.time() + limit_seconds
        while self.connections:
            now = self.loop.time()
            quiet_until = self.last_request_at + quiet_seconds
            if now >= quiet_until or now >= deadline:
                return
            await asyncio.sleep(min(quiet_until, deadline) - now)

    def close(self) -> None:
        self.stop_accepting()
        for connection in list(self.connections):
            connection.close()
