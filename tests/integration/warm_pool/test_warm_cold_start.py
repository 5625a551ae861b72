"""Cold starts through the local warm pool, with real parts: the dev stack's gateway and
autoscaler, the Function's own replicas and the pool's runtime processes. A cold request
for an eligible Function is served by a specialized pool process while the Function's own
replica starts as always; everything that goes wrong on the pool's side ends on the
ordinary path, never in a failed request."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.helpers import eventually
from tests.support.kube_gateway import function_version
from tests.support.warm_stack import warm_stack

CODE = textwrap.dedent("""
    import os

    if "hanshu-pool-" in os.environ["HANSHU_CODE_DIR"] and os.environ.get("FAIL_IN_POOL"):
        raise RuntimeError("this code refuses to start in a warm pool process")


    def handler(event, context):
        return {"pid": os.getpid(), "function": context.function_name,
                "greeting": os.environ.get("GREETING"),
                "token": os.environ.get("HANSHU_POOL_TOKEN")}
""")


def function(name: str, *, env: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "handler": "index.handler",
        "code": {"inline": {"index.py": CODE}},
        "env": env or [{"name": "GREETING", "value": f"hello from {name}"}],
        # Long enough that the Function's own replica is still there when the test looks.
        "scaling": {"scaleToZeroGracePeriod": "30s", "targetConcurrency": 10},
    }
    body.update(spec)
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": body,
    }


def trigger(name: str, function_name: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "hanshu.io/v1alpha1",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"functionRef": {"name": function_name}, "http": {"path": path}},
    }


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any], str | None]:
    async with http.get(url) as reply:
        body = await reply.json() if reply.status == 200 else {}
        return reply.status, body, reply.headers.get("X-Hanshu-Cold-Start-Path")


async def test_a_cold_request_is_served_by_a_pool_process_while_its_own_replica_starts(
    tmp_path: Path,
) -> None:
    documents = [function("hello"), trigger("web", "hello", "/")]
    async with warm_stack(tmp_path, documents) as platform:
        pool = platform.pool
        waiting = pool.available_pids("default")
        assert len(waiting) == 2
        async with aiohttp.ClientSession() as http:
            status, body, path = await get(http, f"{platform.url}/hi")
        assert (status, path) == (200, "pool")
        # A process of the pool, become this Function, with its env and not the pool's token.
        assert body["pid"] in waiting
        assert body == {
            "pid": body["pid"],
            "function": "hello",
            "greeting": "hello from hello",
            "token": None,
        }
        # The Function's own replica started in parallel, as without a pool; once it is
        # ready the pool process leaves for good.

        async def own_ready() -> bool:
            return (await platform.functions())["hello"]["readyReplicas"] == 1

        await eventually(own_ready, message="the Function's own replica ready")
        await eventually(lambda: gone(body["pid"]), message="the pool process retired")
        assert (await platform.functions())["hello"]["warmPoolEndpoints"] == []
        # The pool is refilled: two processes wait again, the used one not among them.
        refilled = await eventually(
            lambda: len(pool.available_pids("default")) == 2 and pool.available_pids("default"),
            message="the pool refilled",
        )
        assert body["pid"] not in refilled
        async with aiohttp.ClientSession() as http:
            status, warm, path = await get(http, f"{platform.url}/again")
        assert (status, path) == (200, None)  # warm: its own replica
        assert warm["pid"] != body["pid"]
        metrics = await platform.metrics()
        assert (
            'hanshu_gateway_specializations_total{function="hello",namespace="default",'
            'outcome="specialized"} 1.0' in metrics
        )
        assert (
            'hanshu_gateway_cold_start_seconds_count{function="hello",namespace="default",'
            'path="pool",version="LATEST"} 1.0' in metrics
        )


async def test_two_functions_never_share_a_pool_process(tmp_path: Path) -> None:
    documents = [
        function("first"),
        function("second"),
        trigger("one", "first", "/one"),
        trigger("two", "second", "/two"),
    ]
    async with warm_stack(tmp_path, documents) as platform:
        async with aiohttp.ClientSession() as http:
            (s1, one, p1), (s2, two, p2) = await asyncio.gather(
                get(http, f"{platform.url}/one"), get(http, f"{platform.url}/two")
            )
        assert (s1, p1, one["function"]) == (200, "pool", "first")
        assert (s2, p2, two["function"]) == (200, "pool", "second")
        assert one["pid"] != two["pid"]
        serving = set(platform.pool.serving().values())
        # Each specialized process serves its one Function (until it retires).
        assert serving <= {("default", "first"), ("default", "second")}
        await eventually(lambda: gone(one["pid"]) and gone(two["pid"]), message="both retired")
        refilled = await eventually(
            lambda: (
                len(platform.pool.available_pids("default")) == 2
                and platform.pool.available_pids("default")
            )
        )
        assert not {one["pid"], two["pid"]} & set(refilled)


async def test_a_function_with_a_secret_in_its_env_takes_the_ordinary_path(
    tmp_path: Path,
) -> None:
    secret_env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    documents = [function("secretive", env=secret_env), trigger("web", "secretive", "/")]
    async with warm_stack(tmp_path, documents) as platform:
        waiting = platform.pool.available_pids("default")
        async with aiohttp.ClientSession() as http:
            status, body, path = await get(http, f"{platform.url}/")
        assert (status, path) == (200, "pod_start")
        assert body["pid"] not in waiting
        assert platform.pool.available_pids("default") == waiting  # the pool untouched
        assert (
            'hanshu_gateway_specializations_total{function="secretive",namespace="default",'
            'outcome="unavailable"} 1.0' in await platform.metrics()
        )


async def test_a_pool_process_killed_before_it_is_used_is_passed_over(tmp_path: Path) -> None:
    documents = [function("hello"), trigger("web", "hello", "/")]
    async with warm_stack(tmp_path, documents) as platform:
        first, second = platform.pool.available_pids("default")
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: gone(first), message="the pool process dead")
        async with aiohttp.ClientSession() as http:
            status, body, path = await get(http, f"{platform.url}/")
        assert (status, path, body["pid"]) == (200, "pool", second)


async def test_code_that_fails_in_the_pool_is_served_by_the_functions_own_replica(
    tmp_path: Path,
) -> None:
    env = [{"name": "FAIL_IN_POOL", "value": "yes"}]
    documents = [function("picky", env=env), trigger("web", "picky", "/")]
    async with warm_stack(tmp_path, documents) as platform:
        waiting = platform.pool.available_pids("default")
        async with aiohttp.ClientSession() as http:
            status, body, path = await get(http, f"{platform.url}/")
        assert (status, path) == (200, "pod_start")
        assert body["pid"] not in waiting
        # Both pool processes failed to specialize: stopped, never back in the pool, and
        # the pool refilled with new ones.
        await eventually(lambda: all(gone(pid) for pid in waiting), message="discarded")
        refilled = await eventually(
            lambda: (
                len(platform.pool.available_pids("default")) == 2
                and platform.pool.available_pids("default")
            )
        )
        assert not set(waiting) & set(refilled)


@pytest.mark.slow
async def test_a_burst_of_a_thousand_from_zero_with_two_pool_processes(tmp_path: Path) -> None:
    documents = [function("burst", concurrency=10), trigger("web", "burst", "/")]
    async with warm_stack(tmp_path, documents, queue_limit=1000) as platform:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def call(index: int) -> tuple[int, str | None]:
                async with http.get(f"{platform.url}/{index}") as reply:
                    await reply.read()
                    return reply.status, reply.headers.get("X-Hanshu-Cold-Start-Path")

            outcomes = await asyncio.gather(*(call(i) for i in range(1000)))
        statuses = Counter(status for status, _ in outcomes)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[200] > 0
        paths = Counter(path for status, path in outcomes if status == 200)
        assert paths["pool"] > 0, paths


async def test_a_published_version_takes_the_ordinary_path_as_in_a_cluster(
    tmp_path: Path,
) -> None:
    """The cluster's pool serves Functions only; dev mode's does the same, so a version's
    cold request is answered by the version's own replica, which says its number."""
    versioned = textwrap.dedent("""
        def handler(event, context):
            return {"function": context.function_name, "version": context.function_version}
    """)
    template = {"handler": "index.handler", "code": {"inline": {"index.py": versioned}}}
    documents = [
        function("hello"),
        {**function_version("hello", 2, template), "metadata": {"name": "hello-v2"}},
        {
            "apiVersion": "hanshu.io/v1alpha1",
            "kind": "Trigger",
            "metadata": {"name": "v2"},
            "spec": {"functionRef": {"name": "hello", "version": 2}, "http": {"path": "/v2"}},
        },
    ]
    async with warm_stack(tmp_path, documents) as platform:
        async with aiohttp.ClientSession() as http:
            status, body, path = await get(http, f"{platform.url}/v2")
        assert (status, path) == (200, "pod_start")
        assert body == {"function": "hello", "version": "2"}
