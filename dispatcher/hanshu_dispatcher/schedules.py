"""Schedule Triggers: every dispatcher fires every tick of every schedule in the catalog
bucket, as an async invocation stored through the gateway's internal port under the
Idempotency-Key of (Trigger, tick). The gateway keeps one, so a tick fires once however
many dispatchers run, and on time while any one of them runs. The async path then runs
it with the Function's retries, destinations and metering.

Missed ticks (the rule, docs/events.md): a running dispatcher fires a tick late, up to
``LATE_FIRE_SECONDS`` after it (a stalled loop, a gateway that answered only on a retry);
a tick older than that, or one that passed while no dispatcher ran, is skipped, as cron
skips the jobs of a machine that was off.

Time comes from a ``Clock`` (``now`` and ``sleep_until``) and ticks from a ``TickSource``
(the cron, by default): a test runs a day of ticks on a simulated clock, or ticks every
second on the real one.

Cost: one task per schedule, asleep until its next tick; a fire is one call to the
gateway and one read and write of the fires bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from hanshu_api.invocations import EVENT
from hanshu_api.schedules import (
    ScheduleEntry,
    ScheduleFire,
    ScheduleInvalid,
    fire_key,
    schedule_event,
    tick_text,
)
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from . import metrics
from .catalog_watch import follow_catalog
from .gateway_client import InternalGateway

log = logging.getLogger("hanshu.dispatcher.schedules")

# A fire that the gateway does not store is tried again after each of these delays.
RETRY_DELAYS = (1.0, 3.0, 10.0)
# How late a running dispatcher still fires a tick; older ones are skipped. Far inside the
# gateway's idempotency window (1 h), so a late fire is still recognised as a duplicate.
LATE_FIRE_SECONDS = 60.0

TickSource = Callable[[ScheduleEntry, datetime.datetime], datetime.datetime]


def cron_ticks(entry: ScheduleEntry, after: datetime.datetime) -> datetime.datetime:
    return entry.next_tick(after)


class Clock(Protocol):
    def now(self) -> datetime.datetime: ...

    async def sleep_until(self, moment: datetime.datetime, wake: asyncio.Event) -> None:
        """Return at ``moment``, or as soon as ``wake`` is set."""
        ...


class SystemClock:
    """UTC wall time; sleeps on the event loop's timer, checked against the wall clock on
    waking (NTP steps it, a laptop sleeps), so a fire never goes off before its tick."""

    def now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    async def sleep_until(self, moment: datetime.datetime, wake: asyncio.Event) -> None:
        while not wake.is_set():
            delay = (moment - self.now()).total_seconds()
            if delay <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()


def next_tick_to_fire(
    ticks: TickSource,
    entry: ScheduleEntry,
    last_fired: datetime.datetime | None,
    now: datetime.datetime,
    late: datetime.timedelta = datetime.timedelta(seconds=LATE_FIRE_SECONDS),
) -> datetime.datetime:
    """The rule for missed ticks: the tick after the last one fired, unless it is more than
    ``late`` past; then (and on a first look) the first tick after now."""
    if last_fired is not None:
        following = ticks(entry, last_fired)
        if following >= now - late:
            return following
    return ticks(entry, now)


@dataclass(frozen=True, slots=True)
class Stored:
    delivered: bool
    outcome: str
    invocation_id: str | None = None
    duplicate: bool = False  # another dispatcher stored this tick first


Fire = Callable[[ScheduleEntry, datetime.datetime], Awaitable[Stored]]
Record = Callable[[ScheduleFire], Awaitable[None]]


def gateway_fire(gateway: InternalGateway, time_limit: float = 10.0) -> Fire:
    """A Fire that stores the tick's event as an async invocation of the Function."""

    async def fire(entry: ScheduleEntry, tick: datetime.datetime) -> Stored:
        body = json.dumps(schedule_event(entry.trigger, tick, entry.schedule)).encode()
        try:
            reply = await gateway.enqueue(
                entry.namespace,
                entry.function,
                body,
                time_limit=time_limit,
                idempotency_key=fire_key(entry.namespace, entry.trigger, tick),
                invocation_type=EVENT,  # billed as the platform's event, as before
                # A Trigger on a version or an alias: the gateway picks and records it.
                version=entry.version,
                alias=entry.alias,
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            return Stored(False, f"not delivered: {type(error).__name__}: {error}")
        if reply.status != 202:
            return Stored(False, f"{reply.status}: {reply.body.decode(errors='replace')[:200]}")
        try:
            accepted = json.loads(reply.body)
            invocation_id = str(accepted["invocationId"])
        except (ValueError, KeyError, TypeError):
            return Stored(False, "the gateway's reply names no invocation")
        outcome = f"stored as invocation {invocation_id}"
        return Stored(True, outcome, invocation_id, accepted.get("duplicate") is True)

    return fire


async def fire_with_retries(
    fire: Fire,
    entry: ScheduleEntry,
    tick: datetime.datetime,
    delays: tuple[float, ...] = RETRY_DELAYS,
) -> Stored:
    stored = await fire(entry, tick)
    for delay in delays:
        if stored.delivered:
            break
        await asyncio.sleep(delay)
        stored = await fire(entry, tick)
    return stored


async def run_schedule(
    entry: ScheduleEntry,
    fire: Fire,
    record: Record,
    stopped: asyncio.Event,
    clock: Clock,
    ticks: TickSource = cron_ticks,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> None:
    """Fire ``entry`` at each tick until ``stopped``, recording each fire."""
    last: datetime.datetime | None = None
    while not stopped.is_set():
        tick = next_tick_to_fire(ticks, entry, last, clock.now())
        await clock.sleep_until(tick, stopped)
        if stopped.is_set():
            return
        stored = await fire_with_retries(fire, entry, tick, retry_delays)
        _count(entry, tick, stored)
        if stored.delivered and not stored.duplicate:
            log.info(
                "schedule %s/%s fired at %s: %s",
                entry.namespace,
                entry.trigger,
                tick_text(tick),
                stored.outcome,
            )
        elif not stored.delivered:
            log.error(
                "schedule %s/%s: the fire at %s was not stored: %s",
                entry.namespace,
                entry.trigger,
                tick_text(tick),
                stored.outcome,
            )
        last = tick
        await record(
            ScheduleFire(
                entry.namespace,
                entry.trigger,
                tick,
                time.time(),
                stored.delivered,
                stored.outcome,
                stored.invocation_id,
            )
        )


def fires_recorder(fires: KeyValue) -> Record:
    """A Record into the fires bucket; a NATS failure is logged (the next fire writes
    again), never fatal to the schedule."""

    async def record(fire: ScheduleFire) -> None:
        try:
            await record_fire(fires, fire)
        except (NatsError, TimeoutError) as error:
            log.warning("cannot record the fire of %s: %s", fire.key, error)

    return record


def _count(entry: ScheduleEntry, tick: datetime.datetime, stored: Stored) -> None:
    result = "failed" if not stored.delivered else "duplicate" if stored.duplicate else "stored"
    metrics.SCHEDULE_FIRES.labels(entry.namespace, entry.trigger, result).inc()
    if result == "stored":
        metrics.SCHEDULE_DELAY.observe(max(0.0, time.time() - tick.timestamp()))


async def record_fire(fires: KeyValue, fire: ScheduleFire) -> None:
    """Keep ``fire`` as the Trigger's latest unless the bucket holds a newer one (every
    dispatcher records the ticks it fired; compare-and-set, so none goes back in time)."""
    for _ in range(3):
        try:
            entry = await fires.get(fire.key)
        except KeyNotFoundError:
            entry = None
        stored: ScheduleFire | None = None
        if entry is not None and entry.value:
            with contextlib.suppress(ScheduleInvalid):
                stored = ScheduleFire.parse(entry.value)
        if not fire.supersedes(stored):
            return
        try:
            if entry is None:
                await fires.create(fire.key, fire.encode())
            else:
                await fires.update(fire.key, fire.encode(), last=entry.revision)
            return
        except KeyWrongLastSequenceError:
            continue  # another dispatcher wrote meanwhile: judge again


class Schedules:
    """Follows the catalog bucket: one running schedule per entry, restarted when its entry
    changes, stopped when it is deleted."""

    def __init__(
        self,
        catalog: KeyValue,
        fire: Fire,
        record: Record,
        clock: Clock | None = None,
        ticks: TickSource = cron_ticks,
    ) -> None:
        self.catalog = catalog
        self.fire = fire
        self.record = record
        self.clock = clock or SystemClock()
        self.ticks = ticks
        self.running: dict[str, tuple[ScheduleEntry, asyncio.Event, asyncio.Task[None]]] = {}

    async def run(self) -> None:
        await follow_catalog(
            self.catalog,
            parse=ScheduleEntry.parse,
            invalid=ScheduleInvalid,
            start=self._start,
            stop=self._stop,
            running=self.running,
            log=log,
            kind="schedule",
        )

    async def _start(self, entry: ScheduleEntry) -> None:
        current = self.running.get(entry.key)
        if current is not None and current[0] == entry:
            return
        # The old schedule stops before the new one starts: an edit never fires twice.
        await self._stop(entry.key)
        stopped = asyncio.Event()
        task = asyncio.create_task(
            run_schedule(entry, self.fire, self.record, stopped, self.clock, self.ticks)
        )
        self.running[entry.key] = (entry, stopped, task)
        log.info(
            "firing schedule %s/%s (%s, %s) on Function %s",
            entry.namespace,
            entry.trigger,
            entry.schedule.cron,
            entry.schedule.time_zone,
            entry.function,
        )

    async def _stop(self, key: str) -> None:
        current = self.running.pop(key, None)
        if current is None:
            return
        entry, stopped, task = current
        stopped.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A series per Trigger that ever fired would grow without bound as Triggers come
        # and go: a stopped schedule's go with it.
        for result in ("stored", "duplicate", "failed"):
            with contextlib.suppress(KeyError):
                metrics.SCHEDULE_FIRES.remove(entry.namespace, entry.trigger, result)
