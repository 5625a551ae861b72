"""Routing and protections through the gateway, each with the status code a user sees."""

from __future__ import annotations

import asyncio
import datetime
import json

import aiohttp
import pytest
from hanshu_api.models import Schedule
from hanshu_api.schedules import ScheduleEntry
from hanshu_dispatcher.gateway_client import InternalGateway
from hanshu_dispatcher.schedules import Stored, fire_with_retries, gateway_fire

from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually
from tests.support.servers import free_port

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "keys"},
    "stringData": {"api-key": "old-key-123\nnew-key-456\n"},
}


@pytest.fixture
def platform(platform_factory):
    return platform_factory(
        [
            function("echo", scaling={"minReplicas": 1, "scaleToZeroGracePeriod": "60s"}),
            function(
                "slow",
                handler="handlers.slow",
                timeoutSeconds=1,
                scaling={"minReplicas": 1, "scaleToZeroGracePeriod": "60s"},
            ),
            SECRET,
            trigger("public", "echo", path="/api", stripPrefix=True, methods=["GET", "POST"]),
            trigger("exact-host", "echo", host="shop.example.com", path="/"),
            trigger("private", "echo", path="/private", auth={"apiKeySecretRef": {"name": "keys"}}),
            trigger("unkeyed", "echo", path="/unkeyed", auth={"apiKeySecretRef": {"name": "gone"}}),
            trigger(
                "limited", "echo", path="/limited", rateLimit={"requestsPerSecond": 1, "burst": 2}
            ),
            trigger(
                "browser",
                "echo",
                path="/cors",
                cors={
                    "allowOrigins": ["https://app.example.com"],
                    "allowMethods": ["GET", "PUT"],
                    "allowHeaders": ["Content-Type"],
                    "maxAgeSeconds": 600,
                    "exposeHeaders": ["X-Request-Id"],
                },
            ),
            trigger("timeouts", "slow", path="/slow"),
        ],
        "--max-body-bytes",
        "1024",
    )


