"""Schedule Triggers on real parts: dev mode publishes the schedule into the catalog bucket
of a real nats-server, and two dispatcher processes fire it, each tick once, through the
gateway's async path. The dispatchers tick every second (a test-only tick source: cron
counts minutes); everything else is production code."""

from __future__ import annotations

import datetime
import textwrap
from collections import defaultdict
from typing import Any

import nats
from hanshu_api.jetstream import ensure_schedule_buckets
from hanshu_api.schedules import ScheduleFire, entry_key, parse_tick, tick_text

from tests.support.dev_platform import function
from tests.support.helpers import eventually

EVERY_SECOND = "tests.support.every_second_dispatcher"

TICK_HANDLERS = textwrap.dedent("""
    import json
    import os
    import time


    def record(event, context):
        # One line per run: the test counts how often each tick really ran.
        with open(os.environ["RUNS_FILE"], "a") as runs:
            runs.write(json.dumps({"tick": event["triggerTime"], "id": context.invocation_id,
                                   "payload": event["payload"], "at": time.time()}) + "\\n")
        return "ok"
""")


def schedule_trigger(name: str, function_name: str, **schedule: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": function_name}, "schedule": schedule},
    }


def ticks_fired(runs: list[dict[str, Any]]) -> dict[datetime.datetime, set[str]]:
    """Each tick the handler saw, and the invocations that carried it."""
    fired: dict[datetime.datetime, set[str]] = defaultdict(set)
    for run in runs:
        fired[parse_tick(run["tick"])].add(run["id"])
    return fired


async def test_two_dispatchers_fire_each_tick_once_and_a_killed_one_loses_none(
    async_platform,
):
    platform = async_platform(
        [
            function(
                "ticker",
                "ticks.record",
                TICK_HANDLERS,
                scaling={"minReplicas": 1, "targetConcurrency": 5},
            ),
            schedule_trigger("every-tick", "ticker", cron="* * * * *", payload={"n": 1}),
        ],
        dispatchers=0,
    )
    doomed = platform.start_dispatcher(EVERY_SECOND)
    platform.start_dispatcher(EVERY_SECOND)

    def ticks_from_first(count: int) -> dict[datetime.datetime, set[str]] | None:
        fired = ticks_fired(platform.runs())
        return fired if len(fired) >= count else None

    before = await eventually(
        lambda: ticks_from_first(10), timeout=60, interval=0.1, message="ten ticks fired"
    )
    doomed.kill()  # SIGKILL: no goodbye, whatever it was doing
    doomed.wait(timeout=10)
    first = min(before)
    expected = [first + datetime.timedelta(seconds=n) for n in range(20)]

    def all_twenty() -> dict[datetime.datetime, set[str]] | None:
        fired = ticks_fired(platform.runs())
        return fired if all(tick in fired for tick in expected) else None

    fired = await eventually(
        all_twenty,
        timeout=60,
        interval=0.1,
        message="twenty consecutive ticks fired, the dispatcher killed after the tenth",
    )
    # Each tick is one invocation, however many dispatchers fired it (a run seen twice
    # would be the same invocation redelivered, never a second fire).
    assert {tick_text(t): len(fired[t]) for t in expected} == {tick_text(t): 1 for t in expected}
    assert all(run["payload"] == {"n": 1} for run in platform.runs())

    # The latest fire is recorded for the operator, in the fires bucket.
    client = await nats.connect(platform.nats.url)
    try:
        buckets = await ensure_schedule_buckets(client)
        latest = ScheduleFire.parse(
            (await buckets.fires.get(entry_key("default", "every-tick"))).value or b""
        )
    finally:
        await client.close()
    assert latest.delivered
    assert latest.tick >= expected[-1]
    assert latest.outcome == f"stored as invocation {latest.invocation_id}"
