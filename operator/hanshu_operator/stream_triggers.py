"""Stream Triggers in the operator: one kopf daemon per Trigger with ``spec.stream`` runs
its consumer, writes its source's health, lag and last delivery to the Trigger's status,
and hands the lag to the autoscaler as queued requests (scale from zero on lag).

The pieces here (building a source, invoking through the gateway, sending failures) are
also what the developer mode runs without kopf.

Cost: per stream Trigger, one daemon, one consumer (a connection to its NATS or Redis,
its batch in flight) and a status write at most every STATUS_INTERVAL_SECONDS; nothing is
shared between Triggers or looks at another, so n streams cost O(n).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import kopf
import nats
from hanshu_api import GROUP, TRIGGER_PLURAL, VERSION
from hanshu_api.gateway_client import InternalGateway
from hanshu_api.kube import path_for
from hanshu_api.models import Destination, SecretKeyRef, SpecInvalid, parse_trigger_spec
from hanshu_api.stats_report import FunctionStat, StatsReport

from .conditions import FALSE, TRUE, Condition, rfc3339
from .state import operator_state
from .stream_consumer import Invoke, SendFailure, SourceHealth, StreamConsumer
from .stream_sources import NatsStreamSource, RedisStreamSource, Source
from .trigger_status import SOURCE_READY, write_trigger_status

log = logging.getLogger("hanshu.streams")

# Status writes for lag alone at most this often: health changes are written at once.
STATUS_INTERVAL_SECONDS = 5.0
INVOKE_TIMEOUT_SECONDS = 900.0

SecretValue = Callable[[SecretKeyRef], Awaitable[str | None]]
CONSUMER_NAME = "hanshu"


class SourceConfigError(Exception):
    """The Trigger's source cannot be built: a Secret or key missing, no NATS."""


def function_arn(namespace: str, function: str) -> str:
    # As the runtime's context.invoked_function_arn (Lambda's positions).
    return f"arn:hanshu:function::{namespace}:function:{function}"


def consumer_id(namespace: str, trigger: str) -> str:
    return f"hanshu-{namespace}-{trigger}".replace(".", "_")


async def build_source(
    namespace: str, trigger: str, spec: Any, secret: SecretValue, default_nats_url: str
) -> Source:
    """The Trigger's source, with its URL read from the Secret it names."""
    if spec.nats is not None:
        url = default_nats_url
        if spec.nats.url is not None:
            url = await _required(secret, spec.nats.url, "spec.stream.nats.urlSecretRef")
        if not url:
            raise SourceConfigError(
                "no NATS to read from: set spec.stream.nats.urlSecretRef, or install Hanshu "
                "with NATS (HANSHU_NATS_URL)"
            )
        return NatsStreamSource(
            url,
            spec.nats.stream,
            spec.nats.subject,
            consumer_id(namespace, trigger),
            spec.batch_size if spec.ordered else -1,
        )
    url = await _required(secret, spec.redis.url, "spec.stream.redis.urlSecretRef")
    return RedisStreamSource(
        url,
        spec.redis.stream,
        spec.redis.group or consumer_id(namespace, trigger),
        # One name for the Trigger, not the pod's: a new operator pod takes over the
        # entries the old one held at once, in order, instead of after the claim timeout.
        CONSUMER_NAME,
        spec.redis.start_from,
    )


async def _required(secret: SecretValue, ref: SecretKeyRef, field: str) -> str:
    value = await secret(ref)
    if not value:
        raise SourceConfigError(
            f"the Secret '{ref.name}' (key '{ref.key}') named by {field} is missing or empty"
        )
    return value.strip()