async def test_routes_by_prefix_and_host_and_strips_the_prefix(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/api/orders/7?x=1") as reply:
            assert reply.status == 200
            body = await reply.json()
            assert reply.headers["X-Request-Id"]
        assert body["path"] == "/orders/7"
        assert body["query"] == {"x": "1"}
        assert body["headers"]["X-Forwarded-Prefix"] == "/api"
        assert body["headers"]["X-Forwarded-For"] == "127.0.0.1"
        async with http.get(f"{platform.url}/", headers={"Host": "shop.example.com"}) as reply:
            assert reply.status == 200
        async with http.get(f"{platform.url}/nothing-here") as reply:
            assert reply.status == 404
            assert (await reply.json())["errorType"] == "NoRoute"
        async with http.delete(f"{platform.url}/api/orders/7") as reply:
            assert reply.status == 405
            assert reply.headers["Allow"] == "GET, POST"


async def test_api_key(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/private") as reply:
            assert reply.status == 401
            assert (await reply.json())["errorType"] == "MissingApiKey"
        async with http.get(f"{platform.url}/private", headers={"X-API-Key": "guess"}) as reply:
            assert reply.status == 403
            assert (await reply.json())["errorType"] == "InvalidApiKey"
        for key in ("old-key-123", "new-key-456"):  # both keys work while rotating
            async with http.get(f"{platform.url}/private", headers={"X-API-Key": key}) as reply:
                assert reply.status == 200
                body = await reply.json()
            assert "X-API-Key" not in body["headers"]  # the key never reaches the function
        # No Secret among the manifests: nothing to verify against, as when the operator
        # has published nothing in a cluster.
        async with http.get(f"{platform.url}/unkeyed", headers={"X-API-Key": "guess"}) as reply:
            assert reply.status == 503
            assert (await reply.json())["errorType"] == "ApiKeysUnavailable"


async def test_rate_limit(platform):
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(4):
            async with http.get(f"{platform.url}/limited") as reply:
                statuses.append(reply.status)
                if reply.status == 429:
                    assert int(reply.headers["Retry-After"]) >= 1
                    assert (await reply.json())["errorType"] == "RateLimited"
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]


async def test_cors(platform):
    origin = {"Origin": "https://app.example.com"}
    async with aiohttp.ClientSession() as http:
        async with http.options(
            f"{platform.url}/cors", headers={**origin, "Access-Control-Request-Method": "PUT"}
        ) as reply:
            assert reply.status == 204
            assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert reply.headers["Access-Control-Allow-Methods"] == "GET, PUT"
            assert reply.headers["Access-Control-Max-Age"] == "600"
        async with http.options(
            f"{platform.url}/cors",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        ) as reply:
            assert reply.status == 403
        async with http.get(f"{platform.url}/cors", headers=origin) as reply:
            assert reply.status == 200
            assert reply.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert reply.headers["Access-Control-Expose-Headers"] == "X-Request-Id"


async def test_body_limit(platform):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{platform.url}/api/x", data=b"x" * 1025) as reply:
            assert reply.status == 413
            assert (await reply.json())["errorType"] == "RequestTooLarge"
        async with http.post(f"{platform.url}/api/x", data=b"x" * 1024) as reply:
            assert reply.status == 200


async def test_function_timeout_is_a_504(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/slow?seconds=3") as reply:
            assert reply.status == 504
            assert (await reply.json())["errorType"] == "FunctionTimeout"
        async with http.get(f"{platform.url}/slow?seconds=0") as reply:
            assert reply.status == 200


async def test_gateway_metrics(platform):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/api/m") as reply:
            assert reply.status == 200
        async with http.get(f"{platform.internal_url}/metrics") as reply:
            text = await reply.text()
    assert (
        'hanshu_gateway_requests_total{code="200",function="echo",namespace="default",'
        'trigger="public",version="LATEST"}'
    ) in text
    billed = (
        'hanshu_gateway_gb_seconds_total{function="echo",namespace="default",type="Sync",'
        'version="LATEST"}'
    )
    assert billed in text
    assert (
        'hanshu_gateway_invocations_total{code="200",function="echo",namespace="default",'
        'type="Sync",version="LATEST"}'
    ) in text
    assert "hanshu_gateway_request_duration_seconds_bucket" in text
    # Read from the gateway's own counts at scrape time: nothing in flight once replied.
    labels = '{function="echo",namespace="default",version="LATEST"}'
    assert f"hanshu_gateway_in_flight{labels} 0.0" in text
    assert f"hanshu_gateway_queued{labels} 0.0" in text


async def test_schedule_fires_through_the_gateway_and_wakes_the_function(platform_factory):
    """A dispatcher's fire of a tick: stored as an async invocation through the gateway's
    internal port, run on the Function woken from zero; the same tick fired again (by
    another dispatcher) is the same invocation, not a second one."""
    platform = platform_factory([function("cron", handler="handlers.invoked")])
    assert platform.ready_replicas("cron") == 0
    entry = ScheduleEntry("default", "nightly", "cron", Schedule("* * * * *", payload={"t": 1}))
    tick = datetime.datetime(2026, 6, 1, 18, 30, tzinfo=datetime.UTC)
    async with aiohttp.ClientSession() as http:
        fire = gateway_fire(InternalGateway(http, platform.internal_url))

        async def stored_once() -> Stored | None:
            # A 503 AsyncUnavailable while the gateway is still connecting to NATS is what
            # a dispatcher retries too.
            stored = await fire(entry, tick)
            return stored if stored.delivered else None

        stored = await eventually(stored_once, timeout=30, message="the fire was stored")
        again = await fire(entry, tick)
        assert not stored.duplicate
        assert again.invocation_id == stored.invocation_id
        assert again.duplicate

        async def finished() -> dict | None:
            url = f"{platform.url}/_hanshu/invocations/{stored.invocation_id}"
            async with http.get(url) as reply:
                record = await reply.json()
            return record if record.get("state") == "Succeeded" else None

        record = await eventually(finished, timeout=30, message="the fire ran")
        # The platform's own event, billed as one; nothing else may be stored this way.
        assert record["invocationType"] == "Event"
        refused = await InternalGateway(http, platform.internal_url).enqueue(
            "default", "cron", b"{}", invocation_type="Batch"
        )
        assert refused.status == 400
        assert refused.gateway_error == "InvalidInvocationType"
    event = json.loads(record["result"]["body"])["event"]
    assert event == {
        "triggerName": "nightly",
        "triggerTime": "2026-06-01T18:30:00Z",
        "source": "hanshu.schedule",
        "payload": {"t": 1},
    }
    # It had no replica: the handler's own reply above is what waking from zero gave. (A
    # replica count read now could already be back at zero on a loaded machine.)
    assert record["result"]["statusCode"] == 200


async def test_undeliverable_fire_is_reported():
    entry = ScheduleEntry("default", "nightly", "cron", Schedule("* * * * *"))
    tick = datetime.datetime(2026, 6, 1, 18, 30, tzinfo=datetime.UTC)
    attempts: list[datetime.datetime] = []
    async with aiohttp.ClientSession() as http:
        # Nothing listens: the gateway is down.
        fire = gateway_fire(InternalGateway(http, f"http://127.0.0.1:{free_port()}"))

        async def counted(entry: ScheduleEntry, tick: datetime.datetime) -> Stored:
            attempts.append(tick)
            return await fire(entry, tick)

        stored = await fire_with_retries(counted, entry, tick, delays=(0.01, 0.01))
    assert attempts == [tick, tick, tick]  # the first try and two retries
    assert stored.delivered is False
    assert "not delivered: ClientConnectorError" in stored.outcome


@pytest.mark.slow
async def test_a_client_that_trickles_its_headers_is_cut_off(platform_factory):
    platform = platform_factory(
        [function("echo", scaling={"minReplicas": 1}), trigger("web", "echo", path="/")],
        "--header-timeout",
        "0.5",
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", platform.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # ... and never the rest
    await writer.drain()
    # EOF once the gateway hangs up: well before its default timeout of 10 s.
    closed = await asyncio.wait_for(reader.read(), timeout=5)
    assert closed == b""
    writer.close()
    # A client that sends its head in time is served on the same server.
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/ok") as reply:
        assert reply.status == 200
