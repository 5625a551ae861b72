"""Async calls and batch jobs through an alias record the version they ran on (issue 28):
dev mode serving published versions as local replicas of their own, a real nats-server and
a dispatcher process."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import aiohttp
import nats
from hanshu_api.versions import (
    FUNCTION_VERSION_KIND,
    VERSION_HEADER,
    spec_digest,
    version_object_name,
)

from tests.support.async_platform import final_status, get_json
from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually

VERSIONED = textwrap.dedent("""
    def which(event, context):
        return {"version": context.function_version}
""")


def version_document(name: str, number: int, template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": FUNCTION_VERSION_KIND,
        "metadata": {"name": version_object_name(name, number)},
        "spec": {
            "function": name,
            "version": number,
            "digest": spec_digest(template),
            "template": template,
        },
    }


async def test_async_calls_on_an_alias_record_the_version_they_ran_on(async_platform) -> None:
    shop = function("shop", "handlers.which", VERSIONED)
    template = dict(shop["spec"])
    shop["spec"]["aliases"] = [
        {"name": "live", "version": 1, "additionalVersion": 2, "additionalWeight": 50}
    ]
    on_alias = trigger("live", "shop", path="/live")
    on_alias["spec"]["functionRef"]["alias"] = "live"
    platform = async_platform(
        [
            shop,
            version_document("shop", 1, template),
            version_document("shop", 2, template),
            on_alias,
        ]
    )
    async with aiohttp.ClientSession() as http:
        # Synchronously first: each version answers as itself, through its own replicas.
        seen: set[str] = set()

        async def both_versions_answered() -> bool:
            async with http.get(f"{platform.url}/live") as reply:
                if reply.status == 200:
                    body = await reply.json()
                    assert reply.headers[VERSION_HEADER] == body["version"]
                    seen.add(body["version"])
            return seen == {"1", "2"}

        await eventually(both_versions_answered, timeout=60, message="both versions answered")

        ids = []
        for n in range(20):
            async with http.post(
                f"{platform.url}/live",
                json={"n": n},
                headers={"X-Hanshu-Invocation-Type": "Async"},
            ) as reply:
                assert reply.status == 202, await reply.text()
                assert reply.headers[VERSION_HEADER] in ("1", "2")
                ids.append((reply.headers["X-Hanshu-Invocation-Id"], reply.headers[VERSION_HEADER]))
        versions = set()
        for invocation_id, picked in ids:
            record = await final_status(platform, invocation_id)
            assert record["state"] == "Succeeded", record
            # Decided at enqueue: the record names the version, and it is the one that ran.
            assert record["version"] == int(picked)
            assert record["function"] == "shop"
            assert json.loads(record["result"]["body"]) == {"version": picked}
            versions.add(picked)
        assert versions == {"1", "2"}

        # A batch job through the alias: one version for the whole job, named in its status.
        async with http.post(
            f"{platform.url}/live",
            data=b'{"a": 1}\n{"a": 2}\n',
            headers={"X-Hanshu-Invocation-Type": "Batch"},
        ) as reply:
            assert reply.status == 202, await reply.text()
            picked = reply.headers[VERSION_HEADER]
            job = await reply.json()

        def job_done() -> dict[str, Any] | None:
            status, document = get_json(f"{platform.url}{job['status']}")
            assert status == 200, document
            return document if document.get("succeeded") == 2 else None

        document = await eventually(job_done, timeout=30, message="the batch job finished")
        assert document["version"] == int(picked)


async def test_platform_callers_name_a_version_or_an_alias(async_platform) -> None:
    """Schedules, streams and destinations call through the internal port: ``?version=N``
    or ``?alias=NAME`` beside the Function, run and recorded there."""
    shop = function("shop", "handlers.which", VERSIONED)
    template = dict(shop["spec"])
    shop["spec"]["aliases"] = [{"name": "live", "version": 2}]
    platform = async_platform(
        [shop, version_document("shop", 1, template), version_document("shop", 2, template)]
    )
    internal = f"{platform.internal_url}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{internal}/_hanshu/invoke/default/shop?version=1", json={}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json(), r.headers[VERSION_HEADER]) == ({"version": "1"}, "1")
        async with http.post(f"{internal}/_hanshu/enqueue/default/shop?alias=live", json={}) as r:
            assert r.status == 202, await r.text()
            assert r.headers[VERSION_HEADER] == "2"
            invocation_id = (await r.json())["invocationId"]
        record = await final_status(platform, invocation_id)
        assert (record["function"], record["version"]) == ("shop", 2)
        assert json.loads(record["result"]["body"]) == {"version": "2"}
        # Refused by name: a version not published, a bad one, both at once.
        async with http.post(f"{internal}/_hanshu/enqueue/default/shop?version=7", json={}) as r:
            assert r.status == 404
            assert (await r.json())["errorType"] == "VersionNotFound"
        async with http.post(f"{internal}/_hanshu/invoke/default/shop?version=x", json={}) as r:
            assert r.status == 400
            assert "version must be a version number" in (await r.json())["errorMessage"]
        async with http.post(
            f"{internal}/_hanshu/invoke/default/shop?version=1&alias=live", json={}
        ) as r:
            assert r.status == 400


TICK_RECORDER = textwrap.dedent("""
    import json
    import os


    def record(event, context):
        with open(os.environ["VERSION_RUNS"], "a") as runs:
            runs.write(json.dumps({"version": context.function_version,
                                   "id": context.invocation_id}) + "\\n")
        return "ok"
