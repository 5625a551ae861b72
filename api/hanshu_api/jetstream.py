"""The JetStream side both the gateway and the dispatcher need: a connection that keeps
trying, and the stream and buckets of async invocations, created when missing; and the two
buckets of schedule Triggers (``schedules``) and the three of stream Triggers (``streams``),
which the operator shares with the dispatchers.

Imported only by the components that talk to NATS (it needs ``nats-py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from .invocations import IDEMPOTENCY_BUCKET, STATUS_BUCKET, STREAM, SUBJECT_PREFIX
from .schedules import (
    SCHEDULE_CATALOG_BUCKET,
    SCHEDULE_FIRES_BUCKET,
    ScheduleEntry,
    entry_key,
)
from .settings import AsyncWindows, NatsSettings
from .streams import (
    LEASE_TTL_SECONDS,
    REPORT_TTL_SECONDS,
    STREAM_CATALOG_BUCKET,
    STREAM_LEASE_BUCKET,
    STREAM_REPORT_BUCKET,
    StreamEntry,
)

log = logging.getLogger("hanshu.jetstream")

CONNECT_BACKOFF_SECONDS = 0.2
MAX_CONNECT_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class StreamSettings:
    replicas: int = 1  # 3 on a three-node NATS cluster
    # How long a status stays readable after its last change.
    status_ttl_seconds: float = 24 * 3600.0
    # The Idempotency-Key window: a repeated key within it returns the first invocation.
    idempotency_window_seconds: float = 3600.0
    # Events older than the longest maxEventAge (6 h) are expired anyway: keep a margin.
    max_age_seconds: float = 7 * 3600.0

    @classmethod
    def of(cls, nats_settings: NatsSettings, windows: AsyncWindows) -> StreamSettings:
        """The stream and buckets as the gateway or a dispatcher creates them when it is
        first: both read the same settings, so whichever starts first makes the same."""
        return cls(
            replicas=nats_settings.stream_replicas,
            status_ttl_seconds=windows.status_ttl_seconds,
            idempotency_window_seconds=windows.idempotency_window_seconds,
        )


@dataclass
class Invocations:
    """Handles on the stream and buckets, valid while the connection lives."""

    client: NATS
    js: JetStreamContext
    status: KeyValue
    idempotency: KeyValue


def stream_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        # Work queue: a message leaves when acknowledged, so the subject counts are the
        # backlog per Function.
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        max_age=settings.max_age_seconds,
        # De-duplication by Nats-Msg-Id (the invocation id): a publish retried after a
        # lost acknowledgement, or an Idempotency-Key stored again, is stored once.
        duplicate_window=settings.idempotency_window_seconds,
    )


async def ensure(client: NATS, settings: StreamSettings) -> Invocations:
    js = client.jetstream(timeout=5.0)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(stream_config(settings))
        log.info("created JetStream stream %s", STREAM)
    status = await _bucket(js, STATUS_BUCKET, settings.status_ttl_seconds, settings.replicas)
    idempotency = await _bucket(
        js, IDEMPOTENCY_BUCKET, settings.idempotency_window_seconds, settings.replicas
    )
    return Invocations(client, js, status, idempotency)


@dataclass
class ScheduleBuckets:
    """The schedule catalog (operator -> dispatchers) and the latest fires (dispatchers ->
    operator). Neither expires: an entry lives as long as its Trigger is a schedule."""

    catalog: KeyValue
    fires: KeyValue


async def ensure_schedule_buckets(client: NATS, replicas: int = 1) -> ScheduleBuckets:
    js = client.jetstream(timeout=5.0)
    return ScheduleBuckets(
        catalog=await _bucket(js, SCHEDULE_CATALOG_BUCKET, None, replicas),
        fires=await _bucket(js, SCHEDULE_FIRES_BUCKET, None, replicas),
    )


async def _bucket(js: JetStreamContext, name: str, ttl: float | None, replicas: int) -> KeyValue:
    """The bucket, created when missing, with direct gets: a read is answered by any
    server holding the stream, not through the JetStream API leader. The dispatcher reads
    a record before every run (bench/async_bench.py, a dispatcher killed: 58 runs twice
    through the API, 5 with direct gets), so a bucket made without them is switched over."""
    try:
        bucket = await js.key_value(name)
    except Exception:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name,
                ttl=ttl,
                history=1,
                replicas=replicas,
                storage=StorageType.FILE,
                direct=True,
            )
        )
    stream = f"KV_{name}"
    config = (await js.stream_info(stream)).config
    if not config.allow_direct:
        config.allow_direct = True
        await js.update_stream(config)
        bucket = await js.key_value(name)
    return bucket


async def connect(
    url: str,
    name: str,
    on_change: Callable[[bool], None] | None = None,
) -> NATS:
    """Connect, trying again with backoff until NATS answers; once connected, nats-py
    reconnects on its own for ever, buffering nothing we would later regret."""

    connected: list[NATS] = []

    async def disconnected() -> None:
        # nats-py calls this on close() too: a connection closed on purpose is not lost.
        if not (connected and connected[0].is_closed):
            log.warning("lost the connection to NATS at %s; reconnecting", url)
        if on_change:
            on_change(False)

    async def reconnected() -> None:
        log.info("reconnected to NATS at %s", url)
        if on_change:
            on_change(True)

    async def errored(error: Exception) -> None:
        log.debug("NATS: %s", error)

    delay = CONNECT_BACKOFF_SECONDS
    failures = 0
    while True:
        try:
            client = await nats.connect(
                url,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                # Publishes made while disconnected fail at once instead of waiting in a
                # buffer: a caller gets 503, never a 202 for an event that was not stored.
                pending_size=0,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=errored,
            )
        except (OSError, TimeoutError, nats.errors.Error) as error:
            failures += 1
            if failures in (1, 10) or failures % 50 == 0:
                log.warning("cannot reach NATS at %s (%s); trying again", url, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_CONNECT_BACKOFF_SECONDS)
            continue
        connected.append(client)
        if on_change:
            on_change(True)
        return client


async def publish_schedule(buckets: ScheduleBuckets, entry: ScheduleEntry) -> None:
    """Put a schedule Trigger in the catalog: every dispatcher fires it from then on (an
    unchanged entry put again changes nothing)."""
    await buckets.catalog.put(entry.key, entry.encode())


async def withdraw_schedule(buckets: ScheduleBuckets, namespace: str, trigger: str) -> None:
    """Take a Trigger out of the catalog (deleted, or no longer a schedule): the
    dispatchers stop firing it. Its last fire is forgotten too."""
    key = entry_key(namespace, trigger)
    for bucket in (buckets.catalog, buckets.fires):
        with contextlib.suppress(KeyNotFoundError):
            await bucket.delete(key)


@dataclass
class StreamBuckets:
    """The stream catalog (operator -> dispatchers), the ordered Triggers' leases (between
    dispatchers) and the readers' reports (dispatchers -> operator)."""

    catalog: KeyValue
    leases: KeyValue
    reports: KeyValue


