"""A header-read timeout for the gateway's public port, which aiohttp does not have.

A client that opens a connection (or starts a request) and then trickles its headers
(slowloris) would hold a connection forever. Each connection gets ``header_timeout``
seconds to deliver a complete request head whenever none is being handled; the keep-alive
timeout still covers idle connections between requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler


class _HeaderTimeoutHandler(RequestHandler):
    header_timeout = 10.0

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


class HeaderTimeoutServer(web.Server):
    def __init__(self, *args: Any, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handler_class = type(
            "HeaderTimeoutHandler", (_HeaderTimeoutHandler,), {"header_timeout": header_timeout}
        )

    def __call__(self) -> RequestHandler:
        handler: RequestHandler = self._handler_class(self, loop=self._loop, **self._kwargs)
        return handler
