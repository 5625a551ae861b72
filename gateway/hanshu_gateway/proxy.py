"""The hop to a replica: the caller's headers rewritten for it, the cold queue (waking the
Function, retrying what a starting or draining replica refuses), billing, one attempt, and
the reply filtered for the caller."""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import NamedTuple

from aiohttp import web
from hanshu_api.http_route import (
    DEFAULT_PAYLOAD_FORMAT_VERSION,
    PAYLOAD_FORMAT_HEADER,
    RESOURCES_HEADER,
)
from hanshu_api.invocations import (
    HTTP_ATTEMPT,
    HTTP_FC_INVOCATION_TYPE,
    HTTP_INVOCATION_ID,
    HTTP_INVOCATION_TYPE,
    HTTP_JOB_ID,
    HTTP_TARGET,
    SYNC,
    header_key,
)
from hanshu_api.platform import Endpoint
from hanshu_api.trace_context import TRACEPARENT, TRACESTATE
from hanshu_api.tracing import CLIENT, NO_TRACING, Tracer, current_trace
from hanshu_wire import HOP_BY_HOP as WIRE_HOP_BY_HOP

from . import metrics
from .catalog import FunctionEntry
from .faults import (
    BadGateway,
    FunctionNotReady,
    GatewayFault,
    GatewayTimeout,
    TooManyRequests,
    Unavailable,
)
from .metrics import COLD_PATH_POD_START, COLD_PATH_POOL
from .pool import NoEndpointInTime, QueueFull, ReplicasFailing
from .probe import replica_prober
from .public_http import PublicRequest
from .routing import Routed
from .stats import StatsReporter
from .upstream import MalformedReply, ReplyTimeout, UpstreamClosed, UpstreamPool, UpstreamReply
from .warm_start import WarmStarts

log = logging.getLogger("hanshu.gateway")

# RFC 9110's hop-by-hop fields (hanshu_wire), and what the hop to a replica writes itself.
HOP_BY_HOP = WIRE_HOP_BY_HOP | {
    "trailers", "host", "content-length",
    # The gateway has read the whole body already: asking a replica to "continue" would
    # only make it send an interim 100.
    "expect",
}  # fmt: skip
RETRY_PENALTY_SECONDS = 0.05
# When to try a Function whose replicas cannot start again: a fix takes a person.
FAULT_RETRY_AFTER_SECONDS = 10
# On a cold request's reply: which path served it (metrics.COLD_PATH_*).
COLD_START_PATH_HEADER = "X-Hanshu-Cold-Start-Path"
# Only the runtime's own "draining" 503 carries it (the runtime strips it from what a
# function returns): such a request is retried on another replica. Never shown to callers.
DRAINING_HEADER = "X-Hanshu-Draining"
# A function's reply may not pose as the gateway's own refusal (the dispatcher would take
# its 503 for throttling and retry it without using an attempt).
REPLY_DROP = HOP_BY_HOP | {DRAINING_HEADER.lower(), "x-hanshu-gateway-error"}
# ... and the gateway writes the request id itself, the one the caller was given.
_REPLY_REPLACED = REPLY_DROP | {"x-request-id"}
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
# dispatcher sets (id, attempt, type, job); and those the gateway writes itself below or
# when it forwards (the trace it continues: the caller's, checked, or a new one).
UPSTREAM_DROP = (
    HOP_BY_HOP
    | INVOCATION_HEADERS
    | {"x-forwarded-prefix", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    | {"x-request-id", PAYLOAD_FORMAT_HEADER.lower(), RESOURCES_HEADER.lower()}
    | {TRACEPARENT, TRACESTATE}
)
Headers = list[tuple[str, str]]
Networks = tuple[IPv4Network | IPv6Network, ...]


class ProxiedCall(NamedTuple):
    """One call for a Function's replica, as it goes up: from a public request, the
    internal invoke path or the dispatcher. Immutable, and a NamedTuple rather than a frozen
    dataclass: one is made per request, and a frozen dataclass takes about three times as
    long to make (docs/architecture.md, "Measured choices")."""

    entry: FunctionEntry
    method: str
    path: str  # the raw target, never a decoded one: decoding is the replica's, once
    headers: Headers
    body: bytes
    request_id: str
    invocation_type: str = SYNC  # what the call is billed as
    host: str | None = None  # the replica's Host: the caller's; None: the replica's address


def _trusted(peer: str, networks: Networks) -> bool:
    if not networks or not peer:
        return False
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in networks)


