"""Stream Triggers in the dispatchers: each follows the catalog bucket and reads every
stream Trigger in it, sharing the work with the other dispatchers.

- Unordered: every dispatcher reads with the same durable consumer (NATS) or consumer
  group (Redis, one consumer name per dispatcher); what a dead one held is handed out
  again after the hold time (JetStream's ack wait; XAUTOCLAIM of idle entries).
- Ordered: one reader at a time, the holder of the Trigger's lease in the leases bucket
  (created if absent, renewed revision-checked every second, expiring after a few seconds
  without renewal). The new holder resumes from the consumer's position: NATS hands out
  nothing past the unacknowledged batch (max_ack_pending), and Redis's one consumer name
  makes the dead holder's pending entries the first the new one reads. Nothing is lost
  and the order is kept.

A reader writes its report (health, lag, last delivery, counts) into the reports bucket
when its health changes and every REPORT_INTERVAL_SECONDS; the operator turns the reports
into the Trigger's status. The lag also goes to the autoscaler (``lag_reports``).

Cost: per stream Trigger, one task per dispatcher (asleep on the lease when ordered and
not held); its reader holds a connection to the source and its batches in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from hanshu_api.jetstream import StreamBuckets
from hanshu_api.stats_report import StatsReport
from hanshu_api.streams import (
    LEASE_RENEW_SECONDS,
    LEASE_TTL_SECONDS,
    REPORT_INTERVAL_SECONDS,
    StreamEntry,
    StreamEntryInvalid,
    StreamReport,
)
from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from . import metrics
from .catalog_watch import follow_catalog
from .gateway_client import InternalGateway
from .stream_consumer import SourceHealth, StreamConsumer
from .stream_readers import (
    SourceConfigError,
    build_source,
    event_invoker,
    function_arn,
    lag_report,
    on_failure_sender,
)
from .stream_sources import wait_or_stop

log = logging.getLogger("hanshu.dispatcher.streams")


def reader_name() -> str:
    """This dispatcher among the readers: its pod (host) and process, as a KV key part and
    a Redis consumer name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{socket.gethostname()}-{os.getpid()}")


