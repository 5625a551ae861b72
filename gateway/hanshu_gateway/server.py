"""The gateway's HTTP servers: the public port (every HTTP Trigger) and the internal port
(health, metrics, and the invoke path schedules use to wake a Function)."""

from __future__ import annotations

import asyncio
import gc
import hmac
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from hanshu_api import INTERNAL_TOKEN_ENV, INTERNAL_TOKEN_HEADER
from hanshu_api.invocations import (
    EVENT,
    HTTP_ATTEMPT,
    HTTP_FC_INVOCATION_TYPE,
    HTTP_GATEWAY_ERROR,
    HTTP_INVOCATION_ID,
    HTTP_INVOCATION_TYPE,
    HTTP_JOB_ID,
    HTTP_TARGET,
    SYNC,
    StoredRequest,
    invocation_type_of,
)
from hanshu_api.jetstream import StreamSettings
from hanshu_api.loop_lag import LoopLag, watch_loop
from hanshu_api.platform import Endpoint
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from . import metrics
from .async_calls import AsyncCalls, is_status_path
from .async_intake import AsyncIntake
from .catalog import Catalog, FunctionEntry
from .object_notifications import ObjectNotifications, is_events_path
from .pool import NoEndpointInTime, QueueFull, ReplicasFailing
from .probe import replica_prober
from .protect import (
    preflight_headers,
    response_cors_headers,
    retry_after_header,
)
from .public_http import BodyTooLarge, PublicRequest, PublicServer
from .routes import Route, RouteTable
from .stats import StatsReporter
from .target import BadTarget, Target, checked_host, parse_target, visible_ascii
from .upstream import MalformedReply, UpstreamClosed, UpstreamPool