def upstream_headers(
    request: PublicRequest, routed: Routed, request_id: str, trusted_proxies: Networks
) -> Headers:
    """The caller's headers for the replica, as (name, value) pairs: a list, not a
    CIMultiDict, as the hop writes them in order and never looks one up."""
    route = routed.route
    drop = UPSTREAM_DROP
    if route.http.auth:
        # The API key stays at the gateway.
        drop = drop | {header_key(route.http.auth.header)}
    caller = request.headers
    if "Connection" in caller:
        # RFC 9110 7.6.1: the fields a Connection header names are for this hop only.
        listed = {
            header_key(name.strip())
            for value in caller.getall("Connection")
            for name in value.split(",")
        }
        drop = drop | listed
    headers = [(k, v) for k, v in caller.items() if header_key(k) not in drop]
    client = request.remote or ""
    scheme = request.scheme
    forwarded_for = None
    if _trusted(client, trusted_proxies):
        # A proxy in front (an ingress ending TLS) that the operator named: what it
        # says of its own caller is kept, the hop it came from appended.
        forwarded_for = caller.get("X-Forwarded-For")
        claimed = caller.get("X-Forwarded-Proto", "").strip().lower()
        scheme = claimed if claimed in ("http", "https") else scheme
    # Otherwise the gateway's alone: a caller's X-Forwarded-* would choose the scheme
    # and address an app trusts (Werkzeug's ProxyFix, Django's USE_X_FORWARDED_HOST).
    headers.append(("X-Forwarded-For", f"{forwarded_for}, {client}" if forwarded_for else client))
    headers.append(("X-Forwarded-Proto", scheme))
    headers.append(("X-Forwarded-Host", routed.host))
    headers.append(("X-Request-Id", request_id))
    if route.http.strip_prefix and route.prefix:
        # Decoded, as the runtime takes it (the Trigger may spell it either way).
        headers.append(("X-Forwarded-Prefix", "/" + "/".join(route.prefix)))
    if route.http.payload_format_version != DEFAULT_PAYLOAD_FORMAT_VERSION:
        # Which event the runtime builds for an event handler: the Trigger's choice.
        headers.append((PAYLOAD_FORMAT_HEADER, route.http.payload_format_version))
    if route.http.resources:
        # The Trigger's resource paths: the runtime names the one a path matches.
        headers.append((RESOURCES_HEADER, ",".join(route.http.resources)))
    return headers


def _draining(headers: list[tuple[str, str]]) -> bool:
    target = DRAINING_HEADER.lower()
    return any(name.lower() == target and value.lower() == "true" for name, value in headers)


def reply_for_caller(reply: UpstreamReply, method: str, request_id: str) -> web.Response:
    """A replica's reply as the caller gets it: no hop-by-hop headers, nothing posing as
    the gateway's own, the caller's request id."""
    # Pairs, not a CIMultiDict: aiohttp builds its own from them (one copy, not two).
    headers = [
        (name, value) for name, value in reply.headers if name.lower() not in _REPLY_REPLACED
    ]
    headers.append(("X-Request-Id", request_id))
    if method == "HEAD":
        # No body comes, but the length a GET would get does: the replica's, passed on.
        length = next((v for n, v in reply.headers if n.lower() == "content-length"), None)
        if length is not None and length.isdigit():
            headers.append(("Content-Length", length))
    return web.Response(status=reply.status, body=reply.body, headers=headers)