@dataclass
class Lease:
    """An ordered Trigger's lease while held: lost when a renewal finds another holder, or
    when none succeeded for the lease's lifetime (it may have expired meanwhile)."""

    leases: KeyValue
    key: str
    reader: str
    revision: int
    lost: bool = False

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew until lost; then ``stop`` is set (the reader stops)."""
        renewed = time.monotonic()
        while not self.lost:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                self.revision = await self.leases.update(
                    self.key, self.reader.encode(), last=self.revision
                )
                renewed = time.monotonic()
            except KeyWrongLastSequenceError:
                log.warning("lease of %s taken by another dispatcher", self.key)
                self.lost = True
            except (NatsError, TimeoutError) as error:
                if time.monotonic() - renewed > LEASE_TTL_SECONDS - LEASE_RENEW_SECONDS:
                    log.warning("lease of %s not renewed (%s): stepping back", self.key, error)
                    self.lost = True
        stop.set()

    async def release(self) -> None:
        """Handed back at once on a clean stop: the next holder need not wait the TTL."""
        with contextlib.suppress(NatsError, TimeoutError, KeyWrongLastSequenceError):
            await self.leases.delete(self.key, last=self.revision)


async def take_lease(leases: KeyValue, key: str, reader: str, stopped: asyncio.Event) -> Lease:
    """Wait for the lease of ``key`` (checked every LEASE_RENEW_SECONDS) until ``stopped``:
    then raises CancelledError."""
    while not stopped.is_set():
        try:
            revision = await leases.create(key, reader.encode())
            log.info("took the lease of %s", key)
            return Lease(leases, key, reader, revision)
        except KeyWrongLastSequenceError:
            pass  # held by a live dispatcher
        except (NatsError, TimeoutError) as error:
            log.warning("cannot take the lease of %s: %s", key, error)
        await wait_or_stop(stopped, LEASE_RENEW_SECONDS)
    raise asyncio.CancelledError


async def relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


class Streams:
    """Follows the catalog: one reading task per entry, restarted when its entry changes,
    stopped when it is deleted."""

    def __init__(
        self,
        buckets: StreamBuckets,
        gateway: InternalGateway,
        nats_url: str,
        token: str,
        hold_seconds: float,
        reader: str | None = None,
        on_report: Callable[[StreamReport], None] | None = None,
    ) -> None:
        self.buckets = buckets
        self.gateway = gateway
        self.nats_url = nats_url
        self.token = token
        self.hold_seconds = hold_seconds
        self.reader = reader or reader_name()
        self.on_report = on_report
        self.running: dict[str, tuple[StreamEntry, asyncio.Event, asyncio.Task[None]]] = {}
        # The latest lag of each Trigger this dispatcher reads: (Function, lag).
        self.lags: dict[tuple[str, str], tuple[str, int]] = {}

    def lag_reports(self) -> list[StatsReport]:
        return [
            lag_report(namespace, trigger, function, lag)
            for (namespace, trigger), (function, lag) in sorted(self.lags.items())
        ]

    async def run(self) -> None:
        await follow_catalog(
            self.buckets.catalog,
            parse=StreamEntry.parse,
            invalid=StreamEntryInvalid,
            start=self._start,
            stop=self._stop,
            running=self.running,
            log=log,
            kind="stream",
        )

    async def _start(self, entry: StreamEntry) -> None:
        current = self.running.get(entry.key)
        if current is not None and current[0] == entry:
            return
        await self._stop(entry.key)  # the old reader stops before the new one reads
        stopped = asyncio.Event()
        task = asyncio.create_task(self._read(entry, stopped))
        self.running[entry.key] = (entry, stopped, task)

    async def _stop(self, key: str) -> None:
        current = self.running.pop(key, None)
        if current is None:
            return
        entry, stopped, task = current
        stopped.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self.lags.pop((entry.namespace, entry.trigger), None)

    async def _read(self, entry: StreamEntry, stopped: asyncio.Event) -> None:
        try:
            ordered = entry.source().ordered
        except Exception as bad:  # a spec the operator let through: never fatal here
            log.error("stream Trigger %s cannot be read: %s", entry.key, bad)
            return
        if not ordered:
            await self._consume(entry, stopped)
            return
        while not stopped.is_set():
            try:
                lease = await take_lease(self.buckets.leases, entry.key, self.reader, stopped)
            except asyncio.CancelledError:
                return
            stop = asyncio.Event()
            helpers = [
                asyncio.create_task(lease.keep(stop)),
                asyncio.create_task(relay(stopped, stop)),
            ]
            try:
                await self._consume(entry, stop)
            finally:
                for helper in helpers:
                    helper.cancel()
                if not lease.lost:
                    await lease.release()

    async def _consume(self, entry: StreamEntry, stop: asyncio.Event) -> None:
        namespace, name = entry.namespace, entry.trigger
        spec = entry.source()
        health = SourceHealth()
        changed = asyncio.Event()
        try:
            source = build_source(
                namespace,
                name,
                spec,
                entry.url(self.token),
                self.nats_url,
                self.reader,
                self.hold_seconds,
            )
        except (SourceConfigError, StreamEntryInvalid) as bad:
            health = SourceHealth(healthy=False, message=str(bad))
            await self._report(entry, health)
            await stop.wait()
            return

        async def on_change(now: SourceHealth) -> None:
            nonlocal health
            if now.lag is not None:
                self.lags[(namespace, name)] = (entry.function, now.lag)
                metrics.STREAM_LAG.labels(namespace, name, entry.function).set(now.lag)
            if (now.healthy, now.message) != (health.healthy, health.message):
                changed.set()
            health = SourceHealth(**vars(now))

        consumer = StreamConsumer(
            (namespace, name),
            function_arn(namespace, entry.function),
            spec,
            source,
            event_invoker(self.gateway, namespace, entry.function),
            on_failure_sender(self.gateway, self.nats_url, namespace, spec.on_failure)
            if spec.on_failure
            else None,
            on_change,
        )
        log.info("stream Trigger %s reads %s", entry.key, source.description)
        reading = asyncio.create_task(consumer.run(stop))
        try:
            while not reading.done():
                waking = asyncio.ensure_future(changed.wait())
                await asyncio.wait(
                    {reading, waking},
                    timeout=REPORT_INTERVAL_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waking.cancel()
                changed.clear()
                await self._report(entry, health)
            reading.result()
        except asyncio.CancelledError:
            raise
        except Exception as crash:  # a crashed reader says so and starts again
            log.error("%s: the stream consumer stopped: %r", entry.key, crash)
            await self._report(entry, SourceHealth(False, f"the consumer stopped: {crash!r}"))
            if not await wait_or_stop(stop, 5.0):
                await self._consume(entry, stop)
        finally:
            if not reading.done():
                reading.cancel()
            self.lags.pop((namespace, name), None)
            with contextlib.suppress(KeyError):  # no lag read yet
                metrics.STREAM_LAG.remove(namespace, name, entry.function)

    async def _report(self, entry: StreamEntry, health: SourceHealth) -> None:
        if health.healthy is None:
            return
        report = StreamReport(
            entry.namespace,
            entry.trigger,
            self.reader,
            health.healthy,
            health.message,
            time.time(),
            health.lag,
            health.last_delivery,
            health.delivered,
            health.failed,
        )
        if self.on_report is not None:
            self.on_report(report)
        try:
            await self.buckets.reports.put(report.key, report.encode())
        except (NatsError, TimeoutError) as error:
            log.warning("cannot record the report of %s: %s", entry.key, error)
