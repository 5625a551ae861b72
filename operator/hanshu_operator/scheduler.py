"""Schedule Triggers: fire the Function at each cron time, through the gateway's invoke path
(so a Function at zero wakes for it), and record every outcome. A fire that cannot be
delivered is retried a few times and then reported, never dropped silently.

Time comes from a ``Clock`` (``now`` and ``sleep_until``): the real one in production, a
simulated one in tests, so a test checks a day of fires without waiting for any of them.

Cost: one kopf daemon (a task) per schedule Trigger, asleep until its next fire and
waking every ``triggers.EDIT_LOOK_SECONDS`` (2 s) to look at its spec for an edit; a fire
is one invocation and one status write. Nothing here looks at another Trigger, so n
schedules cost n tasks and n/2 wake-ups a second (10,000 schedules: 5,000 cheap wake-ups
a second, about 2 % of a core), never n * n."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
from hanshu_api.cron import parse_cron
from hanshu_api.gateway_client import InternalGateway
from hanshu_api.models import Schedule

from .conditions import rfc3339

log = logging.getLogger("hanshu.scheduler")

RETRY_DELAYS = (1.0, 3.0, 10.0)

Plan = TypeVar("Plan")
SleepUntil = Callable[[datetime.datetime, asyncio.Event], Awaitable[None]]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def sleeper(now: Callable[[], datetime.datetime]) -> SleepUntil:
    """A ``sleep_until`` on the event loop's timer, measured against ``now``."""

    async def sleep_until(moment: datetime.datetime, wake: asyncio.Event) -> None:
        # The loop's timer is monotonic and the wall clock is not (NTP steps it, a laptop
        # sleeps): check again on waking, so a fire never goes off before its time.
        while not wake.is_set():
            delay = (moment - now()).total_seconds()
            if delay <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wake.wait()

    return sleep_until


class Clock(Protocol):
    def now(self) -> datetime.datetime: ...

    async def sleep_until(self, moment: datetime.datetime, wake: asyncio.Event) -> None:
        """Return at ``moment``, or as soon as ``wake`` is set."""
        ...


class SystemClock:
    """The real clock: UTC wall time, and sleeps on the event loop."""

    def now(self) -> datetime.datetime:
        return utc_now()

    async def sleep_until(self, moment: datetime.datetime, wake: asyncio.Event) -> None:
        await sleeper(self.now)(moment, wake)


@dataclass(frozen=True, slots=True)
class FireRecord:
    next_fire: datetime.datetime
    last_fire: datetime.datetime | None = None
    outcome: str | None = None  # "200", or why it was not delivered
    delivered: bool = True


def schedule_event(
    trigger: str, fire_time: datetime.datetime, schedule: Schedule
) -> dict[str, Any]:
    """The event a scheduled Function receives (Function Compute's timer trigger shape)."""
    return {
        "triggerName": trigger,
        "triggerTime": rfc3339(fire_time),
        "source": "hanshu.schedule",
        "payload": dict(schedule.payload),
    }


Fire = Callable[[dict[str, Any]], Awaitable[tuple[bool, str]]]


def schedule_fire(
    gateway: InternalGateway, namespace: str, function: str, time_limit: float
) -> Fire:
    """A Fire that runs the event on the Function through the gateway's invoke path."""

    async def fire(event: dict[str, Any]) -> tuple[bool, str]:
        try:
            reply = await gateway.invoke(
                namespace, function, event, time_limit=time_limit, request_id=uuid.uuid4().hex
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            return False, f"not delivered: {type(error).__name__}: {error}"
        if reply.status >= 500 or reply.status == 429:
            return False, f"{reply.status}: {reply.body.decode(errors='replace')[:200]}"
        return True, str(reply.status)

    return fire


async def fire_with_retries(
    fire: Fire, event: dict[str, Any], delays: tuple[float, ...] = RETRY_DELAYS
) -> tuple[bool, str]:
    delivered, outcome = await fire(event)
    for delay in delays:
        if delivered:
            break
        await asyncio.sleep(delay)
        delivered, outcome = await fire(event)
    return delivered, outcome


async def run_schedule(
    trigger: str,
    schedule: Schedule,
    fire: Fire,
    record: Callable[[FireRecord], Awaitable[None]],
    stopped: asyncio.Event,
    now: Callable[[], datetime.datetime] = utc_now,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
    sleep_until: SleepUntil | None = None,
) -> None:
    """Fire at every cron time until ``stopped``; ``now`` and ``sleep_until`` are the clock
    (by default the real one; ``sleep_until`` defaults to real sleeps measured by ``now``)."""
    sleep_until = sleep_until or sleeper(now)
    cron = parse_cron(schedule.cron)
    last: FireRecord | None = None
    while not stopped.is_set():
        next_fire = cron.next_after(now(), schedule.time_zone)
        await record(
            FireRecord(
                next_fire,
                last.last_fire if last else None,
                last.outcome if last else None,
                last.delivered if last else True,
            )
        )
        await sleep_until(next_fire, stopped)
        if stopped.is_set():
            return
        delivered, outcome = await fire_with_retries(
            fire, schedule_event(trigger, next_fire, schedule), retry_delays
        )
        if not delivered:
            log.error(
                "schedule %s: the fire at %s was not delivered: %s",
                trigger,
                next_fire.isoformat(),
                outcome,
            )
        last = FireRecord(next_fire, next_fire, outcome, delivered)


async def follow_schedule(
    current_plan: Callable[[], Plan | None],
    run: Callable[[Plan, asyncio.Event], Coroutine[Any, Any, None]],
    is_stopped: Callable[[], bool],
    next_look: Callable[[], Awaitable[object]],
) -> None:
    """Run the Trigger's current plan (what to fire, and when) until it is stopped; when an
    edit changes the plan, stop the old run before the new one starts, so an edited
    schedule never fires twice. While there is no plan (an edit made the spec invalid),
    wait for the next edit instead of ending: a fixed spec fires again.

    ``next_look`` returns when the plan may have changed (the daemon polls kopf's live
    spec; a test edits it directly)."""
    while not is_stopped():
        plan = current_plan()
        if plan is None:
            await next_look()
            continue
        stop = asyncio.Event()
        runner = asyncio.create_task(run(plan, stop))
        try:
            while not is_stopped() and not runner.done() and current_plan() == plan:
                await next_look()
        finally:
            stop.set()
            await runner
