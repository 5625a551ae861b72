"""The gateway's public port's HTTP server: aiohttp's, with a header-read timeout and JSON
for the requests aiohttp's parser refuses.

A client that opens a connection (or starts a request) and then trickles its headers
(slowloris) would hold a connection forever. Each connection gets ``header_timeout``
seconds to deliver a complete request head whenever none is being handled; the keep-alive
timeout still covers idle connections between requests.

aiohttp answers a request it cannot parse (a bad request line, an oversized one, a header
with a stray CR) with a plain-text 400 before any handler runs. Callers of the gateway get
the same ``{errorType, errorMessage, requestId}`` body for those as for every other refusal,
and the status that says what was wrong: 414 for a request line over the limit, 431 for
headers over theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

# (status, errorType, errorMessage) -> the reply; the gateway adds a request id.
Refusal = Callable[[int, str, str], web.StreamResponse]

REQUEST_LINE_LIMIT = 8190  # aiohttp's default
# Larger than the request line's limit: that is how a 431 is told from a 414 (aiohttp raises
# the same LineTooLong for both, with the limit that was crossed).
HEADER_FIELD_LIMIT = 16 * 1024
TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's message; 128 is its limit


def describe_failure(
    status: int, failure: BaseException | None, line_limit: int
) -> tuple[int, str, str]:
    """(status, errorType, errorMessage) for what aiohttp reports through handle_error."""
    if isinstance(failure, LineTooLong):
        if str(failure.args[1]) == str(line_limit):
            return 414, "TargetTooLong", f"the request line is over {line_limit} bytes"
        return 431, "HeadersTooLarge", f"a header is over {failure.args[1]} bytes"
    if isinstance(failure, HttpProcessingError):
        if failure.message == TOO_MANY_HEADERS:
            return 431, "HeadersTooLarge", "the request has too many headers"
        # llhttp's message continues with the offending bytes, quoted: the first line says it.
        reason = (failure.message or "malformed request").splitlines()[0].rstrip(":")
        return 400, "BadRequest", f"the request is not valid HTTP/1.1: {reason}"
    if status == 504:
        return 504, "GatewayTimeout", "the gateway did not finish the request in time"
    return 500, "InternalError", "the gateway failed on this request; it is logged"


class _PublicHandler(RequestHandler):
    header_timeout = 10.0

    @staticmethod
    def refusal(status: int, error_type: str, message: str) -> web.StreamResponse:
        raise NotImplementedError  # replaced by HeaderTimeoutServer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = asyncio.get_running_loop().call_later(
                self.header_timeout, self._expire
            )

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        # aiohttp internals: parsed messages waiting, or a request being handled.
        if not self._messages and not self._request_in_progress and self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._disarm()
        else:
            self._arm()  # part of a head arrived: the rest is due within the timeout

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            # Garbage reaches any public port all day: not worth a traceback each.
            self.logger.debug("refused a malformed request from %s: %r", request.remote, exc)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("a reply was already under way; cannot send the error")
        response = self.refusal(*describe_failure(status, exc, self.max_line_size))
        response.force_close()
        return response


class HeaderTimeoutServer(web.Server):
    def __init__(
        self, *args: Any, header_timeout: float = 10.0, refusal: Refusal, **kwargs: Any
    ) -> None:
        kwargs.setdefault("max_line_size", REQUEST_LINE_LIMIT)
        kwargs.setdefault("max_field_size", HEADER_FIELD_LIMIT)
        super().__init__(*args, **kwargs)
        self._handler_class = type(
            "PublicHandler",
            (_PublicHandler,),
            {"header_timeout": header_timeout, "refusal": staticmethod(refusal)},
        )

    def _make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        try:
            return super()._make_request(message, payload, protocol, writer, task)
        except ValueError:
            # An absolute-form target whose host yarl cannot decode ('http://xn--zz/x')
            # fails inside aiohttp before any handler runs, leaving the caller with no
            # reply and an open socket. Build the request without that host: an empty
            # host is refused as InvalidHost by the gateway like any bad Host.
            relative = message._replace(url=message.url.relative())
            return web.BaseRequest(relative, payload, protocol, writer, task, self._loop, host="")

    def __call__(self) -> RequestHandler:
        handler: RequestHandler = self._handler_class(self, loop=self._loop, **self._kwargs)
        return handler
