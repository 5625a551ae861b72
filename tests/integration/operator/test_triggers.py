"""The operator binding Triggers to Functions, under kopf, against kmock."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web
from hanshu_api import API_VERSION, FUNCTION_PLURAL, TRIGGER_PLURAL
from hanshu_operator.scheduler import SystemClock

from tests.support.helpers import eventually
from tests.support.operator_cluster import Cluster, run_operator
from tests.support.operator_objects import TRG, hello, trigger
from tests.support.servers import serving


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
        "exactly one source: http, schedule, objectStorage, stream (found: http, schedule)"
        in ready["message"]
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


class JustBeforeAMinute:
    """The real clock, shifted so that the first look at it is ``lead`` seconds before a
    minute boundary: a cron fire comes in seconds instead of up to a minute."""

    def __init__(self, lead: float) -> None:
        self.lead = datetime.timedelta(seconds=lead)
        self.offset: datetime.timedelta | None = None

    def __call__(self) -> datetime.datetime:
        real = datetime.datetime.now(datetime.UTC)
        if self.offset is None:
            boundary = real.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
            self.offset = boundary - self.lead - real
        return real + self.offset


async def test_schedule_fires_through_the_gateway_and_records_the_outcome(
    cluster: Cluster, monkeypatch
):
    """The operator's schedule daemon against a stand-in for the gateway's internal port,
    on the operator's clock (``OperatorState.clock``, the real one), shifted to just
    before a minute boundary: the daemon sleeps for real, a few seconds."""
    monkeypatch.setattr(SystemClock, "now", JustBeforeAMinute(lead=3.0))
    fired: list[dict[str, Any]] = []

    async def invoke(request: web.Request) -> web.Response:
        fired.append({"path": request.path, "event": await request.json()})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/_hanshu/invoke/{namespace}/{function}", invoke)
    async with serving(app) as port:
        monkeypatch.setenv("HANSHU_GATEWAY_INTERNAL_URL", f"http://127.0.0.1:{port}")
        async with run_operator(cluster):
            await cluster.create(API_VERSION, FUNCTION_PLURAL, hello())
            await cluster.create(
                API_VERSION,
                TRIGGER_PLURAL,
                trigger("every-minute", schedule={"cron": "* * * * *", "payload": {"n": 1}}),
            )
            await eventually(ready_with(cluster, "every-minute", "True"))
            assert cluster.condition(TRG, "every-minute", "Served")["reason"] == "Scheduled"

            def fired_and_recorded() -> dict[str, Any] | None:
                status = cluster.object(TRG, "every-minute").get("status") or {}
                return status if status.get("lastFireOutcome") else None

            status = await eventually(
                fired_and_recorded,
                timeout=15,
                interval=0.1,
                message="a fire at the next minute, recorded",
            )
    assert status["lastFireOutcome"] == "200"
    assert status["lastFireTime"].endswith(":00Z")
    assert status["nextFireTime"] > status["lastFireTime"]
    assert fired[0]["path"] == "/_hanshu/invoke/ns1/hello"
    assert fired[0]["event"]["payload"] == {"n": 1}
    assert fired[0]["event"]["triggerName"] == "every-minute"
