"""examples/scheduled in a real runtime process, invoked with exactly what a fire sends:
the event is built by the dispatchers' own function (hanshu_api.schedules), so the example
and the schedules cannot drift apart unnoticed."""

from __future__ import annotations

import datetime
import json

import aiohttp
import yaml
from hanshu_api.models import parse_trigger_spec
from hanshu_api.schedules import schedule_event

from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "scheduled"


def example_trigger_schedule():
    documents = list(yaml.safe_load_all((EXAMPLE / "function.yaml").read_text()))
    trigger = next(d for d in documents if d and d["kind"] == "Trigger")
    schedule = parse_trigger_spec(trigger["spec"], "default").schedule
    assert schedule is not None
    return trigger["metadata"]["name"], schedule


async def test_the_scheduled_example_greets_the_team_of_its_payload(
    runtime_factory, http: aiohttp.ClientSession
):
    name, schedule = example_trigger_schedule()
    fire_time = datetime.datetime(2026, 6, 1, 18, 30, tzinfo=datetime.UTC)
    event = schedule_event(name, fire_time, schedule)

    runtime = runtime_factory(EXAMPLE, "report.handler")
    # The gateway's /_hanshu/invoke passes the fire's body to this path unchanged.
    async with http.post(
        f"{runtime.url}/_hanshu/invoke",
        data=json.dumps(event),
        headers={"Content-Type": "application/json"},
    ) as reply:
        assert reply.status == 200, await reply.text()
        result = await reply.json()

    assert schedule.payload == {"team": "payments"}
    assert result["message"] == "nightly report for payments"
    assert result["triggerTime"] == "2026-06-01T18:30:00Z"
    runtime.stop()
    assert "nightly report for payments" in runtime.logs()
