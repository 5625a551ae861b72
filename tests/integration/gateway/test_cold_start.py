"""Scale from zero and back: the heart of the product, with real processes."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.dev_platform import function, trigger
from tests.support.helpers import eventually


@pytest.mark.slow
async def test_first_request_wakes_the_function_and_idle_returns_it_to_zero(platform_factory):
    platform = platform_factory([function("hello"), trigger("web", "hello", path="/")])
    assert platform.ready_replicas("hello") == 0
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{platform.url}/greet?name=Ada") as reply:
            assert reply.status == 200
            assert reply.headers["X-Hanshu-Cold-Start"] == "true"
            body = await reply.json()
        assert body["query"] == {"name": "Ada"}
        assert platform.ready_replicas("hello") == 1
        async with http.get(f"{platform.url}/again") as reply:  # warm now
            assert reply.status == 200
            assert "X-Hanshu-Cold-Start" not in reply.headers
        await eventually(
            lambda: platform.ready_replicas("hello") == 0,
            timeout=15,
            message="scale to zero after the 2s grace period",
        )
        async with http.get(f"{platform.url}/after") as reply:
            assert reply.status == 200
            assert reply.headers["X-Hanshu-Cold-Start"] == "true"


async def test_two_hundred_concurrent_requests_at_a_cold_function(platform_factory):
    platform = platform_factory(
        [
            function(
                "burst",
                handler="handlers.slow",
                concurrency=10,
                scaling={
                    "targetConcurrency": 10,
                    "maxReplicas": 4,
                    "scaleToZeroGracePeriod": "30s",
                },
            ),
            trigger("web", "burst", path="/"),
        ]
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def call(index: int) -> tuple[int, str | None]:
            async with http.get(f"{platform.url}/{index}?seconds=0.05") as reply:
                await reply.read()
                return reply.status, reply.headers.get("Retry-After")

        results = await asyncio.gather(*(call(i) for i in range(200)))
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0
    assert all(retry for status, retry in results if status == 429)


async def test_queue_full_is_an_explicit_429(platform_factory):
    platform = platform_factory(
        [
            function(
                "narrow",
                handler="handlers.slow",
                concurrency=1,
                scaling={"maxReplicas": 1, "targetConcurrency": 1},
            ),
            trigger("web", "narrow", path="/"),
        ],
        "--queue-limit",
        "3",
    )
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def call() -> int:
            async with http.get(f"{platform.url}/?seconds=1") as reply:
                await reply.read()
                return reply.status

        statuses = Counter(await asyncio.gather(*(call() for _ in range(10))))
        async with http.get(f"{platform.internal_url}/metrics") as reply:
            page = await reply.text()
    assert statuses[429] >= 5, statuses
    assert set(statuses) <= {200, 429}
    # What HanshuFunctionQueueFull and HanshuGatewayQueueNearLimit read: every refusal
    # counted for the Function, and the limit beside hanshu_gateway_queued.
    samples = {
        (sample.name, sample.labels.get("function")): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }
    assert samples[("hanshu_gateway_queue_full_refusals_total", "narrow")] == statuses[429]
    assert samples[("hanshu_gateway_queue_limit", None)] == 3


async def test_function_that_never_becomes_ready_is_a_503(platform_factory):
    platform = platform_factory(
        [
            function("stuck", initializer="handlers.never_ready"),  # initializes for a minute
            trigger("web", "stuck", path="/"),
        ],
        "--cold-start-timeout",
        "2",
    )
    async with aiohttp.ClientSession() as http, http.get(f"{platform.url}/") as reply:
        assert reply.status == 503
        body = await reply.json()
    assert body["errorType"] == "FunctionNotReady"
    assert "did not become ready within 2s" in body["errorMessage"]


async def test_function_whose_code_cannot_start_is_a_503_at_once_naming_why(platform_factory):
    platform = platform_factory(
        [
            function("broken", initializer="handlers.never"),  # the initializer does not exist
            trigger("web", "broken", path="/"),
        ],
        "--cold-start-timeout",
        "30",
    )
    async with aiohttp.ClientSession() as http:
        started = asyncio.get_running_loop().time()
        async with http.get(f"{platform.url}/") as reply:
            assert reply.status == 503
            body = await reply.json()
        waited = asyncio.get_running_loop().time() - started
    assert body["errorType"] == "RuntimeStartupFailed"
    assert "never" in body["errorMessage"]  # dev mode names the missing initializer
    assert waited < 30  # refused on the replica's fault, not after the cold-start timeout


async def test_scale_down_under_load_fails_no_request(platform_factory):
    platform = platform_factory(
        [
            function(
                "steady",
                handler="handlers.slow",
                concurrency=4,
                scaling={"targetConcurrency": 2, "maxReplicas": 6, "scaleToZeroGracePeriod": "30s"},
            ),
            trigger("web", "steady", path="/"),
        ]
    )
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def client(stop: asyncio.Event) -> None:
            while not stop.is_set():
                async with http.get(f"{platform.url}/?seconds=0.1") as reply:
                    await reply.read()
                    statuses[reply.status] += 1

        burst_stop, steady_stop = asyncio.Event(), asyncio.Event()
        burst = [asyncio.create_task(client(burst_stop)) for _ in range(12)]
        steady = [asyncio.create_task(client(steady_stop)) for _ in range(2)]
        peak = await eventually(
            lambda: platform.ready_replicas("steady") >= 3 and platform.ready_replicas("steady"),
            timeout=20,
            message="scaled out by the burst",
        )
        burst_stop.set()
        await asyncio.gather(*burst)
        await eventually(
            lambda: platform.ready_replicas("steady") < peak,
            timeout=30,
            message="scaled in while the steady load continues",
        )
        steady_stop.set()
        await asyncio.gather(*steady)
    assert set(statuses) == {200}, statuses


async def test_a_replica_that_dies_mid_request_is_a_502_and_is_replaced(platform_factory, tmp_path):
    platform = platform_factory(
        [
            function(
                "fragile",
                handler="handlers.crash",
                scaling={"minReplicas": 1, "scaleToZeroGracePeriod": "60s"},
            ),
            trigger("web", "fragile", path="/"),
        ]
    )
    async with aiohttp.ClientSession() as http:
        # The first call leaves a kept-alive connection, so the crash comes on a reused one.
        async with http.get(f"{platform.url}/ok") as reply:
            assert reply.status == 200
        runs = tmp_path / "crash-runs"
        async with http.get(f"{platform.url}/crash", params={"record": str(runs)}) as reply:
            assert reply.status == 502
            assert (await reply.json())["errorType"] == "ReplicaFailed"
        # Reported, not run again on a fresh connection or another replica.
        assert runs.read_text() == "ran\n"

        async def served() -> bool:
            async with http.get(f"{platform.url}/ok") as reply:
                return reply.status == 200 and await reply.text() == "alive"

        await eventually(served, timeout=20, message="a replacement replica serving")