def event_invoker(gateway: InternalGateway, namespace: str, function: str) -> Invoke:
    """A batch of records, run on the Function through the gateway's invoke path."""

    async def invoke(event: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        try:
            reply = await gateway.invoke(
                namespace, function, event, time_limit=INVOKE_TIMEOUT_SECONDS
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
    """The lag as queued requests, reported as a gateway reports (its own reporter id)."""
    return StatsReport(
        f"stream:{namespace}/{trigger}",
        time.time(),
        (FunctionStat(namespace, function, queued=lag),),
    )


def _is_stream(spec: kopf.Spec, **_: Any) -> bool:
    return spec.get("stream") is not None


@kopf.daemon(GROUP, VERSION, TRIGGER_PLURAL, when=_is_stream, cancellation_timeout=10)
async def consume_stream(
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    """One daemon per stream Trigger; kopf restarts it when the spec changes."""
    assert namespace is not None
    state = operator_state(memo)
    try:
        trigger = parse_trigger_spec(dict(spec), namespace)
    except SpecInvalid:
        return  # the reconcile says why
    if trigger.stream is None or not state.config.gateway_internal_url:
        return
    routes = state.triggers.routes
    stream = trigger.stream
    changed = asyncio.Event()
    current = SourceHealth()

    async def write(health: SourceHealth) -> None:
        if health.healthy is None:
            return
        condition = (
            Condition(SOURCE_READY, TRUE, "Reading", health.message)
            if health.healthy
            else Condition(SOURCE_READY, FALSE, "SourceUnavailable", health.message)
        )
        fields: dict[str, Any] = {"lag": health.lag}
        if health.last_delivery is not None:
            fields["lastDeliveryTime"] = rfc3339_of(health.last_delivery)
        # Nothing is written when nothing changed (the writer compares with the status).
        await write_trigger_status(state, namespace, name, routes, source=condition, **fields)

    async def keep_status_written(stop: asyncio.Event) -> None:
        """Health changes are written at once, lag at most every STATUS_INTERVAL_SECONDS;
        a write that came before the Trigger's first status is made again later."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_INTERVAL_SECONDS):
                    await changed.wait()
            changed.clear()
            try:
                await write(current)
            except Exception as error:  # a status write never stops the consumer
                log.warning("%s/%s: cannot write the status: %s", namespace, name, error)

    async def on_change(health: SourceHealth) -> None:
        nonlocal current
        if state.config.autoscaler_url and health.lag is not None:
            report = lag_report(namespace, name, trigger.function_name, health.lag)
            await send_report(session, state.config.autoscaler_url, report)
        if (health.healthy, health.message) != (current.healthy, current.message):
            changed.set()
        current = health

    async def secret(ref: SecretKeyRef) -> str | None:
        found = await state.kube.get(path_for("v1", "secrets", namespace, ref.name))
        raw = ((found or {}).get("data") or {}).get(ref.key)
        return base64.b64decode(raw).decode() if raw else None

    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        try:
            source = await build_source(namespace, name, stream, secret, state.config.nats_url)
        except SourceConfigError as bad:
            await write(SourceHealth(healthy=False, message=str(bad)))
            raise kopf.TemporaryError(str(bad), delay=30) from None
        gateway = InternalGateway(
            session, state.config.gateway_internal_url, state.config.internal_token
        )
        consumer = StreamConsumer(
            (namespace, name),
            function_arn(namespace, trigger.function_name),
            stream,
            source,
            event_invoker(gateway, namespace, trigger.function_name),
            on_failure_sender(gateway, state.config.nats_url, namespace, stream.on_failure)
            if stream.on_failure
            else None,
            on_change,
        )
        running = asyncio.create_task(consumer.run(stop))
        writer = asyncio.create_task(keep_status_written(stop))
        stopping = asyncio.ensure_future(stopped.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        changed.set()
        stopping.cancel()
        await writer
        if running.done() and not running.cancelled() and running.exception() is not None:
            # A consumer that crashed says so and is started again by kopf, never silent.
            crash = running.exception()
            log.error("%s/%s: the stream consumer stopped: %r", namespace, name, crash)
            await write(SourceHealth(healthy=False, message=f"the consumer stopped: {crash!r}"))
            raise kopf.TemporaryError(f"the stream consumer stopped: {crash!r}", delay=10)
        await running


async def send_report(session: aiohttp.ClientSession, url: str, report: StatsReport) -> None:
    """The lag to the autoscaler (its own component), as a gateway sends its stats: a
    report that does not arrive is replaced by the next one, never retried."""
    try:
        async with session.post(
            url.rstrip("/") + "/stats", json=report.encode(), timeout=aiohttp.ClientTimeout(total=2)
        ) as reply:
            reply.raise_for_status()
    except (aiohttp.ClientError, TimeoutError) as error:
        log.debug("cannot report the lag of %s to %s: %s", report.reporter, url, error)


def rfc3339_of(epoch: float) -> str:
    import datetime

    return rfc3339(datetime.datetime.fromtimestamp(epoch, datetime.UTC))
