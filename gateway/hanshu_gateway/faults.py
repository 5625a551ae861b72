"""The gateway's own refusals as typed faults, after the Lambda runtime client's (and the
runtime's hanshu_runtime.faults): raised where they happen, rendered once, at the edge
that knows the request id, into the body every refusal has::

    {"errorType": ..., "errorMessage": ..., "requestId": ..., [field, limit]}

with ``X-Request-Id`` and ``X-Hanshu-Gateway-Error`` (the errorType: the dispatcher tells
the gateway's refusals from a function's replies by it, and retries a throttled call
without using up an attempt).

A class per status; ``error_type`` says which refusal of that status it is (``NoRoute``,
``FunctionNotReady``, ...), as callers and the dispatcher read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocations import HTTP_GATEWAY_ERROR

# After a refusal of a body (too large, too slow) the rest of it may still be on its way:
# the connection cannot carry another request.
CLOSE_CONNECTION: Mapping[str, str] = {"Connection": "close"}


def error_reply(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> web.Response:
    """The one rendering of a refusal; ``detail`` adds fields (``field``, ``limit``) after
    the three every refusal has."""
    body = ErrorBody(error_type, message, request_id, detail or {})
    response = web.Response(status=status, body=body.encode(), content_type="application/json")
    response.headers["X-Request-Id"] = request_id
    response.headers[HTTP_GATEWAY_ERROR] = error_type
    if headers:
        response.headers.update(headers)
    return response


class GatewayFault(Exception):
    """A request the gateway refuses. ``headers`` go on the reply (``Retry-After``,
    ``Allow``, ``WWW-Authenticate``); ``detail`` adds fields to the body."""

    status: ClassVar[int] = 500
    default_type: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.default_type
        # Its own copy: the proxy marks a cold start on a fault as on any reply.
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.detail = detail

    def reply(self, request_id: str) -> web.Response:
        return error_reply(
            self.status, self.error_type, self.message, request_id, self.headers, self.detail
        )


class BadRequest(GatewayFault):
    status = 400
    default_type = "BadRequest"


class Unauthorized(GatewayFault):
    status = 401
    default_type = "Unauthorized"


class Forbidden(GatewayFault):
    status = 403
    default_type = "Forbidden"


class NotFound(GatewayFault):
    status = 404
    default_type = "NotFound"


class MethodNotAllowed(GatewayFault):
    status = 405
    default_type = "MethodNotAllowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message, headers={"Allow": allow})


class RequestTimeout(GatewayFault):
    status = 408
    default_type = "RequestTimeout"


class PayloadTooLarge(GatewayFault):
    status = 413
    default_type = "RequestTooLarge"


class TooManyRequests(GatewayFault):
    status = 429
    default_type = "TooManyRequests"

    def __init__(self, message: str, *, error_type: str, retry_after: str) -> None:
        super().__init__(message, error_type=error_type, headers={"Retry-After": retry_after})


class BadGateway(GatewayFault):
    """A replica (or a service the gateway called for the caller) failed."""

    status = 502
    default_type = "BadGateway"


class Unavailable(GatewayFault):
    """Not now: a caller may try again, after ``retry_after`` seconds when given."""

    status = 503
    default_type = "ServiceUnavailable"

    def __init__(
        self, message: str, *, error_type: str | None = None, retry_after: str | None = None
    ) -> None:
        retry = {"Retry-After": retry_after} if retry_after is not None else None
        super().__init__(message, error_type=error_type, headers=retry)


class FunctionNotReady(Unavailable):
    """No replica of the Function took the request in time (the dispatcher reads this
    type as throttling)."""

    default_type = "FunctionNotReady"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after="5")


class GatewayTimeout(GatewayFault):
    status = 504
    default_type = "FunctionTimeout"


__all__ = [
    "CLOSE_CONNECTION",
    "BadGateway",
    "BadRequest",
    "Forbidden",
    "FunctionNotReady",
    "GatewayFault",
    "GatewayTimeout",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "error_reply",
]
