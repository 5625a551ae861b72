"""The pieces a dispatcher reads a stream Trigger with: its source (NATS JetStream or a
Redis Stream, with the URL the operator sealed into the catalog entry), its invocation
through the gateway, its onFailure sender and its lag as a report for the autoscaler.
Dev mode runs the same dispatcher, so the same pieces.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import nats
from hanshu_api.models import Destination, StreamSource
from hanshu_api.stats_report import FunctionStat, StatsReport

from .gateway_client import InternalGateway
from .stream_consumer import Invoke, SendFailure
from .stream_sources import HOLD_SECONDS, NatsStreamSource, RedisStreamSource, Source

log = logging.getLogger("hanshu.streams")

INVOKE_TIMEOUT_SECONDS = 900.0

# The Redis consumer of an ordered Trigger: one name for all dispatchers, so the one that
# takes the lease over reads the entries the dead holder had, first and in order, at once.
CONSUMER_NAME = "hanshu"


class SourceConfigError(Exception):
    """The Trigger's source cannot be built: no URL, no NATS."""


def function_arn(namespace: str, function: str) -> str:
    # As the runtime's context.invoked_function_arn (Lambda's positions).
    return f"arn:hanshu:function::{namespace}:function:{function}"


def consumer_id(namespace: str, trigger: str) -> str:
    return f"hanshu-{namespace}-{trigger}".replace(".", "_")


def build_source(
    namespace: str,
    trigger: str,
    spec: StreamSource,
    url: str | None,
    default_nats_url: str,
    reader: str,
    hold_seconds: float = HOLD_SECONDS,
) -> Source:
    """The Trigger's source, at ``url`` (the opened Secret of the catalog entry).

    ``reader`` names this dispatcher's Redis consumer for an unordered Trigger: each reads
    its own share, and a dead one's pending entries are claimed after ``hold_seconds``."""
    if spec.nats is not None:
        nats_url = (url or "").strip() or default_nats_url
        if not nats_url:
            raise SourceConfigError(
                "no NATS to read from: set spec.stream.nats.urlSecretRef, or install Hanshu "
                "with NATS (HANSHU_NATS_URL)"
            )
        return NatsStreamSource(
            nats_url,
            spec.nats.stream,
            spec.nats.subject,
            consumer_id(namespace, trigger),
            spec.batch_size if spec.ordered else -1,
            hold_seconds,
        )
    assert spec.redis is not None
    if not url:
        raise SourceConfigError(
            f"the Secret '{spec.redis.url.name}' (key '{spec.redis.url.key}') named by "
            "spec.stream.redis.urlSecretRef is missing or empty"
        )
    return RedisStreamSource(
        url.strip(),
        spec.redis.stream,
        spec.redis.group or consumer_id(namespace, trigger),
        CONSUMER_NAME if spec.ordered else reader,
        spec.redis.start_from,
        hold_seconds,
    )


def event_invoker(
    gateway: InternalGateway,
    namespace: str,
    function: str,
    version: int | None = None,
    alias: str | None = None,
) -> Invoke:
    """A batch of records, run on the Function (its version, or its alias's pick for each
    batch) through the gateway's invoke path."""

    async def invoke(event: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        try:
            reply = await gateway.invoke(
                namespace,
                function,
                event,
                time_limit=INVOKE_TIMEOUT_SECONDS,
                version=version,
                alias=alias,
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            return 0, {}, f"{type(error).__name__}: {error}".encode()
        return reply.status, reply.headers, reply.body

    return invoke


def on_failure_sender(
    gateway: InternalGateway, nats_url: str, namespace: str, destination: Destination
) -> SendFailure:
    """onFailure: a Function (stored as its async invocation), a URL, or a NATS subject."""

    async def send(record: dict[str, Any]) -> bool:
        body = json.dumps(record).encode()
        for delay in (0.5, 1.0, 2.0, None):
            try:
                if destination.function:
                    # The internal token goes to the gateway only, never to a URL.
                    stored = await gateway.enqueue(namespace, destination.function, body)
                    if stored.status == 202:
                        return True
                elif destination.url:
                    async with gateway.session.post(
                        destination.url, data=body, headers={"Content-Type": "application/json"}
                    ) as reply:
                        if reply.status < 300:
                            return True
                elif destination.subject and nats_url:
                    client = await nats.connect(nats_url, connect_timeout=3)
                    try:
                        await client.publish(destination.subject, body)
                        await client.flush(timeout=5)
                        return True
                    finally:
                        await client.close()
            except (aiohttp.ClientError, TimeoutError, OSError, nats.errors.Error) as error:
                log.warning("onFailure %s: %s", destination.as_dict(), error)
            if delay is None:
                return False
            await asyncio.sleep(delay)
        return False

    return send


def lag_report(namespace: str, trigger: str, function: str, lag: int) -> StatsReport:
    """The lag as queued requests, under one reporter id per Trigger: every dispatcher
    reading it reports the same source-wide figure, and the autoscaler keeps the latest."""
    return StatsReport(
        f"stream:{namespace}/{trigger}",
        time.time(),
        (FunctionStat(namespace, function, queued=lag),),
    )
