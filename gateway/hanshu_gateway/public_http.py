"""The gateway's public port: an HTTP/1.1 server on httptools (llhttp), made for a proxy.

The internal port keeps aiohttp's full server. The public port carries every request to
every Function, and each request there is one whole buffered request in and one whole
buffered reply out, so none of aiohttp's streaming machinery is needed: it costs about
40% less CPU per proxied request than aiohttp's low-level server (docs/architecture.md,
"Measured choices"). A request handler still returns an ``aiohttp.web.Response`` (the gateway's
replies are built that way, and the internal port shares them); this server writes it.

What callers get from it:

- A request head is read as the runtime reads it (hanshu_wire's HeadReader): 414 for a
  request line over 8190 bytes, 431 for a header over 16 KiB, more than 128 headers or a
  head over 64 KiB; its framing decided by hanshu_wire.request_framing (400, 501 or 505
  where RFC 9112 says so: docs/http.md), and a JSON 400 for anything llhttp refuses (a bare
  CR, obs-fold, a duplicate Content-Length). The connection closes after each.
- A head must arrive within the header timeout (slowloris); an idle kept-alive connection
  closes after the keep-alive timeout. A body has the handler's own read timeout.
- The handler runs as soon as the head is complete: a refusal (401, 404, 429) never waits
  for a body, and a body is buffered only for a handler that asks for it (``100 Continue``
  is sent then, to a client that waits for it). A reply sent before the body was read ends
  the connection, reading what still comes for a few seconds so the caller sees the reply
  rather than a reset.
- Keep-alive, HTTP/1.0, and pipelined requests answered in order, reading ahead only so far
  (16 requests, one body limit of bodies; the parser is fed in 4 KiB slices, so one large
  read of tiny requests overshoots by at most one slice). Trailers are counted, not kept:
  a head, chunk framing and trailers together may not outgrow 64 KiB plus the body.
- A reply the caller stops taking (no progress for 30 s) ends the connection; a slow
  reader that keeps reading is not cut off. Only final statuses (200-599), header names
  that are tokens and values on one line are written; anything else is a 502.
- ``Upgrade`` (``curl --http2`` sends ``Upgrade: h2c``) is served as the HTTP/1.1 request it
  also is; ``CONNECT`` reaches the handler, which refuses its target.
- On shutdown: no new connections, idle ones closed, requests in progress get a grace time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable
from typing import cast

import httptools
from aiohttp import web
from hanshu_wire import (
    CHUNKED,
    LINE_BREAKING,
    LINGER_SECONDS,
    MAX_HEAD_BYTES,
    MAX_PIPELINED,
    NO_BODY_STATUSES,
    SERVER_OWNED_HEADERS,
    TOKEN,
    HeadReader,
    HeadRefused,
    framing_fields,
)
from hanshu_wire import Refusal as WireRefusal
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

log = logging.getLogger("hanshu.gateway")

# Bytes parsed at a time: a read can hold thousands of tiny pipelined requests, and the
# read-ahead limit is checked between slices. Larger slices would save little: a request
# head is a few hundred bytes.
PARSE_SLICE = 4096
WRITE_STALL_SECONDS = 30.0  # a reply not taken at all for this long: the connection drops
_ABSOLUTE_FORM = re.compile(r"https?://", re.IGNORECASE)

# (status, errorType, errorMessage) -> the reply; the gateway adds a request id.
Refusal = Callable[[int, str, str], web.StreamResponse]


class BodyTooLarge(Exception):
    pass


class ClientGone(ConnectionError):
    """The caller closed the connection before its request body was complete."""


class InvalidReply(ValueError):
    """A reply that cannot be written as a final HTTP/1.1 reply."""


def encode_reply(
    response: web.StreamResponse, *, keep_alive: bool, head_only: bool, http10: bool
) -> bytes:
    """The reply's bytes: status line, the handler's headers minus framing, our framing.
    Raises InvalidReply for a status that is not a final one (a replica's 101 included)
    or a header that is not a token with a value on one line: nothing a caller reads
    as a second reply, an interim one, or an extra header is ever written."""
    status = response.status
    if not 200 <= status <= 599:
        raise InvalidReply(f"{status} is not the status of a final reply")
    lines = [f"HTTP/1.1 {status} {response.reason}\r\n"]
    for name, value in response.headers.items():
        if name.lower() in SERVER_OWNED_HEADERS:
            continue
        if not TOKEN.fullmatch(name) or LINE_BREAKING.search(value):
            raise InvalidReply(f"the reply header {name!r}: {value!r} cannot be written")
        lines.append(f"{name}: {value}\r\n")
    body = response.body if isinstance(response, web.Response) else None
    if body is None:
        body = b""
    elif not isinstance(body, bytes):
        raise InvalidReply(f"a reply body must be bytes, not {type(body).__name__}")
    length: int | str | None = None
    if status in NO_BODY_STATUSES:
        body = b""
    else:
        length = len(body)
        if head_only and not body:
            # A reply to HEAD may carry the length a GET would get (the gateway passes on
            # a replica's); a body it has would be written for GET, so it counts first.
            declared = response.headers.get("Content-Length", "")
            length = declared if declared.isascii() and declared.isdigit() else length
    lines.append(framing_fields(length, keep_alive=keep_alive, http10=http10))
    # Header values from a replica that were not UTF-8 are kept as surrogates: written back
    # as the bytes the replica sent.
    head = "".join(lines).encode("utf-8", "surrogateescape")
    return head if head_only or not body else head + body


def wants_close(response: web.StreamResponse) -> bool:
    """Whether a handler asked for the connection to end after this reply."""
    if response.keep_alive is False:
        return True
    connection = response.headers.get("Connection")
    return connection is not None and connection.lower() == "close"


class _Body:
    """A request body as it arrives, up to a limit; read whole by the handler."""

    __slots__ = (
        "ahead",
        "chunks",
        "complete",
        "gone",
        "limit",
        "refusal",
        "size",
        "too_large",
        "waiter",
    )

    def __init__(self, limit: int, complete: bool) -> None:
        self.chunks: list[bytes] = []
        self.ahead = 0  # bytes received while its request waited behind another
        # Why the rest of it will never come, when it was refused mid-way (its trailers
        # too large, its chunked framing broken): the reply its request gets instead.
        self.refusal: web.StreamResponse | None = None
        self.size = 0
        self.complete = complete
        self.too_large = False
        self.gone = False
        self.waiter: asyncio.Future[None] | None = None
        self.limit = limit

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.too_large:
            return
        if self.size > self.limit:
            self.too_large = True
            self.chunks = []  # never held: the handler answers 413
            self._wake()
            return
        self.chunks.append(data)

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def lose(self) -> None:
        self.gone = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class PublicRequest:
    """What a handler on the public port reads of a request. The names are aiohttp's, so
    the code that also serves the internal port (aiohttp) reads both alike."""

    __slots__ = (
        "_body",
        "_chunked",
        "_connection",
        "_expects_continue",
        "_host",
        "_url",
        "content_length",
        "headers",
        "keep_alive",
        "method",
        "raw_path",
        "remote",
        "version",
    )
    scheme = "http"  # TLS ends before the gateway (an ingress or a load balancer)

    def __init__(
        self,
        method: str,
        raw_path: str,
        headers: CIMultiDictProxy[str],
        version: str,
        remote: str | None,
        keep_alive: bool,
        body: _Body,
        connection: _PublicConnection,
        framing: int,
    ) -> None:
        self.method = method
        self.keep_alive = keep_alive  # what the caller asked for (Connection, HTTP version)
        self.raw_path = raw_path
        self.headers = headers
        self.version = version
        self.remote = remote
        # hanshu_wire.request_framing decided it: CHUNKED, or the checked Content-Length.
        self._chunked = framing == CHUNKED
        self.content_length = None if self._chunked or "Content-Length" not in headers else framing
        self._body = body
        self._connection = connection
        expect = headers.get("Expect")
        self._expects_continue = (
            expect is not None and expect.lower() == "100-continue" and version == "1.1"
        )
        self._url: URL | None = None
        self._host: str | None = None

    @property
    def host(self) -> str:
        """The Host header; for an absolute-form target (``GET http://host/p``), the
        target's host, as RFC 9112 section 3.2.2 asks. Empty when there is none or it
        cannot be decoded: the gateway refuses that as InvalidHost."""
        if self._host is None:
            raw = self.raw_path
            if raw.startswith("/") or not _ABSOLUTE_FORM.match(raw):
                self._host = self.headers.get("Host", "")
            else:
                try:
                    target = URL(raw)
                    host, port = target.host or "", target.explicit_port
                except ValueError:
                    host, port = "", None
                # Passed on as the Host: an IPv6 literal keeps its brackets, a port is kept.
                host = f"[{host}]" if ":" in host else host
                self._host = f"{host}:{port}" if host and port is not None else host
        return self._host

    @property
    def url(self) -> URL:
        """The target as a relative URL (path and query), for paths read decoded."""
        if self._url is None:
            raw = self.raw_path.partition("#")[0]
            try:
                if raw.startswith("/"):
                    path, _, query = raw.partition("?")
                    self._url = URL.build(path=path, query_string=query, encoded=True)
                else:
                    self._url = URL(raw).relative()
            except ValueError:
                self._url = URL("/")
        return self._url

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> MultiDictProxy[str]:
        return self.url.query

    @property
    def body_exists(self) -> bool:
        return bool(self.content_length) or self._chunked

    async def read(self, limit: int, within: float) -> bytes:
        """The whole body. BodyTooLarge past ``limit`` bytes (before reading any when the
        Content-Length says so), TimeoutError when it has not all come in ``within`` s,
        ClientGone when the caller closed the connection first."""
        if self.content_length is not None and self.content_length > limit:
            raise BodyTooLarge
        body = self._body
        if not body.complete and not body.too_large and not body.gone:
            if self._expects_continue and body.size == 0:
                self._expects_continue = False
                self._connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            loop = self._connection.loop
            # Woken once: when the body is complete, over the limit, or cut short.
            body.waiter = waiter = loop.create_future()
            timer = loop.call_later(within, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                body.waiter = None
        if body.too_large or body.size > limit:
            raise BodyTooLarge
        if body.gone and not body.complete:
            raise ClientGone("the caller closed the connection before sending the whole body")
        return body.chunks[0] if len(body.chunks) == 1 else b"".join(body.chunks)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


Handler = Callable[[PublicRequest], Awaitable[web.StreamResponse]]


class _PublicConnection(HeadReader, asyncio.Protocol):
    """One caller's connection: parse heads, hand each request to the handler in order."""

    def __init__(self, server: PublicServer) -> None:
        self._server = server
        self.loop = self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._remote: str | None = None
        # Requests in arrival order, or the refusal of what could not be parsed.
        self._queue: collections.deque[PublicRequest | web.StreamResponse] = collections.deque()
        self._serving: PublicRequest | None = None
        self._worker: asyncio.Task[None] | None = None
        # Clocks: a head must be complete within the header timeout (armed only while one
        # is incomplete with nothing being answered); an idle connection closes after the
        # keep-alive timeout. The idle clock is lazy: a request only notes the time, and the
        # timer, when it fires, checks it (two timer calls per request cost more than the
        # rest of this class's bookkeeping).
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        # Writes: a reply the caller does not take is dropped after WRITE_STALL_SECONDS
        # without progress (a slow reader that keeps reading is not).
        self._can_write: asyncio.Future[None] | None = None
        self._write_watch: asyncio.TimerHandle | None = None
        self._write_left = 0
        self._reading_paused = False
        self._backlog = bytearray()  # read but not parsed while read-ahead is paused
        self._ahead_bytes = 0  # body bytes of requests waiting behind the one answered
        self._closed = False
        self._lingering = False
        self._ignore_input = False  # after a refusal that ends the connection
        self._upgrade_remaining = 0  # body bytes of an Upgrade request, read by hand
        # The request being received (its target and fields: HeadReader's).
        self._in_head = False
        self._fields: list[tuple[str, str]] = []
        # Bytes of the current message that were not body (head, chunk sizes, trailers),
        # and its body bytes: the first may not outgrow MAX_HEAD_BYTES plus the second.
        self._overhead = 0
        self._body_bytes = 0
        self._slice_body_bytes = 0  # of the slice being parsed
        self._receiving: PublicRequest | None = None  # whose body is arriving

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if isinstance(peer, tuple) else None
        self._server.connections.add(self)
        self._arm_head_timer()  # the first head is due like any other

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        self._stop_clocks()
        if self._write_watch is not None:
            self._write_watch.cancel()
            self._write_watch = None
        if self._receiving is not None:
            self._receiving._body.lose()
            self._receiving = None
        self._backlog = bytearray()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        # A request being handled is not cancelled (aiohttp's default too): it may be
        # waiting for a replica, or already running on one; only its reply has nowhere to go.

    def data_received(self, data: bytes) -> None:
        if self._ignore_input:
            return  # dropped: the connection closes after its last reply
        if self._reading_paused or self._backlog:
            self._backlog += data  # a read that was under way when reading paused
            return
        self._parse(memoryview(data))

    def _parse(self, data: memoryview) -> None:
        """Feed the parser in slices: a single read can hold thousands of small pipelined
        requests, and read-ahead must stop within a slice of its limit, not a read."""
        while data and not self._ignore_input:
            if self._reading_paused:
                self._backlog += data
                return
            if self._upgrade_remaining:
                data = self._feed_upgrade_body(data)
                continue
            piece, data = data[:PARSE_SLICE], data[PARSE_SLICE:]
            self._slice_body_bytes = 0
            try:
                self._parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                offset = upgrade.args[0] if upgrade.args else len(piece)
                self._served_as_http11()
                data = piece[offset:] if not data else memoryview(bytes(piece[offset:]) + data)
                continue
            except httptools.HttpParserError as error:
                reason = str(error) or type(error).__name__
                self._refuse(400, "BadRequest", f"the request is not valid HTTP/1.1: {reason}")
                return
            # Counted per slice, not from the message's body count: a message that ends in
            # this slice resets that, and its body would count as the next one's head.
            self._overhead += len(piece) - self._slice_body_bytes
            if self._overhead > MAX_HEAD_BYTES + self._body_bytes:
                self._refuse(
                    431,
                    "HeadersTooLarge",
                    f"the request's head or trailers are over {MAX_HEAD_BYTES} bytes",
                )
                return
            if self._in_head and self._worker is None:
                # A head has begun and none is being answered: due within the header
                # timeout of its first bytes, however slowly the rest comes (slowloris).
                self._arm_head_timer()

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = self._loop.create_future()
        self._watch_writes()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------

    def message_begins(self) -> None:
        self._in_head = True

    def head_refused(self, refusal: WireRefusal) -> None:
        self._refuse(*refusal)

    def head_complete(self, framing: int) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        parser = self._parser
        headers = CIMultiDictProxy(CIMultiDict(self._fields))
        url = self._target
        chunked = framing == CHUNKED
        if chunked and parser.should_upgrade():
            self._refuse(
                400,
                "BadRequest",
                "a request with Upgrade and a chunked body is not supported: send it "
                "without Upgrade, or with a Content-Length",
            )
            raise HeadRefused
        has_body = chunked or "Content-Length" in headers
        request = PublicRequest(
            parser.get_method().decode("ascii"),
            url.decode("utf-8", "surrogateescape"),
            headers,
            parser.get_http_version(),
            self._remote,
            parser.should_keep_alive(),
            _Body(self._server.max_body_bytes, complete=not has_body),
            self,
            framing,
        )
        self._receiving = request if has_body else None
        self._push(request)

    def on_body(self, data: bytes) -> None:
        self._body_bytes += len(data)
        self._slice_body_bytes += len(data)
        request = self._receiving
        if request is None:
            return
        body = request._body
        body.feed(data)
        if request is not self._serving:
            body.ahead += len(data)
            self._ahead_bytes += len(data)
            self._pause_if_far_ahead()

    def on_message_complete(self) -> None:
        self._overhead = self._body_bytes = 0
        if self._receiving is not None and not self._parser.should_upgrade():
            self._finish_receiving()

    # -- Upgrade: served as plain HTTP/1.1 --------------------------------------------------

    def _served_as_http11(self) -> None:
        """After the head of a request asking to switch protocols (llhttp stops there):
        its body is read by its Content-Length, then what follows is HTTP/1.1 again."""
        request = self._queue[-1] if self._queue else None
        if not isinstance(request, PublicRequest) or request.method == "CONNECT":
            self._ignore_input = True  # a tunnel is never opened: the connection ends
            self._finish_receiving()
            return
        self._parser = httptools.HttpRequestParser(self)
        self._upgrade_remaining = request.content_length or 0
        if not self._upgrade_remaining:
            self._finish_receiving()

    def _feed_upgrade_body(self, data: memoryview) -> memoryview:
        """Feed an Upgrade request's body; what is left over begins the next request."""
        take = min(self._upgrade_remaining, len(data))
        self._upgrade_remaining -= take
        if take:
            self.on_body(bytes(data[:take]))
        if not self._upgrade_remaining:
            self._overhead = self._body_bytes = 0
            self._finish_receiving()
        return data[take:]

    def _finish_receiving(self) -> None:
        if self._receiving is not None:
            self._receiving._body.finish()
            self._receiving = None

    # -- requests and replies ---------------------------------------------------------------

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        """Answer what could not be parsed (after the replies ahead of it), then close."""
        if self._ignore_input:
            return
        self._ignore_input = True
        self._backlog = bytearray()
        refusal: web.StreamResponse | None = self._server.refusal(status, error_type, message)
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            # The request whose body could not be read gets the refusal as its reply,
            # instead of being served without its body.
            receiving._body.refusal = refusal
            receiving._body.lose()
            if receiving in self._queue:
                self._queue.remove(receiving)
                self._ahead_bytes -= receiving._body.ahead
            elif receiving is self._serving:
                refusal = None  # its handler answers with it, when it reads the body
        # Garbage reaches any public port all day: not worth more than a debug line.
        log.debug("refused a request from %s: %s", self._remote, message)
        if self._worker is not None and self._transport is not None and not self._reading_paused:
            # Answered after the requests ahead of it: until then nothing more is read
            # (what comes after its reply is read only to be dropped, for a few seconds).
            self._transport.pause_reading()
            self._reading_paused = True
        if refusal is not None:
            self._push(refusal)

    def _push(self, item: PublicRequest | web.StreamResponse) -> None:
        self._queue.append(item)
        if self._worker is None:
            self._worker = self._loop.create_task(self._answer_queue())
        else:
            self._pause_if_far_ahead()

    def _pause_if_far_ahead(self) -> None:
        """Read ahead of the request being answered only so far: a caller that pipelines
        must not make the gateway hold many requests, or bodies, at once."""
        if self._reading_paused or self._transport is None:
            return
        if len(self._queue) >= MAX_PIPELINED or self._ahead_bytes > self._server.max_body_bytes:
            self._transport.pause_reading()
            self._reading_paused = True

    def _take(self) -> PublicRequest | web.StreamResponse:
        item = self._queue.popleft()
        if isinstance(item, PublicRequest):
            self._ahead_bytes -= item._body.ahead
            item._body.ahead = 0
            self._serving = item
        if (
            self._reading_paused
            and not self._ignore_input  # refused: read again only to drop, after the reply
            and len(self._queue) < MAX_PIPELINED
            and self._ahead_bytes <= self._server.max_body_bytes
        ):
            assert self._transport is not None
            self._reading_paused = False
            self._transport.resume_reading()
            if self._backlog:
                backlog, self._backlog = self._backlog, bytearray()
                self._parse(memoryview(bytes(backlog)))
        return item

    def _forget_queue(self) -> None:
        """The connection ends: what was pipelined behind is never answered."""
        for item in self._queue:
            if isinstance(item, PublicRequest):
                item._body.lose()
        self._queue.clear()
        self._ahead_bytes = 0
        self._backlog = bytearray()

    async def _answer_queue(self) -> None:
        server = self._server
        try:
            while self._queue and not self._closed:
                item = self._take()
                if isinstance(item, PublicRequest):
                    response = await self._answer(item)
                    # A body the handler did not read may still be arriving: end here.
                    keep_alive = (
                        item.keep_alive and item._body.complete and not wants_close(response)
                    )
                    head_only, http10 = item.method == "HEAD", item.version == "1.0"
                else:
                    response, keep_alive, head_only, http10 = item, False, False, False
                self._serving = None
                keep_alive = keep_alive and not server.closing
                if self._ignore_input and not self._queue:
                    keep_alive = False
                data = self._encode(response, keep_alive, head_only, http10)
                if data is None:
                    keep_alive = False
                    data = self._encode(
                        server.refusal(500, "InternalError", _INTERNAL_MESSAGE),
                        False,
                        head_only,
                        http10,
                    )
                    assert data is not None
                if not self.write(data):
                    self._forget_queue()
                    return
                if not keep_alive:
                    self._forget_queue()
                    self._close_after_reply()
                    return
                if self._can_write is not None and not self._can_write.done():
                    await self._can_write  # the write watch ends a caller that stops reading
        finally:
            self._serving = None
            self._worker = None
            if not self._closed and not self._lingering:
                self._idle_since = self._loop.time()
                if self._idle_timer is None:
                    self._idle_timer = self._loop.call_later(
                        server.keepalive_timeout, self._idle_expired
                    )
                if self._in_head:
                    self._arm_head_timer()  # a pipelined head, begun while answering
            if server.closing:
                server.idle_changed()

    def _encode(
        self, response: web.StreamResponse, keep_alive: bool, head_only: bool, http10: bool
    ) -> bytes | None:
        """The reply's bytes; a reply that cannot be written is a 502 (a replica's reply
        is passed on as it came), a failure of ours None (answered 500)."""
        try:
            return encode_reply(response, keep_alive=keep_alive, head_only=head_only, http10=http10)
        except InvalidReply as invalid:
            log.warning("a reply could not be written: %s", invalid)
            refused = self._server.refusal(502, "InvalidResponse", str(invalid))
            return encode_reply(refused, keep_alive=False, head_only=head_only, http10=http10)
        except Exception:
            log.exception("a reply could not be written")
            return None

    async def _answer(self, request: PublicRequest) -> web.StreamResponse:
        try:
            return await self._server.handler(request)
        except ClientGone:
            if request._body.refusal is not None:
                return request._body.refusal  # the body broke the rules on its way in
            return self._server.refusal(400, "IncompleteBody", "the request body was cut short")
        except Exception:
            # The handler answers every fault it expects; this is a bug of ours.
            log.exception("the gateway failed on a request from %s", self._remote)
            return self._server.refusal(500, "InternalError", _INTERNAL_MESSAGE)

    def write(self, data: bytes) -> bool:
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    @property
    def idle(self) -> bool:
        """Nothing to answer: between requests, or only finishing a close."""
        return (self._worker is None and not self._queue) or self._lingering or self._closed

    # -- clocks and closing -----------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(
                self._server.header_timeout, self._head_expired
            )

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._worker is None and not self._queue:
            self.close()

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self._worker is not None or self._queue or self._in_head or self._lingering:
            return  # answering (the end re-arms it), or a head's own clock runs
        left = self._idle_since + self._server.keepalive_timeout - self._loop.time()
        if left > 0.001:
            self._idle_timer = self._loop.call_later(left, self._idle_expired)
        else:
            self.close()

    def _stop_clocks(self) -> None:
        for timer in (self._head_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = None

    def _watch_writes(self) -> None:
        """While replies wait to be sent, check every WRITE_STALL_SECONDS that some went."""
        transport = self._transport
        if self._write_watch is not None or transport is None or self._closed:
            return
        self._write_left = transport.get_write_buffer_size()
        if self._write_left:
            self._write_watch = self._loop.call_later(WRITE_STALL_SECONDS, self._check_writes)

    def _check_writes(self) -> None:
        self._write_watch = None
        transport = self._transport
        if transport is None or self._closed:
            return
        left = transport.get_write_buffer_size()
        if left and left >= self._write_left:
            log.info("dropped a connection from %s that stopped reading", self._remote)
            self.abort()
            return
        self._watch_writes()

    def close(self) -> None:
        """Close once what is written has gone (the write watch drops a caller that stops
        reading meanwhile)."""
        self._stop_clocks()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
            self._watch_writes()

    def abort(self) -> None:
        self._stop_clocks()
        if self._transport is not None:
            self._transport.abort()

    def _close_after_reply(self) -> None:
        """Close once the reply is out. When the caller may still be sending (a body not
        read, a request that could not be parsed), closing at once would make the kernel
        reset the connection, and a caller busy sending would never read the reply: so only
        our side is shut, and what still comes is dropped until the caller closes or
        LINGER_SECONDS pass."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self.close()
            return
        self._lingering = True
        self._ignore_input = True
        transport.write_eof()
        self._watch_writes()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._stop_clocks()
        self._idle_timer = self._loop.call_later(LINGER_SECONDS, self.close)


_INTERNAL_MESSAGE = "the gateway failed on this request; it is logged"


class PublicServer:
    """Listen on the public port and hand each request to ``handler``."""

    def __init__(
        self,
        handler: Handler,
        refusal: Refusal,
        *,
        max_body_bytes: int,
        header_timeout: float,
        keepalive_timeout: float,
    ) -> None:
        self.handler = handler
        self.refusal = refusal
        self.max_body_bytes = max_body_bytes
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[_PublicConnection] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._all_idle: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop  # set by start(), before any connection

    async def start(self, host: str, port: int, backlog: int = 2048) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: _PublicConnection(self), host, port, backlog=backlog
        )

    def idle_changed(self) -> None:
        if (
            self.closing
            and self._all_idle is not None
            and all(connection.idle for connection in self.connections)
        ):
            self._all_idle.set()

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle connections, give requests in progress ``grace``
        seconds to be answered, then drop what is left."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.idle:
                connection.close()
        self._all_idle = asyncio.Event()
        self.idle_changed()
        if any(not connection.idle for connection in self.connections):
            try:
                await asyncio.wait_for(self._all_idle.wait(), grace)
            except TimeoutError:
                busy = sum(not connection.idle for connection in self.connections)
                log.warning("closing %d connections with requests still in progress", busy)
        for connection in list(self.connections):
            if connection.idle:
                connection.close()  # replies written go out (or the write watch ends it)
            else:
                connection.abort()  # past the grace: its request is given up
        if self._server is not None:
            await self._server.wait_closed()
