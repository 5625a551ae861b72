"""The schedule daemon's loop on a simulated clock: days of fires in milliseconds."""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo
from typing import Any

from hanshu_api.models import Schedule
from hanshu_operator.scheduler import (
    FireRecord,
    SystemClock,
    follow_schedule,
    run_schedule,
    schedule_event,
)

UTC = datetime.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


class SimulatedClock:
    """A clock that jumps to the moment a sleeper waits for, at once: once every other
    task that can run has run (what a real sleep of minutes would let happen), unless
    it is woken meanwhile."""

    SETTLE_STEPS = 20  # loop turns that let other tasks (an edit's detection) go first

    def __init__(self, start: datetime.datetime) -> None:
        self.time = start

    def now(self) -> datetime.datetime:
        return self.time

    async def sleep_until(self, moment: datetime.datetime, wake: asyncio.Event) -> None:
        for _ in range(self.SETTLE_STEPS):
            if wake.is_set():
                return
            await asyncio.sleep(0)
        self.time = max(self.time, moment)


class Fires:
    """A Fire that records what was delivered and when, stopping after ``limit``."""

    def __init__(self, clock: SimulatedClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.events: list[dict[str, Any]] = []
        self.times: list[datetime.datetime] = []
        self.done = asyncio.Event()

    async def __call__(self, event: dict[str, Any]) -> tuple[bool, str]:
        self.events.append(event)
        self.times.append(self.clock.now())
        if len(self.events) >= self.limit:
            self.done.set()
        return True, "200"


async def run_until_done(
    schedule: Schedule, clock: SimulatedClock, fires: Fires
) -> list[FireRecord]:
    records: list[FireRecord] = []

    async def record(fire: FireRecord) -> None:
        records.append(fire)

    await asyncio.wait_for(
        run_schedule(
            "t", schedule, fires, record, fires.done, now=clock.now, sleep_until=clock.sleep_until
        ),
        timeout=5,
    )
    return records


def local(moment: datetime.datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%H:%M %Z")


async def test_every_five_minutes_across_the_spring_forward_gap():
    """New York skips 02:00-02:59 on 2026-03-08: the fires go on every five real minutes."""
    clock = SimulatedClock(datetime.datetime(2026, 3, 8, 6, 42, 10, tzinfo=UTC))  # 01:42 EST
    fires = Fires(clock, limit=6)
    records = await run_until_done(Schedule("*/5 * * * *", "America/New_York"), clock, fires)

    assert [local(t) for t in fires.times] == [
        "01:45 EST",
        "01:50 EST",
        "01:55 EST",
        "03:00 EDT",
        "03:05 EDT",
        "03:10 EDT",
    ]
    gaps = {later - earlier for earlier, later in zip(fires.times, fires.times[1:], strict=False)}
    assert gaps == {datetime.timedelta(minutes=5)}
    # Each fire went off at its time, not before, and says which time it is for.
    assert [e["triggerTime"] for e in fires.events] == [
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in fires.times
    ]
    # Every record announced the fire that came next.
    assert [r.next_fire for r in records[: len(fires.times)]] == fires.times
    assert all(r.delivered and r.outcome == "200" for r in records[1:])


async def test_every_five_minutes_across_the_fall_back_hour():
    """New York repeats 01:00-01:59 on 2026-11-01: an every-five-minutes schedule keeps
    firing every five real minutes through both of them, as cron does for such jobs."""
    clock = SimulatedClock(datetime.datetime(2026, 11, 1, 5, 50, tzinfo=UTC))  # 01:50 EDT
    fires = Fires(clock, limit=4)
    await run_until_done(Schedule("*/5 * * * *", "America/New_York"), clock, fires)
    assert [local(t) for t in fires.times] == ["01:55 EDT", "01:00 EST", "01:05 EST", "01:10 EST"]


async def test_an_edited_schedule_stops_the_old_one():
    """Every five minutes, edited after two fires to the top of each hour: the old
    schedule never fires again, the new one fires on its own times."""
    clock = SimulatedClock(datetime.datetime(2026, 6, 1, 9, 58, tzinfo=UTC))
    plans = {"current": ("report", Schedule("*/5 * * * *", payload={"v": 1}))}
    looked_at = asyncio.Event()  # what kopf's live spec and its stop flag are to the daemon
    stopped = asyncio.Event()
    fired: list[tuple[datetime.datetime, dict[str, Any]]] = []

    async def run(plan: tuple[str, Schedule], stop: asyncio.Event) -> None:
        _function, schedule = plan

        async def fire(event: dict[str, Any]) -> tuple[bool, str]:
            fired.append((clock.now(), event["payload"]))
            if len(fired) == 2:  # the user edits the Trigger at the second fire
                plans["current"] = ("report", Schedule("0 * * * *", payload={"v": 2}))
                looked_at.set()
            if len(fired) == 4:  # the Trigger is deleted
                stopped.set()
                looked_at.set()
            return True, "200"

        async def record(_: FireRecord) -> None:
            pass

        await run_schedule(
            "t", schedule, fire, record, stop, now=clock.now, sleep_until=clock.sleep_until
        )

    async def next_look() -> None:
        await looked_at.wait()
        looked_at.clear()

    await asyncio.wait_for(
        follow_schedule(lambda: plans["current"], run, stopped.is_set, next_look), timeout=5
    )

    assert fired == [
        (datetime.datetime(2026, 6, 1, 10, 0, tzinfo=UTC), {"v": 1}),
        (datetime.datetime(2026, 6, 1, 10, 5, tzinfo=UTC), {"v": 1}),
        (datetime.datetime(2026, 6, 1, 11, 0, tzinfo=UTC), {"v": 2}),
        (datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC), {"v": 2}),
    ]


async def test_a_spec_with_no_plan_waits_for_a_fixed_one():
    """An edit that makes the spec invalid pauses the schedule; fixing it resumes it
    (the daemon used to end for good, until the operator restarted)."""
    plans: list[str | None] = [None, None, "fixed"]
    ran: list[str] = []
    stopped = asyncio.Event()

    async def run(plan: str, stop: asyncio.Event) -> None:
        ran.append(plan)
        stopped.set()
        await stop.wait()

    async def next_look() -> None:
        if len(plans) > 1:
            plans.pop(0)
        await asyncio.sleep(0)

    await asyncio.wait_for(
        follow_schedule(lambda: plans[0], run, stopped.is_set, next_look), timeout=5
    )
    assert ran == ["fixed"]


async def test_an_undelivered_fire_is_retried_then_reported():
    clock = SimulatedClock(datetime.datetime(2026, 6, 1, 9, 59, 30, tzinfo=UTC))
    attempts: list[dict[str, Any]] = []
    records: list[FireRecord] = []
    stopped = asyncio.Event()

    async def refuse(event: dict[str, Any]) -> tuple[bool, str]:
        attempts.append(event)
        return False, "not delivered: ClientConnectorError: connection refused"

    async def record(fire: FireRecord) -> None:
        records.append(fire)
        if fire.last_fire is not None:
            stopped.set()

    await asyncio.wait_for(
        run_schedule(
            "t",
            Schedule("* * * * *"),
            refuse,
            record,
            stopped,
            now=clock.now,
            sleep_until=clock.sleep_until,
            retry_delays=(0, 0),
        ),
        timeout=5,
    )
    assert len(attempts) == 3  # the first try and two retries, of the same event
    assert all(a == attempts[0] for a in attempts)
    assert records[-1].delivered is False
    assert records[-1].last_fire == datetime.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def test_the_fire_event_carries_the_payload_under_its_own_key():
    event = schedule_event(
        "nightly",
        datetime.datetime(2026, 6, 1, 18, 30, tzinfo=UTC),
        Schedule("30 2 * * *", "Asia/Shanghai", {"team": "payments"}),
    )
    assert event == {
        "triggerName": "nightly",
        "triggerTime": "2026-06-01T18:30:00Z",
        "source": "hanshu.schedule",
        "payload": {"team": "payments"},
    }


async def test_the_system_clock_wakes_at_the_moment_or_when_woken():
    clock = SystemClock()
    wake = asyncio.Event()
    # A moment in the past returns at once; a far one returns as soon as it is woken.
    await asyncio.wait_for(clock.sleep_until(clock.now(), wake), timeout=1)
    later = clock.now() + datetime.timedelta(hours=1)
    sleeper = asyncio.create_task(clock.sleep_until(later, wake))
    await asyncio.sleep(0)
    assert not sleeper.done()
    wake.set()
    await asyncio.wait_for(sleeper, timeout=1)
    assert clock.now() < later
