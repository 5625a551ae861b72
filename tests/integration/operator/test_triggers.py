"""The operator binding Triggers to Functions, under kopf, against kmock."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_api.jetstream import ensure_schedule_buckets
from hanshu_api.models import Schedule
from hanshu_api.schedules import ScheduleEntry, ScheduleFire, entry_key, tick_text
from hanshu_cli.local_nats import LocalNats
from nats.js.errors import KeyNotFoundError

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import TRG, hello, trigger


def ready_with(cluster: Cluster, name: str, status: str):
    def probe() -> dict[str, Any] | None:
        ready = cluster.condition(TRG, name)
        return ready if ready and ready["status"] == status else None

    return probe


async def test_http_trigger_waits_for_its_function_then_reports_its_url(operator: Cluster):
    await operator.create(API_VERSION, TRIGGER_PLURAL, trigger("web", http={"path": "/hello"}))
    ready = await eventually(ready_with(operator, "web", "False"), message="Ready=False")
    assert ready["reason"] == "FunctionNotFound"
    assert "the Function 'hello' does not exist in namespace 'ns1'" in ready["message"]

    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    ready = await eventually(
        ready_with(operator, "web", "True"),
        timeout=20,
        message="Ready=True once the Function exists",
    )
    status = operator.object(TRG, "web")["status"]
    assert status["url"] == "http://gateway.example/hello"
    assert status["type"] == "http"
    assert operator.condition(TRG, "web", "FunctionBound")["reason"] == "Bound"


async def test_trigger_with_a_host_reports_the_host_url(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create(
        API_VERSION, TRIGGER_PLURAL, trigger("api", http={"host": "api.example.com", "path": "/v1"})
    )
    await eventually(ready_with(operator, "api", "True"))
    assert operator.object(TRG, "api")["status"]["url"] == "http://api.example.com/v1"


async def test_schedule_trigger_reports_the_next_fire_time(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create(
        API_VERSION,
        TRIGGER_PLURAL,
        trigger("nightly", schedule={"cron": "30 2 * * *", "timeZone": "Asia/Shanghai"}),
    )

    def scheduled() -> str | None:
        return (operator.object(TRG, "nightly").get("status") or {}).get("nextFireTime")

    next_fire = await eventually(scheduled, message="nextFireTime")
    assert next_fire.endswith("T18:30:00Z")  # 02:30 in Shanghai is 18:30 UTC the day before
    assert operator.object(TRG, "nightly")["status"]["type"] == "schedule"


async def test_invalid_trigger_says_every_problem(operator: Cluster):
    await operator.create(
        API_VERSION,
        TRIGGER_PLURAL,
        trigger(
            "bad", http={"path": "/x"}, schedule={"cron": "61 * * * *", "timeZone": "Mars/Base"}
        ),
    )
    ready = await eventually(ready_with(operator, "bad", "False"))
    assert ready["reason"] == "InvalidSpec"
    assert (
        "exactly one source: http, schedule, objectStorage, stream, kubernetes "
        "(found: http, schedule)" in ready["message"]
    )
    assert "minute field: '61' is outside 0-59" in ready["message"]
    assert "'Mars/Base' is not an IANA time zone" in ready["message"]


async def test_deleting_a_function_unbinds_its_triggers(operator: Cluster):
    await operator.create(API_VERSION, FUNCTION_PLURAL, hello())
    await operator.create(API_VERSION, TRIGGER_PLURAL, trigger("web", http={"path": "/"}))
    await eventually(ready_with(operator, "web", "True"))
    await operator.delete(API_VERSION, FUNCTION_PLURAL, "hello")
    ready = await eventually(ready_with(operator, "web", "False"), message="unbound")
    assert ready["reason"] == "FunctionNotFound"
    assert "the Function 'hello'" in ready["message"]


@pytest.fixture
def local_nats(tmp_path: Path) -> Iterator[LocalNats]:
    server = LocalNats(store_dir=str(tmp_path / "nats")).start()
    yield server
    server.close()


async def test_a_schedule_is_published_for_the_dispatchers_and_its_fires_become_its_status(
    cluster: Cluster, local_nats: LocalNats, monkeypatch
):
    """The operator fires nothing itself: it puts the schedule in the catalog bucket the
    dispatchers watch, and writes what they record in the fires bucket into the Trigger
    status (the dispatchers have no Kubernetes access)."""
    monkeypatch.setenv("HANSHU_NATS_URL", local_nats.url)
    client = await nats.connect(local_nats.url)
    buckets = await ensure_schedule_buckets(client)
    key = entry_key("ns1", "every-minute")

    async def published() -> ScheduleEntry | None:
        try:
            return ScheduleEntry.parse((await buckets.catalog.get(key)).value or b"")
        except KeyNotFoundError:
            return None

    try:
        async with run_operator(cluster):
            await cluster.create(API_VERSION, FUNCTION_PLURAL, hello())
            await cluster.create(
                API_VERSION,
                TRIGGER_PLURAL,
                trigger("every-minute", schedule={"cron": "* * * * *", "payload": {"n": 1}}),
            )
            await eventually(ready_with(cluster, "every-minute", "True"))
            assert cluster.condition(TRG, "every-minute", "Served")["reason"] == "Scheduled"
            entry = await eventually(published, message="the schedule in the catalog")
            assert entry == ScheduleEntry(
                "ns1", "every-minute", "hello", Schedule("* * * * *", "UTC", {"n": 1})
            )

            # A dispatcher stored a tick's fire.
            tick = datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)
            fire = ScheduleFire(
                "ns1", "every-minute", tick, time.time(), True, "stored as invocation abc", "abc"
            )
            await buckets.fires.put(key, fire.encode())

            def recorded(outcome: str) -> Any:
                def probe() -> dict[str, Any] | None:
                    status = cluster.object(TRG, "every-minute").get("status") or {}
                    return status if status.get("lastFireOutcome") == outcome else None

                return probe

            status = await eventually(
                recorded("stored as invocation abc"), message="the fire in the status"
            )
            assert status["lastFireTime"] == tick_text(tick)
            assert status["nextFireTime"] > status["lastFireTime"]

            # The next tick could not be stored: the status says why, and so does an Event.
            later = tick + datetime.timedelta(minutes=1)
            failed = ScheduleFire(
                "ns1", "every-minute", later, time.time(), False, "503: the event store is down"
            )
            await buckets.fires.put(key, failed.encode())
            await eventually(recorded("503: the event store is down"), message="the failure")
            warning = (await eventually(lambda: cluster.events("FireFailed")))[0]
            assert "503: the event store is down" in warning["message"]

            # An edit reaches the dispatchers; a deletion stops the schedule.
            await cluster.patch(
                API_VERSION,
                TRIGGER_PLURAL,
                "every-minute",
                {"metadata": {"generation": 2}, "spec": {"schedule": {"cron": "*/5 * * * *"}}},
            )

            async def edited() -> ScheduleEntry | None:
                found = await published()
                return found if found and found.schedule.cron == "*/5 * * * *" else None

            await eventually(edited, message="the edited schedule in the catalog")
            await cluster.delete(API_VERSION, TRIGGER_PLURAL, "every-minute")

            async def withdrawn() -> bool:
                return await published() is None

            await eventually(withdrawn, message="the schedule withdrawn")
    finally:
        await client.close()


async def test_a_schedule_that_is_gone_or_invalid_is_withdrawn_and_a_fixed_one_returns(
    cluster: Cluster, local_nats: LocalNats, monkeypatch
):
    """An entry whose Trigger was deleted while the operator was down is withdrawn when it
    starts; an edit that makes the spec invalid stops the schedule, fixing it resumes it."""
    monkeypatch.setenv("HANSHU_NATS_URL", local_nats.url)
    client = await nats.connect(local_nats.url)
    buckets = await ensure_schedule_buckets(client)
    stale = ScheduleEntry("ns1", "deleted-meanwhile", "hello", Schedule("* * * * *"))
    await buckets.catalog.put(stale.key, stale.encode())

    def in_catalog(name: str, present: bool) -> Any:
        async def probe() -> bool:
            try:
                await buckets.catalog.get(entry_key("ns1", name))
            except KeyNotFoundError:
                return not present
            return present

        return probe

    try:
        async with run_operator(cluster):
            await eventually(in_catalog("deleted-meanwhile", False), message="stale withdrawn")
            await cluster.create(API_VERSION, FUNCTION_PLURAL, hello())
            await cluster.create(
                API_VERSION, TRIGGER_PLURAL, trigger("nightly", schedule={"cron": "0 2 * * *"})
            )
            await eventually(in_catalog("nightly", True), message="published")
            await cluster.patch(
                API_VERSION,
                TRIGGER_PLURAL,
                "nightly",
                {"metadata": {"generation": 2}, "spec": {"schedule": {"cron": "61 * * * *"}}},
            )
            await eventually(in_catalog("nightly", False), message="an invalid spec withdrawn")
            await cluster.patch(
                API_VERSION,
                TRIGGER_PLURAL,
                "nightly",
                {"metadata": {"generation": 3}, "spec": {"schedule": {"cron": "0 3 * * *"}}},
            )
            await eventually(in_catalog("nightly", True), message="the fixed one published")
    finally:
        await client.close()