class Proxy:
    def __init__(
        self,
        upstream: UpstreamPool,
        reporter: StatsReporter | None,
        cold_start_timeout: float,
        warm_starts: WarmStarts | None = None,
        fault_details: bool = False,
        tracer: Tracer = NO_TRACING,
    ) -> None:
        self.upstream = upstream
        self.reporter = reporter
        self.cold_start_timeout = cold_start_timeout
        # None: no warm pool, and a cold request costs nothing more than it did.
        self.warm_starts = warm_starts
        self.fault_details = fault_details
        self.tracer = tracer

    async def forward(self, call: ProxiedCall) -> web.Response:
        """Queue for a replica (waking the Function when cold), forward, and retry what a
        replica that is starting or draining refuses; in a client span of the call's trace,
        which the replica is told (``traceparent``)."""
        trace = current_trace.get()
        if trace is None:
            return await self._forward(call)
        if not self.tracer.enabled:
            # The call's own list (built for this call): the trace goes up with it.
            call.headers.extend(trace.headers())
            return await self._forward(call)
        span = self.tracer.start("forward", CLIENT, trace, {"faas.invoked_name": call.entry.key[1]})
        # The call's own list (built for this call): the trace goes up with it.
        call.headers.extend(span.context.headers())
        status = 500
        try:
            reply = await self._forward(call)
            status = reply.status
            return reply
        except GatewayFault as fault:
            status = fault.status
            span.fail(fault.error_type)
            raise
        finally:
            span.set("http.response.status_code", status)
            span.end()

    async def _forward(self, call: ProxiedCall) -> web.Response:
        entry = call.entry
        pool, stats, meters = entry.pool, entry.stats, entry.meters
        arrived = time.monotonic()
        deadline = arrived + self.cold_start_timeout
        cold = pool.is_cold
        stats.arrivals += 1
        if cold:
            meters.cold_starts.inc()
        stats.in_flight += 1
        try:
            while True:
                endpoint = pool.try_acquire()
                if endpoint is None:
                    endpoint = await self._wait_for_replica(entry, deadline)
                call_started = time.monotonic()
                try:
                    reply = await self._attempt(call, endpoint)
                except GatewayFault as failed:
                    # A replica that failed took the request: billed as one that answered.
                    self._settle(call, endpoint, call_started, arrived if cold else None, failed)
                    raise
                if reply is not None:
                    self._settle(call, endpoint, call_started, arrived if cold else None, reply)
                    return reply
                if time.monotonic() > deadline:
                    raise FunctionNotReady(f"no replica of '{entry.key[1]}' accepted the request")
        finally:
            stats.in_flight -= 1
            stats.last_completed = time.monotonic()

    async def _wait_for_replica(self, entry: FunctionEntry, deadline: float) -> Endpoint:
        """Wait in the Function's queue, as long as the deadline allows."""
        pool, stats = entry.pool, entry.stats
        function = entry.key[1]
        if pool.is_cold:
            # Both at once, whichever serves first; the pool is asked first, as its answer
            # is the nearer one (the autoscaler's is a replica that starts from nothing).
            if self.warm_starts is not None:
                self.warm_starts.cold(entry)
            if self.reporter is not None:
                self.reporter.cold(entry.key)
        if pool.prober is None:  # starting replicas are probed while we wait
            pool.prober = replica_prober(self.upstream)
        stats.queued += 1
        try:
            return await pool.acquire(max(0.0, deadline - time.monotonic()))
        except QueueFull:
            metrics.QUEUE_FULL.labels(*entry.meters.labels).inc()
            raise TooManyRequests(
                f"{pool.queued} requests are already waiting for '{function}'; retry shortly",
                error_type="QueueFull",
                retry_after="1",
            ) from None
        except NoEndpointInTime:
            raise FunctionNotReady(
                f"'{function}' did not become ready within {self.cold_start_timeout:g}s"
            ) from None
        except ReplicasFailing as failing:
            # Its replicas cannot start (the Function's status says why): say so now rather
            # than after the whole cold-start timeout. The cold report above still went
            # out, so a fix outside the spec (an image pushed, a node added) is found by a
            # replica that keeps trying.
            raise Unavailable(
                failing.for_caller(function, self.fault_details),
                error_type=failing.fault.reason,
                retry_after=str(FAULT_RETRY_AFTER_SECONDS),
            ) from None
        finally:
            stats.queued -= 1

    @staticmethod
    def _settle(
        call: ProxiedCall,
        endpoint: Endpoint,
        call_started: float,
        cold_since: float | None,
        outcome: web.Response | GatewayFault,
    ) -> None:
        """Bill what a replica took, from its taking the request (not from the wait for
        one), and mark a cold start."""
        entry = call.entry
        meters = entry.meters
        served_for = time.monotonic() - call_started
        meters.bill(call.invocation_type, entry.memory_gb * served_for, outcome.status)
        # The canary's figures: the replica's time, not the wait for one (a version at 10%
        # starts cold more often; its code is judged, not its cold starts), and a failure
        # is the replica's 5xx, handler error or timeout, never a refusal by the gateway.
        entry.stats.record_outcome(served_for, outcome.status >= 500)
        if cold_since is not None:
            path = COLD_PATH_POOL if entry.pool.is_temporary(endpoint) else COLD_PATH_POD_START
            meters.cold_start_latency(path).observe(time.monotonic() - cold_since)
            headers: MutableMapping[str, str] = outcome.headers
            headers["X-Hanshu-Cold-Start"] = "true"
            headers[COLD_START_PATH_HEADER] = path

    async def _attempt(self, call: ProxiedCall, endpoint: Endpoint) -> web.Response | None:
        """One attempt; None means 'not served, try another replica'."""
        entry = call.entry
        pool = entry.pool
        try:
            reply = await self.upstream.request(
                endpoint,
                call.method,
                call.path,
                call.headers,
                call.body,
                entry.timeout_seconds + 1,
                call.host,
            )
        except UpstreamClosed:
            # The request reached a replica that died before replying (the pool already
            # retried a kept-alive connection closed while idle). Running it again elsewhere
            # could run it twice, and a request that crashes replicas would crash them all.
            log.warning("replica %s closed the connection without a reply", endpoint.url)
            pool.penalize(endpoint, RETRY_PENALTY_SECONDS)
            raise BadGateway(
                f"a replica of '{entry.key[1]}' failed before it replied",
                error_type="ReplicaFailed",
            ) from None
        except ReplyTimeout:
            # Before OSError, of which it is one: the replica has the request, perhaps
            # running it still; it is not sent again.
            raise GatewayTimeout(
                f"'{entry.key[1]}' did not answer within {entry.timeout_seconds:g}s"
            ) from None
        except OSError as failure:
            # Refused: a replica that is starting or stopping. Never a 502 for the caller.
            log.info("replica %s refused the request (%s); trying again", endpoint.url, failure)
            pool.penalize(endpoint, RETRY_PENALTY_SECONDS)
            return None
        except MalformedReply as failure:
            log.warning("replica %s sent a malformed reply: %s", endpoint.url, failure)
            raise BadGateway(
                f"a replica of '{entry.key[1]}' sent a malformed reply",
                error_type="ReplicaFailed",
            ) from None
        finally:
            pool.release(endpoint)
        if reply.status == 503 and _draining(reply.headers):
            pool.penalize(endpoint, 1.0)  # it is shutting down; another one will do
            return None
        return reply_for_caller(reply, call.method, call.request_id)


__all__ = [
    "COLD_START_PATH_HEADER",
    "DRAINING_HEADER",
    "HOP_BY_HOP",
    "REPLY_DROP",
    "UPSTREAM_DROP",
    "Headers",
    "ProxiedCall",
    "Proxy",
    "reply_for_caller",
    "upstream_headers",
]
