"""The one client of the gateway's internal port: the dispatcher (stored invocations,
destinations, schedules, stream batches, failure records) calls the gateway through it,
so every call carries the internal token and reaches a path the gateway serves
(gateway_paths).

The calls return the gateway's reply, whatever its status; a connection that fails or a
reply that takes longer than ``time_limit`` raises (``aiohttp.ClientError``, ``TimeoutError``):
each caller decides what that means for its event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from hanshu_api import internal_headers
from hanshu_api.gateway_paths import dispatch_path, enqueue_path, invoke_path
from hanshu_api.invocations import ASYNC, HTTP_GATEWAY_ERROR, HTTP_INVOCATION_TYPE
from multidict import CIMultiDict

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass(frozen=True, slots=True)
class InternalReply:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes

    @property
    def gateway_error(self) -> str | None:
        """The errorType when the gateway itself refused (not the Function's reply)."""
        return self.headers.get(HTTP_GATEWAY_ERROR)


class InternalGateway:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str = "") -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token = token

    def url(self, path: str) -> str:
        return self.base_url + path

    async def invoke(
        self,
        namespace: str,
        function: str,
        event: Any,
        *,
        time_limit: float,
        request_id: str | None = None,
        version: int | None = None,
        alias: str | None = None,
    ) -> InternalReply:
        """Run ``event`` (JSON) on the Function (or its version, or its alias's pick) now,
        through its cold queue and limits."""
        headers = internal_headers(self.token)
        if request_id is not None:
            headers[REQUEST_ID_HEADER] = request_id
        return await self._call(
            "POST",
            invoke_path(namespace, function, version, alias),
            headers=headers,
            time_limit=time_limit,
            json=event,
        )

    async def enqueue(
        self,
        namespace: str,
        function: str,
        body: bytes,
        *,
        time_limit: float | None = None,
        idempotency_key: str | None = None,
        invocation_type: str = ASYNC,
        version: int | None = None,
        alias: str | None = None,
    ) -> InternalReply:
        """Store ``body`` (JSON) as an async invocation of the Function: 202 when stored.
        ``time_limit`` None: the session's own. ``invocation_type`` is what its runs are
        billed as: Async, or Event for the platform's own events (a schedule's fire)."""
        headers = {
            **internal_headers(self.token),
            "Content-Type": "application/json",
            HTTP_INVOCATION_TYPE: invocation_type,
        }
        if idempotency_key is not None:
            headers[IDEMPOTENCY_KEY_HEADER] = idempotency_key
        return await self._call(
            "POST",
            enqueue_path(namespace, function, version, alias),
            headers=headers,
            time_limit=time_limit,
            data=body,
        )

    async def dispatch(
        self,
        namespace: str,
        function: str,
        method: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        time_limit: float,
    ) -> InternalReply:
        """Run a stored invocation: its request replayed, ``headers`` as given."""
        return await self._call(
            method,
            dispatch_path(namespace, function),
            headers=[*headers, *internal_headers(self.token).items()],
            time_limit=time_limit,
            data=body,
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        time_limit: float | None,
        **body: Any,  # json= or data=, and the time limit when there is one
    ) -> InternalReply:
        if time_limit is not None:
            body["timeout"] = aiohttp.ClientTimeout(total=time_limit)
        async with self.session.request(
            method, self.url(path), headers=headers, allow_redirects=False, **body
        ) as reply:
            return InternalReply(reply.status, CIMultiDict(reply.headers), await reply.read())
