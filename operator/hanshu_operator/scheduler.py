"""Schedule Triggers: fire the Function at each cron time, through the gateway's invoke path
(so a Function at zero wakes for it), and record every outcome. A fire that cannot be
delivered is retried a few times and then reported, never dropped silently."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from hanshu_api.conditions import rfc3339
from hanshu_api.cron import parse_cron
from hanshu_api.models import Schedule

log = logging.getLogger("hanshu.scheduler")

RETRY_DELAYS = (1.0, 3.0, 10.0)


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


def invoke_through_gateway(session: aiohttp.ClientSession, url: str, timeout: float) -> Fire:
    """A Fire that POSTs the event to the gateway's internal invoke path."""

    async def fire(event: dict[str, Any]) -> tuple[bool, str]:
        try:
            async with session.post(
                url,
                json=event,
                headers={"X-Request-Id": uuid.uuid4().hex},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as reply:
                body = await reply.text()
                if reply.status >= 500 or reply.status == 429:
                    return False, f"{reply.status}: {body[:200]}"
                return True, str(reply.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            return False, f"not delivered: {type(error).__name__}: {error}"

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
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> None:
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
        delay = (next_fire - now()).total_seconds()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, delay)):
                await stopped.wait()
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