log = logging.getLogger("hanshu.gateway")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    # The gateway has read the whole body already: asking a replica to "continue" would
    # only make it send an interim 100.
    "expect",
})  # fmt: skip
RETRY_PENALTY_SECONDS = 0.05
# When to try a Function whose replicas cannot start again: a fix takes a person.
FAULT_RETRY_AFTER_SECONDS = 10
# Only the runtime's own "draining" 503 carries it (the runtime strips it from what a
# function returns): such a request is retried on another replica. Never shown to callers.
DRAINING_HEADER = "X-Hanshu-Draining"
# A function's reply may not pose as the gateway's own refusal (the dispatcher would take
# its 503 for throttling and retry it without using an attempt).
REPLY_DROP = HOP_BY_HOP | {DRAINING_HEADER.lower(), "x-hanshu-gateway-error"}
# ... and the gateway writes the request id itself, the one the caller was given.
_REPLY_REPLACED = REPLY_DROP | {"x-request-id"}
MAX_REQUEST_ID_LENGTH = 200
# Requests routed lately, by (target as sent, host, method): most traffic repeats a few, and
# parsing the target and matching it was a fifth of the gateway's own time per request.
# Emptied when full (paths with ids in them rarely repeat) and whenever the table changes.
ROUTED_CACHE_SIZE = 256
INVOCATION_HEADERS = frozenset(
    name.lower()
    for name in (
        HTTP_INVOCATION_ID,
        HTTP_ATTEMPT,
        HTTP_INVOCATION_TYPE,
        HTTP_FC_INVOCATION_TYPE,
        HTTP_JOB_ID,
        HTTP_TARGET,
    )
)
# What of a caller's headers never reaches a replica: hop-by-hop ones; X-Forwarded-Prefix
# (only the gateway says where an app is mounted); the invocation headers only the
# dispatcher sets (id, attempt, type, job); and those the gateway writes itself below.
UPSTREAM_DROP = (
    HOP_BY_HOP
    | INVOCATION_HEADERS
    | {"x-forwarded-prefix", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    | {"x-request-id"}
)
Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    internal_port: int = 8081
    max_body_bytes: int = 6 * 1024 * 1024
    queue_limit: int = 1000
    cold_start_timeout: float = 60.0
    read_timeout: float = 30.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    autoscaler_url: str = ""
    stats_interval: float = 1.0
    # Async invocation stores events in NATS JetStream: none configured, none offered.
    nats_url: str = ""
    idempotency_window: float = 3600.0
    status_ttl: float = 24 * 3600.0
    nats_replicas: int = 1  # JetStream copies of the stream and buckets (3 on a 3-node NATS)
    # Hosts besides AWS SNS' own that an SNS SubscribeURL may point at.
    sns_confirm_hosts: tuple[str, ...] = ()
    # Required on the internal invoke, enqueue and dispatch paths when set (the chart sets it).
    internal_token: str = ""


class ConfigError(Exception):
    """A bad setting: ``python -m hanshu_gateway`` exits with this one line."""


def _setting(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return raw or None


def _whole_number(
    env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = _setting(env, name)
    if raw is None:
        return default
    accepted = f"a whole number >= {minimum}"
    if maximum is not None:
        accepted = f"a whole number from {minimum} to {maximum}"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not valid: set it to {accepted}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(f"{name}={raw!r} is out of range: set it to {accepted}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _setting(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={raw!r} is not valid: set it to a number of seconds > 0")
    return value


def _http_url(env: Mapping[str, str], name: str) -> str:
    raw = _setting(env, name)
    if raw is None:
        return ""
    try:
        url = URL(raw)
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"{name}={raw!r} is not valid: set it to an http(s) URL such as "
            "http://hanshu-operator:8090, or leave it empty"
        )
    return raw


def _nats_url(env: Mapping[str, str], name: str) -> str:
    raw = _setting(env, name)
    if raw is None:
        return ""
    if not raw.startswith(("nats://", "tls://")):
        raise ConfigError(
            f"{name}={raw!r} is not valid: set it to a nats:// or tls:// URL such as "
            "nats://hanshu-nats:4222, or leave it empty to turn async invocation off"
        )
    return raw


def config_from_env(env: Mapping[str, str] = os.environ) -> GatewayConfig:
    """Parse and check every setting; a bad one is a ConfigError naming the variable."""
    return GatewayConfig(
        host=_setting(env, "HANSHU_GATEWAY_HOST") or "0.0.0.0",
        port=_whole_number(env, "HANSHU_GATEWAY_PORT", 8080, minimum=1, maximum=65535),
        internal_port=_whole_number(
            env, "HANSHU_GATEWAY_INTERNAL_PORT", 8081, minimum=1, maximum=65535
        ),
        max_body_bytes=_whole_number(env, "HANSHU_MAX_BODY_BYTES", 6 * 1024 * 1024, minimum=0),
        queue_limit=_whole_number(env, "HANSHU_QUEUE_LIMIT", 1000, minimum=1),
        cold_start_timeout=_seconds(env, "HANSHU_COLD_START_TIMEOUT", 60.0),
        read_timeout=_seconds(env, "HANSHU_READ_TIMEOUT", 30.0),
        header_timeout=_seconds(env, "HANSHU_HEADER_TIMEOUT", 10.0),
        autoscaler_url=_http_url(env, "HANSHU_AUTOSCALER_URL"),
        stats_interval=_seconds(env, "HANSHU_STATS_INTERVAL", 1.0),
        nats_url=_nats_url(env, "HANSHU_NATS_URL"),
        idempotency_window=_seconds(env, "HANSHU_IDEMPOTENCY_WINDOW", 3600.0),
        status_ttl=_seconds(env, "HANSHU_STATUS_TTL", 24 * 3600.0),
        nats_replicas=_whole_number(env, "HANSHU_NATS_REPLICAS", 1, minimum=1, maximum=5),
        internal_token=env.get(INTERNAL_TOKEN_ENV, "").strip(),
        sns_confirm_hosts=tuple(
            h.strip().lower()
            for h in env.get("HANSHU_SNS_CONFIRM_HOSTS", "").split(",")
            if h.strip()
        ),
    )


def error(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    *,
    detail: Mapping[str, Any] | None = None,
) -> web.Response:
    """The gateway's own refusal; ``detail`` adds fields (``field``, ``limit``) to the body."""
    body: dict[str, Any] = {
        "errorType": error_type,
        "errorMessage": message,
        "requestId": request_id,
    }
    if detail:
        body.update((name, value) for name, value in detail.items() if name not in body)
    response = web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )
    response.headers["X-Request-Id"] = request_id
    # Tells the gateway's own refusals from a function's replies (the dispatcher retries a
    # throttled call without using up an attempt).
    response.headers[HTTP_GATEWAY_ERROR] = error_type
    if headers:
        response.headers.update(headers)
    return response


@dataclass(frozen=True, slots=True)
class Routed:
    route: Route
    target: Target  # as the Function sees it: the prefix stripped when the Trigger says so
    host: str  # what was routed on: the Host header, or an absolute-form target's host


def _echoable(value: str | None) -> str | None:
    """A request header's value if it is safe to send back in a reply header (aiohttp
    gives bytes that are not UTF-8 as surrogates, which no reply can carry)."""
    if value is None or not value.isascii() or not value.isprintable():
        return None
    return value


def _draining(headers: list[tuple[str, str]]) -> bool:
    target = DRAINING_HEADER.lower()
    return any(name.lower() == target and value.lower() == "true" for name, value in headers)


class Gateway:
    def __init__(self, config: GatewayConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.reporter = (
            StatsReporter(config.autoscaler_url, catalog.all_stats, config.stats_interval)
            if config.autoscaler_url
            else None
        )
        # Never a cookie jar on this hop: one client serves every caller.
        self._upstream = UpstreamPool()
        self._ids = itertools.count(1)
        self._routed: dict[tuple[str, str, str], Routed] = {}
        # The table (and its version) self._routed was filled from: a change forgets it.
        self._routed_by: RouteTable | None = None
        self._routed_version = -1
        self._id_prefix = os.urandom(4).hex()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runners: list[web.BaseRunner] = []
        self._public: PublicServer | None = None
        self.loop_lag: LoopLag | None = None
        # Whether every source has delivered its first full state (the cluster's watches).
        self.routes_synced: Callable[[], bool] = lambda: True
        self.intake = (
            AsyncIntake(
                config.nats_url,
                StreamSettings(
                    replicas=config.nats_replicas,
                    status_ttl_seconds=config.status_ttl,
                    idempotency_window_seconds=config.idempotency_window,
                ),
            )
            if config.nats_url
            else None
        )
        self.async_calls = AsyncCalls(
            self.intake,
            error,
            catalog.route_of_trigger,
            self._check_key,
            max_batch_bytes=config.max_body_bytes,
        )
        self.object_notifications = ObjectNotifications(
            catalog, self.intake, error, config.sns_confirm_hosts
        )

    # -- the public port ------------------------------------------------------------------

    def _request_id(self, request: PublicRequest | web.BaseRequest) -> str:
        # The caller's id is echoed in headers and logs: only one that is safe to echo.
        given = request.headers.get("X-Request-Id", "")
        if given and len(given) <= MAX_REQUEST_ID_LENGTH and visible_ascii(given):
            return given
        return self.new_request_id()

    def new_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids):x}"

    def refusal(self, status: int, error_type: str, message: str) -> web.StreamResponse:
        """A reply to a request that could not be parsed: the same JSON as any other."""
        return error(status, error_type, message, self.new_request_id())

    def _route(self, request: PublicRequest, request_id: str) -> Routed | web.Response:
        """The route and the target its Function sees, or the reply refusing the request."""
        table = self.catalog.routes
        if table is not self._routed_by or table.version != self._routed_version:
            self._routed.clear()
            self._routed_by, self._routed_version = table, table.version
        key = (request.raw_path, request.host, request.method)
        routed = self._routed.get(key)
        if routed is None:
            found = self._find_route(request, request_id, table)
            if isinstance(found, web.Response):
                return found  # refusals are not kept: each counts, and has its own id
            if len(self._routed) >= ROUTED_CACHE_SIZE:
                self._routed.clear()
            routed = self._routed[key] = found
        return routed

    def _find_route(
        self, request: PublicRequest, request_id: str, table: RouteTable
    ) -> Routed | web.Response:
        try:
            target = parse_target(request.raw_path)
            host = checked_host(request.host)
        except BadTarget as bad:
            return error(400, bad.error_type, str(bad), request_id)
        match = table.match(host, target, request.method)
        if match.route is None and match.allowed_methods:
            return error(
                405,
                "MethodNotAllowed",
                f"{request.method} is not allowed here; use {', '.join(match.allowed_methods)}",
                request_id,
                {"Allow": ", ".join(match.allowed_methods)},
            )
        upstream = match.route.upstream_target(target) if match.route is not None else None
        # A replica's own /_hanshu/ paths are not public, whatever the prefix.
        if match.route is None or upstream is None or upstream.reserved:
            metrics.NO_ROUTE.inc()
            return error(404, "NoRoute", f"no Trigger serves {host}{target.path}", request_id)
        return Routed(match.route, upstream, host)

    async def handle(self, request: PublicRequest) -> web.StreamResponse:
        request_id = self._request_id(request)
        raw_path = request.raw_path
        if is_status_path(raw_path):
            return await self.async_calls.status(request, request_id)
        if is_events_path(raw_path):
            return await self.object_notifications.handle(request, request_id)
        routed = self._route(request, request_id)
        if isinstance(routed, web.Response):
            return routed
        route = routed.route
        cors = route.http.cors
        # Echoed back in CORS headers: an Origin no browser could send counts as none.
        origin = _echoable(request.headers.get("Origin"))
        if (
            cors is not None
            and origin
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
        ):
            requested = _echoable(request.headers.get("Access-Control-Request-Headers"))
            headers = preflight_headers(cors, origin, requested)
            if headers is None:
                return error(
                    403,
                    "CorsOriginNotAllowed",
                    f"origin {origin} is not allowed by this Trigger",
                    request_id,
                )
            return web.Response(status=204, headers={**headers, "X-Request-Id": request_id})
        response = await self._serve(request, routed, request_id)
        if cors is not None and origin:
            response.headers.update(response_cors_headers(cors, origin))
        return response

    async def _check_key(
        self, request: PublicRequest, route: Route, request_id: str
    ) -> web.Response | None:
        auth = route.http.auth
        if auth is None:
            return None
        presented = request.headers.get(auth.header)
        if not presented:
            return error(
                401,
                "MissingApiKey",
                f"send the API key in the {auth.header} header",
                request_id,
                {"WWW-Authenticate": f'ApiKey header="{auth.header}"'},
            )
        # Salted hashes the operator published from the Trigger's Secret: the gateway
        # never holds the keys themselves, nor reads Secrets outside its namespace.
        verifiers = self.catalog.key_verifiers(route.namespace, route.trigger)
        if verifiers is None:
            log.error(
                "no API key verifiers published for Trigger %s/%s (Secret %s, key %s)",
                route.namespace,
                route.trigger,
                auth.secret_name,
                auth.secret_key,
            )
            return error(
                503,
                "ApiKeysUnavailable",
                "this route's API keys are not available; try again later",
                request_id,
            )
        if not verifiers.matches(presented):
            return error(
                403, "InvalidApiKey", "the API key is not valid for this route", request_id
            )
        return None

    async def _serve(
        self, request: PublicRequest, routed: Routed, request_id: str
    ) -> web.StreamResponse:
        route = routed.route
        started = time.monotonic()
        namespace, function = route.function_key
        entry = self.catalog.functions.get(route.function_key)
        code = 500
        try:
            if entry is None:
                # An async call must never be taken for a Function that is not there.
                code = 503 if invocation_type_of(request.headers) in (SYNC, None) else 404
                return error(
                    code,
                    "FunctionNotFound",
                    f"the Function '{function}' of this route does not exist",
                    request_id,
                )
            if route.http.auth is not None:
                refused = await self._check_key(request, route, request_id)
                if refused is not None:
                    code = refused.status
                    return refused
            invocation_type = invocation_type_of(request.headers)
            if invocation_type is None:
                code = 400
                return error(
                    400,
                    "InvalidInvocationType",
                    f"{HTTP_INVOCATION_TYPE} must be Sync, Async or Batch",
                    request_id,
                )
            bucket = self.catalog.bucket(route)
            if bucket is not None:
                wait = bucket.take(time.monotonic())
                if wait > 0:
                    code = 429
                    return error(
                        429,
                        "RateLimited",
                        f"over this route's limit of "
                        f"{route.http.rate_limit.requests_per_second:g} requests/s",  # type: ignore[union-attr]
                        request_id,
                        {"Retry-After": retry_after_header(wait)},
                    )
            try:
                body = await request.read(self.config.max_body_bytes, self.config.read_timeout)
            except BodyTooLarge:
                code = 413
                return error(
                    413,
                    "RequestTooLarge",
                    f"the body is over the limit of {self.config.max_body_bytes} bytes",
                    request_id,
                    {"Connection": "close"},
                )
            except TimeoutError:
                code = 408
                return error(
                    408,
                    "RequestTimeout",
                    "the request body did not arrive in time",
                    request_id,
                    {"Connection": "close"},
                )
            headers = self._upstream_headers(request, routed, request_id)
            # The raw target, never a decoded one: decoding is the replica's, and only once.
            path = routed.target.upstream
            if invocation_type != SYNC:
                stored = StoredRequest(request.method, path, tuple(headers))
                accepted = await self.async_calls.accept(
                    invocation_type,
                    route,
                    entry,
                    entry.async_policy,
                    stored,
                    body,
                    request.headers,
                    request_id,
                )
                code = accepted.status
                return accepted
            response = await self.forward(entry, request.method, path, headers, body, request_id)
            code = response.status
            return response
        finally:
            metrics.count_request(namespace, function, route.trigger, code)
            if entry is not None:
                entry.meters.latency.observe(time.monotonic() - started)

    def _upstream_headers(self, request: PublicRequest, routed: Routed, request_id: str) -> Headers:
        """The caller's headers for the replica, as (name, value) pairs: a list, not a
        CIMultiDict, as the hop writes them in order and never looks one up."""
        route = routed.route
        drop = UPSTREAM_DROP
        if route.http.auth:
            # The API key stays at the gateway.
            drop = drop | {route.http.auth.header.lower()}
        caller = request.headers
        headers = [(k, v) for k, v in caller.items() if k.lower() not in drop]
        client = request.remote or ""
        forwarded_for = caller.get("X-Forwarded-For")
        headers.append(
            ("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client)
        )
        headers.append(("X-Forwarded-Proto", caller.get("X-Forwarded-Proto", request.scheme)))
        headers.append(("X-Forwarded-Host", routed.host))
        headers.append(("X-Request-Id", request_id))
        if route.http.strip_prefix and route.prefix:
            # Decoded, as the runtime takes it (the Trigger may spell it either way).
            headers.append(("X-Forwarded-Prefix", "/" + "/".join(route.prefix)))
        return headers

    async def forward(
        self,
        entry: FunctionEntry,
        method: str,
        path: str,
        headers: Headers,
        body: bytes,
        request_id: str,
        invocation_type: str = SYNC,
    ) -> web.StreamResponse:
        """Queue for a replica (waking the Function when cold), forward, and retry what a
        replica that is starting or draining refuses."""
        function = entry.key[1]
        pool, stats, meters = entry.pool, entry.stats, entry.meters
        arrived = time.monotonic()
        deadline = arrived + self.config.cold_start_timeout
        cold = pool.is_cold
        stats.arrivals += 1
        if cold:
            meters.cold_starts.inc()
        stats.in_flight += 1
        try:
            while True:
                endpoint = pool.try_acquire()
                if endpoint is None:
                    if pool.is_cold and self.reporter is not None:
                        self.reporter.cold(entry.key)
                    if pool.prober is None:  # starting replicas are probed while we wait
                        pool.prober = replica_prober(self._upstream)
                    stats.queued += 1
                    try:
                        endpoint = await pool.acquire(max(0.0, deadline - time.monotonic()))
                    except QueueFull:
                        return error(
                            429,
                            "QueueFull",
                            f"{pool.queued} requests are already waiting for "
                            f"'{function}'; retry shortly",
                            request_id,
                            {"Retry-After": "1"},
                        )
                    except NoEndpointInTime:
                        return error(
                            503,
                            "FunctionNotReady",
                            f"'{function}' did not become ready within "
                            f"{self.config.cold_start_timeout:g}s",
                            request_id,
                            {"Retry-After": "5"},
                        )
                    except ReplicasFailing as failing:
                        # Its replicas cannot start (the Function's status says why): say so
                        # now rather than after the whole cold-start timeout. The cold
                        # report above still went out, so a fix outside the spec (an image
                        # pushed, a node added) is found by a replica that keeps trying.
                        return error(
                            503,
                            failing.fault.reason,
                            failing.for_caller(function),
                            request_id,
                            {"Retry-After": str(FAULT_RETRY_AFTER_SECONDS)},
                        )
                    finally:
                        stats.queued -= 1
                call_started = time.monotonic()
                outcome = await self._call(entry, endpoint, method, path, headers, body, request_id)
                if outcome is not None:
                    # Billed from the replica taking the request, not from the wait for one.
                    meters.bill(
                        invocation_type,
                        entry.memory_gb * (time.monotonic() - call_started),
                        outcome.status,
                    )
                    if cold:
                        waited = time.monotonic() - arrived
                        meters.cold_start_latency.observe(waited)
                        outcome.headers["X-Hanshu-Cold-Start"] = "true"
                    return outcome
                if time.monotonic() > deadline:
                    return error(
                        503,
                        "FunctionNotReady",
                        f"no replica of '{function}' accepted the request",
                        request_id,
                        {"Retry-After": "5"},
                    )
        finally:
            stats.in_flight -= 1
            stats.last_completed = time.monotonic()

    async def _call(
        self,
        entry: FunctionEntry,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: Headers,
        body: bytes,
        request_id: str,
    ) -> web.Response | None:
        """One attempt; None means 'not served, try another replica'."""
        pool = entry.pool
        try:
            reply = await self._upstream.request(
                endpoint, method, path, headers, body, entry.timeout_seconds + 1
            )
        except UpstreamClosed:
            # The request reached a replica that died before replying (the pool already
            # retried a kept-alive connection closed while idle). Running it again elsewhere
            # could run it twice, and a request that crashes replicas would crash them all.
            log.warning("replica %s closed the connection without a reply", endpoint.url)
            pool.penalize(endpoint, RETRY_PENALTY_SECONDS)
            return error(
                502,
                "ReplicaFailed",
                f"a replica of '{entry.key[1]}' failed before it replied",
                request_id,
            )
        except OSError as failure:
            # Refused: a replica that is starting or stopping. Never a 502 for the caller.
            log.info("replica %s refused the request (%s); trying again", endpoint.url, failure)
            pool.penalize(endpoint, RETRY_PENALTY_SECONDS)
            return None
        except MalformedReply as failure:
            log.warning("replica %s sent a malformed reply: %s", endpoint.url, failure)
            return error(
                502,
                "ReplicaFailed",
                f"a replica of '{entry.key[1]}' sent a malformed reply",
                request_id,
            )
        except TimeoutError:
            return error(
                504,
                "FunctionTimeout",
                f"'{entry.key[1]}' did not answer within {entry.timeout_seconds:g}s",
                request_id,
            )
        finally:
            pool.release(endpoint)
        if reply.status == 503 and _draining(reply.headers):
            pool.penalize(endpoint, 1.0)  # it is shutting down; another one will do
            return None
        # Pairs, not a CIMultiDict: aiohttp builds its own from them (one copy, not two).
        response_headers = [
            (name, value) for name, value in reply.headers if name.lower() not in _REPLY_REPLACED
        ]
        response_headers.append(("X-Request-Id", request_id))
        if method == "HEAD":
            # No body comes, but the length a GET would get does: the replica's, passed on.
            length = next((v for n, v in reply.headers if n.lower() == "content-length"), None)
            if length is not None and length.isdigit():
                response_headers.append(("Content-Length", length))
        return web.Response(status=reply.status, body=reply.body, headers=response_headers)

    # -- the internal port ----------------------------------------------------------------

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        """POST /_hanshu/invoke/{namespace}/{function}: a raw event for schedules and event
        sources; it queues and wakes the Function like any request."""
        request_id = self._request_id(request)
        key = (request.match_info["namespace"], request.match_info["function"])
        entry = self.catalog.functions.get(key)
        if entry is None:
            return error(404, "FunctionNotFound", f"no Function {key[0]}/{key[1]}", request_id)
        body = await request.read()
        headers = [("Content-Type", "application/json"), ("X-Request-Id", request_id)]
        return await self.forward(
            entry, "POST", "/_hanshu/invoke", headers, body, request_id, EVENT
        )

    async def enqueue(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["namespace"], request.match_info["function"])
        entry = self.catalog.functions.get(key)
        return await self.async_calls.enqueue(
            request,
            entry,
            entry.async_policy if entry else None,
            self._request_id(request),
        )

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["namespace"], request.match_info["function"])
        return await self.async_calls.dispatch(
            request, self.catalog.functions.get(key), self.forward, self._request_id(request)
        )

    async def function_states(self, request: web.Request) -> web.Response:
        """GET /functions: each Function's ready replicas and requests, as the gateway sees."""
        return web.json_response(
            [
                {
                    "namespace": key[0],
                    "name": key[1],
                    "readyReplicas": len(entry.pool.ready),
                    "endpoints": [endpoint.url for endpoint in entry.pool.ready],
                    "inFlight": entry.stats.in_flight,
                    "queued": entry.pool.queued,
                }
                for key, entry in sorted(self.catalog.functions.items())
            ]
        )

    async def healthz(self, request: web.Request) -> web.Response:
        # Answering at all is the proof of life: long work runs in slices, so a gateway
        # catching up on 10,000 routes answers between two of them. The lag says how busy.
        lag = self.loop_lag.summary().as_dict() if self.loop_lag else {}
        return web.json_response({"status": "alive", "eventLoopLag": lag})

    async def readyz(self, request: web.Request) -> web.Response:
        # Not before the routes are known: a new gateway pod taking traffic with an empty
        # table would answer 404 NoRoute for every Trigger during a rollout.
        if not self.routes_synced():
            return web.json_response({"status": "syncing"}, status=503)
        # NATS does not decide readiness: synchronous calls are served without it, and an
        # async call meanwhile gets 503 AsyncUnavailable. It is reported, for operators.
        asynchronous = (
            "off"
            if self.intake is None
            else ("connected" if self.intake.available else "unavailable")
        )
        return web.json_response({"status": "ready", "async": asynchronous})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def _internal_caller(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Only the platform (dispatcher, operator) may invoke through the internal port."""
        token = self.config.internal_token
        if token and request.path.startswith("/_hanshu/"):
            given = request.headers.get(INTERNAL_TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(errors="replace"), token.encode()):
                return error(
                    401,
                    "InvalidInternalToken",
                    f"the internal paths need the platform's {INTERNAL_TOKEN_HEADER}",
                    self.new_request_id(),
                )
        response: web.StreamResponse = await handler(request)
        return response

    def internal_app(self) -> web.Application:
        app = web.Application(middlewares=[self._internal_caller])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/functions", self.function_states)
        app.router.add_post("/_hanshu/invoke/{namespace}/{function}", self.invoke)
        app.router.add_post("/_hanshu/enqueue/{namespace}/{function}", self.enqueue)
        app.router.add_route("*", "/_hanshu/dispatch/{namespace}/{function}", self.dispatch)
        return app

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._public = PublicServer(
            self.handle,
            self.refusal,
            max_body_bytes=self.config.max_body_bytes,
            header_timeout=self.config.header_timeout,
            keepalive_timeout=self.config.keepalive_timeout,
        )
        await self._public.start(self.config.host, self.config.port, backlog=2048)
        internal = web.AppRunner(self.internal_app(), access_log=None)
        await internal.setup()
        site = web.TCPSite(internal, self.config.host, self.config.internal_port, backlog=2048)
        await site.start()
        self._runners.append(internal)
        if self.reporter is not None:
            self._tasks.append(asyncio.create_task(self.reporter.run()))
        self.loop_lag = watch_loop()
        # What is alive once serving starts (modules, the route table, clients) stays alive:
        # moved out of the collector's sight, so its full passes stop walking it over and
        # over under load (they were about 5% of the gateway's CPU on the warm path).
        gc.freeze()
        if self.intake is not None:
            self.intake.start()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._public is not None:
            await self._public.close(grace=10.0)
        for runner in self._runners:
            await runner.cleanup()
        if self.reporter is not None:
            await self.reporter.close()
        if self.intake is not None:
            await self.intake.close()
        await self.object_notifications.close()
        self._upstream.close()
