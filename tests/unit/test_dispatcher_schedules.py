"""The dispatcher's schedules on a simulated clock: days of ticks in milliseconds; the
catalog and fire messages; the rule for missed ticks."""

from __future__ import annotations

import asyncio
import datetime
import zoneinfo
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hanshu_api.models import Schedule
from hanshu_api.schedules import (
    ScheduleEntry,
    ScheduleFire,
    ScheduleInvalid,
    entry_key,
    fire_key,
    schedule_event,
    trigger_of_key,
)
from hanshu_dispatcher.schedules import (
    Schedules,
    Stored,
    SystemClock,
    cron_ticks,
    next_tick_to_fire,
    run_schedule,
)
from prometheus_client import REGISTRY

from tests.support.helpers import eventually

UTC = datetime.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


class SimulatedClock:
    """A clock that jumps to the moment a sleeper waits for, at once: once every other
    task that can run has run (what a real sleep of minutes would let happen), unless
    it is woken meanwhile."""

    SETTLE_STEPS = 20

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
    """A Fire that keeps what it stored and when, setting ``done`` after ``limit``."""

    def __init__(self, clock: SimulatedClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.events: list[dict[str, Any]] = []
        self.times: list[datetime.datetime] = []
        self.done = asyncio.Event()

    async def __call__(self, entry: ScheduleEntry, tick: datetime.datetime) -> Stored:
        self.events.append(schedule_event(entry.trigger, tick, entry.schedule))
        self.times.append(self.clock.now())
        if len(self.events) >= self.limit:
            self.done.set()
        return Stored(True, f"stored as invocation {len(self.events)}", str(len(self.events)))


def entry(schedule: Schedule, function: str = "report") -> ScheduleEntry:
    return ScheduleEntry("shop", "t", function, schedule)


async def run_until_done(
    schedule: Schedule, clock: SimulatedClock, fires: Fires
) -> list[ScheduleFire]:
    records: list[ScheduleFire] = []

    async def record(fire: ScheduleFire) -> None:
        records.append(fire)

    await asyncio.wait_for(
        run_schedule(entry(schedule), fires, record, fires.done, clock), timeout=5
    )
    return records


def stored_fires() -> float:
    labels = {"namespace": "shop", "trigger": "t", "result": "stored"}
    return REGISTRY.get_sample_value("hanshu_dispatcher_schedule_fires_total", labels) or 0.0


def local(moment: datetime.datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%H:%M %Z")


async def test_every_five_minutes_across_the_spring_forward_gap():
    """New York skips 02:00-02:59 on 2026-03-08: the fires go on every five real minutes."""
    clock = SimulatedClock(datetime.datetime(2026, 3, 8, 6, 42, 10, tzinfo=UTC))  # 01:42 EST
    fires = Fires(clock, limit=6)
    before = stored_fires()
    records = await run_until_done(Schedule("*/5 * * * *", "America/New_York"), clock, fires)
    assert stored_fires() - before == 6

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
    # Each fire went off at its tick, not before, and says which tick it is for.
    assert [e["triggerTime"] for e in fires.events] == [
        t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in fires.times
    ]
    assert [r.tick for r in records] == fires.times
    assert all(r.delivered and r.outcome.startswith("stored as invocation") for r in records)


async def test_every_five_minutes_across_the_fall_back_hour():
    """New York repeats 01:00-01:59 on 2026-11-01: an every-five-minutes schedule keeps
    firing every five real minutes through both of them, as cron does for such jobs."""
    clock = SimulatedClock(datetime.datetime(2026, 11, 1, 5, 50, tzinfo=UTC))  # 01:50 EDT
    fires = Fires(clock, limit=4)
    await run_until_done(Schedule("*/5 * * * *", "America/New_York"), clock, fires)
    assert [local(t) for t in fires.times] == ["01:55 EDT", "01:00 EST", "01:05 EST", "01:10 EST"]


async def test_an_undelivered_fire_is_retried_then_reported():
    clock = SimulatedClock(datetime.datetime(2026, 6, 1, 9, 59, 30, tzinfo=UTC))
    attempts: list[datetime.datetime] = []
    records: list[ScheduleFire] = []
    stopped = asyncio.Event()

    async def refuse(_: ScheduleEntry, tick: datetime.datetime) -> Stored:
        attempts.append(tick)
        return Stored(False, "not delivered: ClientConnectorError: connection refused")

    async def record(fire: ScheduleFire) -> None:
        records.append(fire)
        stopped.set()

    await asyncio.wait_for(
        run_schedule(
            entry(Schedule("* * * * *")), refuse, record, stopped, clock, retry_delays=(0, 0)
        ),
        timeout=5,
    )
    tick = datetime.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert attempts == [tick, tick, tick]  # the first try and two retries, of the same tick
    assert records[-1].delivered is False
    assert records[-1].tick == tick
    assert "connection refused" in records[-1].outcome


def test_a_late_tick_is_still_fired_an_old_one_is_skipped():
    every_minute = entry(Schedule("* * * * *"))
    ten = datetime.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    minute = datetime.timedelta(minutes=1)
    # First look: the next tick after now (ticks before the dispatcher ran are skipped).
    assert next_tick_to_fire(cron_ticks, every_minute, None, ten + 30 * minute / 60) == (
        ten + minute
    )
    # After a fire that took long: the tick that came meanwhile is fired late.
    late = ten + minute + datetime.timedelta(seconds=20)
    assert next_tick_to_fire(cron_ticks, every_minute, ten, late) == ten + minute
    # A tick more than LATE_FIRE_SECONDS old is skipped, as cron skips it.
    stalled = ten + 5 * minute
    assert next_tick_to_fire(cron_ticks, every_minute, ten, stalled) == ten + 6 * minute


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


def test_catalog_entries_and_fires_read_back_as_written():
    written = ScheduleEntry(
        "shop", "nightly.v2", "report", Schedule("30 2 * * *", "Asia/Shanghai", {"a": [1]})
    )
    assert ScheduleEntry.parse(written.encode()) == written
    assert written.key == entry_key("shop", "nightly.v2") == "shop.nightly.v2"
    assert trigger_of_key(written.key) == ("shop", "nightly.v2")  # a name may hold dots
    fire = ScheduleFire(
        "shop", "nightly.v2", datetime.datetime(2026, 6, 1, 18, 30, tzinfo=UTC), 1.5, True, "ok"
    )
    assert ScheduleFire.parse(fire.encode()) == fire
    with pytest.raises(ScheduleInvalid, match="'function'"):
        ScheduleEntry.parse(b'{"namespace": "shop", "trigger": "t", "cron": "* * * * *"}')
    with pytest.raises(ScheduleInvalid, match="not JSON"):
        ScheduleFire.parse(b"{")


def test_the_fire_key_is_the_same_for_every_dispatcher_and_differs_per_tick():
    tick = datetime.datetime(2026, 6, 1, 18, 30, tzinfo=UTC)
    later = tick + datetime.timedelta(minutes=1)
    assert fire_key("shop", "t", tick) == "schedule/shop/t/2026-06-01T18:30:00Z"
    assert fire_key("shop", "t", tick) != fire_key("shop", "t", later)
    assert fire_key("shop", "t", tick) != fire_key("shop", "u", tick)


def test_a_fire_record_never_goes_back_in_time():
    tick = datetime.datetime(2026, 6, 1, 18, 30, tzinfo=UTC)

    def fire(at: datetime.datetime, delivered: bool) -> ScheduleFire:
        return ScheduleFire("shop", "t", at, 0.0, delivered, "")

    later = tick + datetime.timedelta(minutes=1)
    assert fire(tick, True).supersedes(None)
    assert fire(later, False).supersedes(fire(tick, True))
    assert not fire(tick, True).supersedes(fire(later, False))
    # The same tick: one dispatcher stored it, another could not reach the gateway.
    assert fire(tick, True).supersedes(fire(tick, False))
    assert not fire(tick, False).supersedes(fire(tick, True))


@dataclass
class Update:
    key: str
    value: bytes | None
    operation: str | None = None


class FakeCatalog:
    """A catalog bucket's watch, fed by the test."""

    def __init__(self) -> None:
        self.updates: asyncio.Queue[Update | None] = asyncio.Queue()

    async def watchall(self) -> AsyncIterator[Update | None]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Update | None]:
        while True:
            yield await self.updates.get()


async def test_an_edited_schedule_stops_the_old_one_and_a_deleted_one_stops():
    """Every five minutes, edited after two fires to the top of each hour: the old
    schedule never fires again, the new one fires on its own times; deleted, it stops."""
    clock = SimulatedClock(datetime.datetime(2026, 6, 1, 9, 58, tzinfo=UTC))
    catalog = FakeCatalog()
    fired: list[tuple[datetime.datetime, dict[str, Any]]] = []
    first = entry(Schedule("*/5 * * * *", payload={"v": 1}))
    edited = entry(Schedule("0 * * * *", payload={"v": 2}))
    deleted = asyncio.Event()

    async def fire(current: ScheduleEntry, tick: datetime.datetime) -> Stored:
        fired.append((clock.now(), dict(current.schedule.payload)))
        if len(fired) == 2:
            await catalog.updates.put(Update(edited.key, edited.encode()))
        if len(fired) == 4:
            await catalog.updates.put(Update(edited.key, None, "DEL"))
            deleted.set()
        return Stored(True, "stored")

    async def record(_: ScheduleFire) -> None:
        pass

    schedules = Schedules(catalog, fire, record, clock)
    await catalog.updates.put(None)  # the watch's "all that was there" marker
    await catalog.updates.put(Update(first.key, first.encode()))
    watching = asyncio.create_task(schedules.run())
    await asyncio.wait_for(deleted.wait(), timeout=5)
    await eventually(lambda: schedules.running == {}, timeout=5, message="the schedule stopped")
    watching.cancel()

    assert fired == [
        (datetime.datetime(2026, 6, 1, 10, 0, tzinfo=UTC), {"v": 1}),
        (datetime.datetime(2026, 6, 1, 10, 5, tzinfo=UTC), {"v": 1}),
        (datetime.datetime(2026, 6, 1, 11, 0, tzinfo=UTC), {"v": 2}),
        (datetime.datetime(2026, 6, 1, 12, 0, tzinfo=UTC), {"v": 2}),
    ]


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