async def ensure_stream_buckets(client: NATS, replicas: int = 1) -> StreamBuckets:
    js = client.jetstream(timeout=5.0)
    return StreamBuckets(
        catalog=await _bucket(js, STREAM_CATALOG_BUCKET, None, replicas),
        leases=await _bucket(js, STREAM_LEASE_BUCKET, LEASE_TTL_SECONDS, replicas),
        reports=await _bucket(js, STREAM_REPORT_BUCKET, REPORT_TTL_SECONDS, replicas),
    )


async def publish_stream(buckets: StreamBuckets, entry: StreamEntry) -> None:
    """Put a stream Trigger in the catalog: the dispatchers read its stream from then on
    (an entry put again unchanged changes nothing; a changed one restarts its readers)."""
    encoded = entry.encode()
    with contextlib.suppress(KeyNotFoundError):
        if (await buckets.catalog.get(entry.key)).value == encoded:
            return  # sealing is deterministic: an unchanged entry encodes the same
    await buckets.catalog.put(entry.key, encoded)


async def withdraw_stream(buckets: StreamBuckets, namespace: str, trigger: str) -> None:
    """Take a Trigger out of the catalog: the dispatchers stop reading its stream."""
    with contextlib.suppress(KeyNotFoundError):
        await buckets.catalog.delete(entry_key(namespace, trigger))
