"""The HTTP faces of async invocation at the gateway.

Public port: a routed call with ``X-Hanshu-Invocation-Type: Async`` (or Function Compute's
``X-Fc-Invocation-Type``) is stored and answered ``202``; ``Batch`` stores a job of many;
``GET /_hanshu/invocations/{id}`` and ``GET /_hanshu/jobs/{id}`` read their status, with
the route's API key when the route has one.

Internal port: ``POST /_hanshu/enqueue/{namespace}/{function}`` stores an event (function
destinations and event sources use it), and ``/_hanshu/dispatch/{namespace}/{function}``
is where the dispatcher runs a stored call, through the same cold queue and limits as a
synchronous one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from hanshu_api.api_keys import key_fingerprint
from hanshu_api.bounded_json import JsonRefused
from hanshu_api.gateway_paths import (
    INVOCATIONS_PREFIX,
    JOBS_PREFIX,
    REPLICA_INVOKE_PATH,
    invocation_path,
    job_path,
)
from hanshu_api.invocations import (
    ASYNC,
    BATCH,
    EVENT,
    HTTP_INVOCATION_ID,
    HTTP_INVOCATION_TYPE,
    HTTP_JOB_ID,
    HTTP_TARGET,
    Origin,
    StoredRequest,
    function_scope,
    header_key,
    public_record,
    route_scope,
)
from hanshu_api.platform import FunctionKey
from hanshu_api.trace_context import TRACEPARENT, TRACESTATE
from hanshu_api.tracing import current_trace

from .async_intake import MAX_BATCH_BYTES, AsyncIntake, AsyncUnavailable, Call, batch_events
from .bad_input import refused_input
from .catalog import Catalog, FunctionEntry
from .faults import BadRequest, MethodNotAllowed, NotFound, PayloadTooLarge, Unavailable
from .guards import check_api_key
from .proxy import ProxiedCall, Proxy
from .public_http import PublicRequest
from .routes import Route
from .target import BadTarget, parse_target

log = logging.getLogger("hanshu.gateway")

MAX_IDEMPOTENCY_KEY_LENGTH = 256
RETRY_AFTER_UNAVAILABLE = "5"

# Headers of the dispatcher's call that are not the stored request's: its own framing and
# hop-by-hop headers (the hop to the replica sets its own), and its trace (the forward
# writes the one it continues).
_DISPATCH_ONLY = frozenset({
    HTTP_TARGET.lower(), "host", "content-length", "transfer-encoding", "connection",
    "keep-alive", "te", "trailer", "upgrade", "expect", TRACEPARENT, TRACESTATE,
})  # fmt: skip


def is_status_path(path: str) -> bool:
    return path.startswith((INVOCATIONS_PREFIX, JOBS_PREFIX))


def _credential(route: Route, caller_headers: Mapping[str, str]) -> str | None:
    """The fingerprint of the API key the call presented on a route with keys; None on a
    route without (its callers cannot be told apart)."""
    if route.http.auth is None:
        return None
    presented = caller_headers.get(route.http.auth.header)
    return key_fingerprint(presented) if presented else None


def _unavailable(why: str) -> Unavailable:
    return Unavailable(
        f"the event was not stored: {why}; try again later",
        error_type="AsyncUnavailable",
        retry_after=RETRY_AFTER_UNAVAILABLE,
    )


def _function_not_found(key: FunctionKey) -> NotFound:
    return NotFound(f"no Function {key[0]}/{key[1]}", error_type="FunctionNotFound")


class AsyncCalls:
    def __init__(
        self,
        intake: AsyncIntake | None,
        catalog: Catalog,
        proxy: Proxy,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.intake = intake
        self.catalog = catalog
        self.proxy = proxy
        self.max_batch_bytes = max_batch_bytes

    def _intake(self) -> AsyncIntake:
        if self.intake is None:
            raise Unavailable(
                "async invocation is not enabled on this gateway: it needs NATS "
                "(the chart's nats.enabled=true or nats.url; HANSHU_NATS_URL)",
                error_type="AsyncNotEnabled",
            )
        return self.intake

    # -- the public port --------------------------------------------------------------------

    async def accept(
        self,
        invocation_type: str,
        route: Route,
        entry: FunctionEntry,
        stored: StoredRequest,
        body: bytes,
        caller_headers: Mapping[str, str],
        request_id: str,
    ) -> web.Response:
        """Store an Async or Batch call and answer 202 with where to read its status.
        ``caller_headers`` are the request's own (its Idempotency-Key, and the API key that
        scopes it; the route's key was checked already)."""
        idempotency = caller_headers.get("Idempotency-Key")
        intake = self._intake()
        if idempotency is not None and not (
            0 < len(idempotency) <= MAX_IDEMPOTENCY_KEY_LENGTH and idempotency.isprintable()
        ):
            raise BadRequest(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
                error_type="InvalidIdempotencyKey",
            )
        if len(body) > intake.max_payload - 64 * 1024 and invocation_type == ASYNC:
            raise PayloadTooLarge(
                f"an async call's body can be at most {intake.max_payload - 64 * 1024} bytes "
                "(the event store's message limit)"
            )
        call = Call(
            key=entry.key,
            origin=Origin(
                route.namespace,
                route.function,
                route.trigger,
                route.http.auth.header if route.http.auth else None,
            ),
            policy=entry.async_policy,
            timeout_seconds=entry.timeout_seconds,
            request=stored,
            body=body,
            idempotency_scope=route_scope(
                route.namespace, route.trigger, _credential(route, caller_headers)
            ),
            trace=current_trace.get(),
        )
        try:
            if invocation_type == BATCH:
                return await self._accept_batch(intake, call, body, request_id)
            accepted = await intake.enqueue(call, idempotency)
        except AsyncUnavailable as why:
            log.warning("async call to %s/%s not stored: %s", *entry.key, why)
            raise _unavailable("the event store is not reachable") from None
        location = invocation_path(accepted.invocation_id)
        return web.json_response(
            {
                "invocationId": accepted.invocation_id,
                "status": location,
                "duplicate": accepted.duplicate,
            },
            status=202,
            headers={
                HTTP_INVOCATION_ID: accepted.invocation_id,
                "Location": location,
                "X-Request-Id": request_id,
            },
        )

    async def _accept_batch(
        self, intake: AsyncIntake, call: Call, body: bytes, request_id: str
    ) -> web.Response:
        try:
            events = batch_events(body, self.max_batch_bytes)
        except JsonRefused as refused:
            where = f"route {call.origin.namespace}/{call.origin.trigger}"
            raise refused_input("InvalidBatch", refused, request_id, where) from None
        too_big = [i for i, event in enumerate(events) if len(event) > intake.max_payload // 2]
        if too_big:
            raise PayloadTooLarge(
                f"event {too_big[0]} of the batch is over {intake.max_payload // 2} bytes"
            )
        job_id, total = await intake.enqueue_batch(call, events)
        location = job_path(job_id)
        return web.json_response(
            {"jobId": job_id, "total": total, "status": location},
            status=202,
            headers={HTTP_JOB_ID: job_id, "Location": location, "X-Request-Id": request_id},
        )

    async def status(self, request: PublicRequest, request_id: str) -> web.Response:
        """GET /_hanshu/invocations/{id} or /_hanshu/jobs/{id}."""
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET", allow="GET, HEAD")
        intake = self._intake()
        path = request.path
        is_job = path.startswith(JOBS_PREFIX)
        wanted = path[len(JOBS_PREFIX if is_job else INVOCATIONS_PREFIX) :]
        kind = "job" if is_job else "invocation"
        try:
            record = await (intake.job(wanted) if is_job else intake.record(wanted))
            if record is None:
                raise NotFound(f"no {kind} {wanted!r}")
            self._check_may_read(request, record)
            document = await intake.job_status(record) if is_job else public_record(record)
        except AsyncUnavailable:
            raise _unavailable("the event store is not reachable") from None
        document.pop("authHeader", None)
        document.pop("trigger", None)
        return web.json_response(document, headers={"X-Request-Id": request_id})

    def _check_may_read(self, request: PublicRequest, record: Mapping[str, Any]) -> None:
        """A status of a call made with an API key is read with a key of the same route."""
        if not record.get("authHeader"):
            return
        route = self.catalog.route_of_trigger(str(record["namespace"]), str(record.get("trigger")))
        if route is None or route.http.auth is None:
            # The route is gone or lost its key: nobody can prove they may read it.
            raise NotFound("no such invocation")
        check_api_key(request.headers, route, self.catalog.key_verifiers)

    # -- the internal port ------------------------------------------------------------------

    async def enqueue(self, request: web.Request) -> web.Response:
        """POST /_hanshu/enqueue/{namespace}/{function}: store an event as an async call."""
        key: FunctionKey = (request.match_info["namespace"], request.match_info["function"])
        entry = self.catalog.functions.get(key)
        if entry is None:
            raise _function_not_found(key)
        intake = self._intake()
        invocation_type = request.headers.get(HTTP_INVOCATION_TYPE, ASYNC)
        if invocation_type not in (ASYNC, EVENT):
            raise BadRequest(
                f"{HTTP_INVOCATION_TYPE} {invocation_type!r} cannot be stored: use "
                f"{ASYNC} (the default) or {EVENT}",
                error_type="InvalidInvocationType",
            )
        body = await request.read()
        call = Call(
            key=key,
            origin=Origin(key[0], key[1]),
            policy=entry.async_policy,
            timeout_seconds=entry.timeout_seconds,
            request=StoredRequest(
                "POST", REPLICA_INVOKE_PATH, (("Content-Type", "application/json"),)
            ),
            body=body,
            idempotency_scope=function_scope(key),
            trace=current_trace.get(),
        )
        try:
            accepted = await intake.enqueue(
                call, request.headers.get("Idempotency-Key"), invocation_type
            )
        except AsyncUnavailable:
            raise _unavailable("the event store is not reachable") from None
        return web.json_response(
            {"invocationId": accepted.invocation_id, "duplicate": accepted.duplicate},
            status=202,
            headers={HTTP_INVOCATION_ID: accepted.invocation_id},
        )

    async def dispatch(self, request: web.Request, request_id: str) -> web.Response:
        """Run one attempt of a stored call: the dispatcher's way in."""
        key = (request.match_info["namespace"], request.match_info["function"])
        entry = self.catalog.functions.get(key)
        if entry is None:
            raise _function_not_found(key)
        target = request.headers.get(HTTP_TARGET, "")
        try:
            parse_target(target)
        except BadTarget as bad:
            raise BadRequest(str(bad), error_type=bad.error_type) from None
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if header_key(name) not in _DISPATCH_ONLY and header_key(name) != "x-request-id"
        ]
        headers.append(("X-Request-Id", request_id))
        body = await request.read()
        invocation_type = request.headers.get(HTTP_INVOCATION_TYPE, ASYNC)
        # The caller's host, as the public port wrote it into the stored request (a caller's
        # own X-Forwarded-Host never got there): the replica's Host, as for a sync call.
        host = next((v for n, v in headers if n.lower() == "x-forwarded-host"), None)
        return await self.proxy.forward(
            ProxiedCall(
                entry, request.method, target, headers, body, request_id, invocation_type, host
            )
        )


__all__ = ["AsyncCalls", "is_status_path"]
