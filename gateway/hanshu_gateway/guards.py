"""The guards a route puts before its Function: CORS preflights, API keys, rate limits.
Each passes quietly or raises the fault the caller gets. (The decisions themselves, the
token bucket and the CORS headers, are protect.py's.)"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from hanshu_api.models import Cors

from .catalog import KeyLookup
from .faults import Forbidden, TooManyRequests, Unauthorized, Unavailable
from .protect import TokenBucket, preflight_headers, retry_after_header
from .routes import Route

log = logging.getLogger("hanshu.gateway")


def echoable(value: str | None) -> str | None:
    """A request header's value if it is safe to send back in a reply header (bytes that
    are not UTF-8 arrive as surrogates, which no reply can carry)."""
    if value is None or not value.isascii() or not value.isprintable():
        return None
    return value


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "Access-Control-Request-Method" in headers


def preflight_reply(
    cors: Cors, origin: str, headers: Mapping[str, str], request_id: str
) -> web.Response:
    """The gateway's answer to a CORS preflight: the Function never sees one."""
    requested = echoable(headers.get("Access-Control-Request-Headers"))
    allowed = preflight_headers(cors, origin, requested)
    if allowed is None:
        raise Forbidden(
            f"origin {origin} is not allowed by this Trigger", error_type="CorsOriginNotAllowed"
        )
    return web.Response(status=204, headers={**allowed, "X-Request-Id": request_id})


def check_api_key(headers: Mapping[str, str], route: Route, key_verifiers: KeyLookup) -> None:
    """A route with ``auth`` takes only a caller presenting one of its keys."""
    auth = route.http.auth
    if auth is None:
        return
    presented = headers.get(auth.header)
    if not presented:
        raise Unauthorized(
            f"send the API key in the {auth.header} header",
            error_type="MissingApiKey",
            headers={"WWW-Authenticate": f'ApiKey header="{auth.header}"'},
        )
    # Salted hashes the operator published from the Trigger's Secret: the gateway never
    # holds the keys themselves, nor reads Secrets outside its namespace.
    verifiers = key_verifiers(route.namespace, route.trigger)
    if verifiers is None:
        log.error(
            "no API key verifiers published for Trigger %s/%s (Secret %s, key %s)",
            route.namespace,
            route.trigger,
            auth.secret_name,
            auth.secret_key,
        )
        raise Unavailable(
            "this route's API keys are not available; try again later",
            error_type="ApiKeysUnavailable",
        )
    if not verifiers.matches(presented):
        raise Forbidden("the API key is not valid for this route", error_type="InvalidApiKey")


def check_rate(bucket: TokenBucket, now: float) -> None:
    """A request over the route's limit is refused, told when a token will be there."""
    wait = bucket.take(now)
    if wait > 0:
        raise TooManyRequests(
            f"over this route's limit of {bucket.rate:g} requests/s",
            error_type="RateLimited",
            retry_after=retry_after_header(wait),
        )


__all__ = ["check_api_key", "check_rate", "echoable", "is_preflight", "preflight_reply"]
