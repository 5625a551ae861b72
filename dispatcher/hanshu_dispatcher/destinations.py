"""Where an async invocation's outcome goes: another Function, an HTTP URL, or a NATS
subject, each sent Lambda's destination record.

A destination that fails is tried again a few times; one that still fails is counted in
``hanshu_dispatcher_destination_failures_total`` and logged with the invocation id and the
record, never dropped without a trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from hanshu_api import bounded_json
from hanshu_api.error_body import ErrorBody
from hanshu_api.invocations import now_iso
from hanshu_api.models import Destination
from hanshu_api.platform import FunctionKey
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from . import metrics
from .gateway_client import InternalGateway

log = logging.getLogger("hanshu.dispatcher")

ATTEMPTS = 4
FIRST_DELAY_SECONDS = 0.5
SEND_SECONDS = 10.0  # for one try of one destination
# Payloads larger than this are kept as text: a record is no place to parse megabytes.
MAX_JSON_PAYLOAD_BYTES = 8 * 1024 * 1024


def function_arn(key: FunctionKey) -> str:
    """A stable Lambda-style name for a Function: region and account are the namespace."""
    # As the runtime's context.invoked_function_arn: Lambda's positions, the namespace as
    # the account.
    return f"arn:hanshu:function::{key[0]}:function:{key[1]}"


def payload_of(body: bytes) -> Any:
    """JSON stays JSON in the record; anything else (nesting too deep to walk safely
    included) is its text."""
    try:
        return bounded_json.loads(body, what="the payload", max_bytes=MAX_JSON_PAYLOAD_BYTES)
    except ValueError:
        return body.decode(errors="replace")


def destination_record(
    *,
    key: FunctionKey,
    invocation_id: str,
    condition: str,
    attempts: int,
    request_body: bytes,
    status: int | None,
    response_body: bytes | None,
    error: ErrorBody | None,
    now: float,
) -> dict[str, Any]:
    """Lambda's async destination record (version 1.0), with Hanshu's function name."""
    response_context: dict[str, Any] = {"executedVersion": "$LATEST"}
    if status is not None:
        response_context["statusCode"] = status
    if error is not None:
        response_context["functionError"] = "Unhandled"
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": now_iso(now),
        "requestContext": {
            "requestId": invocation_id,
            "functionArn": f"{function_arn(key)}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload_of(request_body),
        "responseContext": response_context,
    }
    if error is not None:
        record["responsePayload"] = error.as_dict()
    elif response_body is not None:
        record["responsePayload"] = payload_of(response_body)
    return record


class Destinations:
    def __init__(
        self, session: aiohttp.ClientSession, nats_client: NATS, gateway: InternalGateway
    ) -> None:
        self.session = session  # for URL destinations: never the internal token
        self.nats = nats_client
        self.gateway = gateway

    async def send(
        self, source: FunctionKey, destination: Destination, record: Mapping[str, Any]
    ) -> bool:
        body = json.dumps(record, separators=(",", ":")).encode()
        kind = "function" if destination.function else "url" if destination.url else "subject"
        delay = FIRST_DELAY_SECONDS
        problem = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._send_once(source, destination, body, record)
                metrics.DESTINATIONS.labels(*source, kind, "delivered").inc()
                return True
            except (aiohttp.ClientError, TimeoutError, NatsError, DestinationRefused) as error:
                problem = str(error) or type(error).__name__
                if attempt < ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 2
        metrics.DESTINATIONS.labels(*source, kind, "failed").inc()
        log.error(
            "destination %s of %s/%s failed %d times (%s); the record was: %s",
            destination.as_dict(),
            *source,
            ATTEMPTS,
            problem,
            body.decode(),
        )
        return False

    async def _send_once(
        self,
        source: FunctionKey,
        destination: Destination,
        body: bytes,
        record: Mapping[str, Any],
    ) -> None:
        timeout = aiohttp.ClientTimeout(total=SEND_SECONDS)
        if destination.function:
            # Through the gateway, which knows the target's async policy and says 404 for a
            # Function that does not exist. The request id makes a resend harmless.
            context = record["requestContext"]
            stored = await self.gateway.enqueue(
                source[0],
                destination.function,
                body,
                time_limit=SEND_SECONDS,
                idempotency_key=f"destination-{context['requestId']}-{context['condition']}",
            )
            if stored.status != 202:
                raise DestinationRefused(
                    f"the gateway answered {stored.status}: {stored.body.decode(errors='replace')}"
                )
        elif destination.url:
            headers = {"Content-Type": "application/json"}
            async with self.session.post(
                destination.url, data=body, headers=headers, timeout=timeout
            ) as reply:
                if reply.status >= 300:
                    raise DestinationRefused(f"{destination.url} answered {reply.status}")
        elif destination.subject:
            await self.nats.publish(destination.subject, body)
            await self.nats.flush(timeout=5)


class DestinationRefused(Exception):
    pass