""")


async def test_a_schedule_on_an_alias_fires_on_its_version(async_platform, tmp_path) -> None:
    runs = tmp_path / "version-runs.ndjson"
    ticker = function(
        "ticker",
        "ticks.record",
        TICK_RECORDER,
        env=[{"name": "VERSION_RUNS", "value": str(runs)}],
        scaling={"minReplicas": 1},
    )
    template = {**ticker["spec"], "env": list(ticker["spec"]["env"])}
    ticker["spec"]["aliases"] = [{"name": "live", "version": 2}]
    schedule = {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": "every-tick"},
        "spec": {
            "functionRef": {"name": "ticker", "alias": "live"},
            "schedule": {"cron": "* * * * *"},
        },
    }
    platform = async_platform(
        [
            ticker,
            version_document("ticker", 1, template),
            version_document("ticker", 2, template),
            schedule,
        ],
        dispatchers=0,
    )
    platform.start_dispatcher("tests.support.every_second_dispatcher")

    def fired() -> list[dict[str, Any]]:
        lines = runs.read_text().splitlines() if runs.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    ran = await eventually(lambda: len(fired()) >= 3 and fired(), timeout=60, interval=0.1)
    # Each tick ran on the alias's version, and its record says so.
    assert {run["version"] for run in ran} == {"2"}
    record = await final_status(platform, ran[0]["id"])
    assert (record["function"], record["version"]) == ("ticker", 2)


STREAM_RECORDER = textwrap.dedent("""
    import json
    import os


    def consume(event, context):
        with open(os.environ["VERSION_RUNS"], "a") as runs:
            runs.write(json.dumps({"version": context.function_version,
                                   "records": len(event["records"])}) + "\\n")
        return {"batchItemFailures": []}
""")


async def test_stream_records_on_an_alias_run_on_its_version(async_platform, tmp_path) -> None:
    runs = tmp_path / "version-runs.ndjson"
    consumer = function(
        "consumer",
        "stream.consume",
        STREAM_RECORDER,
        env=[{"name": "VERSION_RUNS", "value": str(runs)}],
    )
    template = {**consumer["spec"], "env": list(consumer["spec"]["env"])}
    consumer["spec"]["aliases"] = [{"name": "live", "version": 2}]
    trigger_on_alias = {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": "orders"},
        "spec": {
            "functionRef": {"name": "consumer", "alias": "live"},
            "stream": {"nats": {"stream": "ORDERS", "subject": "orders.created"}},
        },
    }
    platform = async_platform(
        [
            consumer,
            version_document("consumer", 1, template),
            version_document("consumer", 2, template),
            trigger_on_alias,
        ],
        dispatchers=1,
    )
    client = await nats.connect(platform.nats.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        for n in range(5):
            await js.publish("orders.created", json.dumps({"n": n}).encode())
    finally:
        await client.close()

    def ran() -> list[dict[str, Any]]:
        lines = runs.read_text().splitlines() if runs.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    await eventually(lambda: sum(r["records"] for r in ran()) >= 5, timeout=30)
    assert {r["version"] for r in ran()} == {"2"}
