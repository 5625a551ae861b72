"""The gateway's warm pool on Kubernetes: pool pods watched in kmock (which versions every
write and refuses a stale resourceVersion with 409, as the API server does), claimed by
relabelling, and specialized over HTTP on loopback servers standing in for the pods
(tests/support/pool_pods.py: they check the pool token and parse the message with
hanshu_api's parser).

The runtime's own pool mode and the gateway's cold path that calls ``specialize`` are
built beside this (issue 27's data-plane half); here the seam itself is driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest
from hanshu_api import API_VERSION, FUNCTION_PLURAL
from hanshu_api.kube import KubeClient, config_from_kubeconfig, path_for
from hanshu_api.platform import Endpoint
from hanshu_api.warm_pool import (
    ANNOTATION_SPECIALIZED_AT,
    LABEL_POOL_STATE,
    LABEL_SPECIALIZED_FOR,
    POOL_MODE_ENV,
    POOL_STATE_SPECIALIZED,
    POOL_TOKEN_ENV,
    SECRET_ENV,
    pool_token,
)
from hanshu_gateway import kube_pool
from hanshu_gateway.kube_gateway import KubeGateway
from hanshu_gateway.kube_pool import KubeWarmPool
from prometheus_client import REGISTRY

from devtools.kube_emulator import ForgetfulEmulator, declare_resources, write_kubeconfig
from tests.support.helpers import eventually
from tests.support.pool_pods import FakePoolRuntime, fake_pool_runtime, pool_pod, unused_port
from tests.support.runtime_process import start_runtime
from tests.support.servers import free_port

NS = "pooled"
TOKEN = "internal-token-for-tests"
PODS = path_for("v1", "pods", NS)
HELLO = 'def hello(event, context):\n    return "hello"\n'


def claims(outcome: str) -> float:
    """The gateway's hanshu_gateway_pool_claims for NS (one registry per process)."""
    labels = {"namespace": NS, "outcome": outcome}
    return REGISTRY.get_sample_value("hanshu_gateway_pool_claims_total", labels) or 0.0


def function(name: str, uid: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "generation": 3},
        "spec": {"handler": "main.hello", "code": {"inline": {"main.py": HELLO}}, **spec},
    }


class Cluster:
    def __init__(self, emulator: ForgetfulEmulator, kube: KubeClient, kubeconfig: Path) -> None:
        self.emulator, self.kube, self.kubeconfig = emulator, kube, kubeconfig

    async def create(self, plural_path: str, body: dict[str, Any]) -> None:
        await self.kube.create(plural_path, body)

    async def pod(self, name: str) -> dict[str, Any] | None:
        return await self.kube.get(path_for("v1", "pods", NS, name))

    @contextlib.asynccontextmanager
    async def gateway(self, port: int = 0) -> AsyncIterator[KubeWarmPool]:
        """A whole cluster gateway, started from its environment as its entry point is;
        yields its warm pool."""
        gateway = KubeGateway.from_env(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "HANSHU_GATEWAY_HOST": "127.0.0.1",
                "HANSHU_GATEWAY_PORT": str(port or free_port()),
                "HANSHU_GATEWAY_INTERNAL_PORT": str(free_port()),
                "HANSHU_INTERNAL_TOKEN": TOKEN,
                "HANSHU_WATCH_NAMESPACES": NS,
                "HANSHU_WARM_POOLS": json.dumps({NS: 2}),
            }
        )
        assert gateway.warm_pool is not None
        await gateway.start()
        try:
            yield gateway.warm_pool
        finally:
            await gateway.stop()


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with ForgetfulEmulator() as emulator, kmock.Server(emulator):
        declare_resources(emulator)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url), NS)
        kube = KubeClient(config_from_kubeconfig(str(kubeconfig)))
        try:
            yield Cluster(emulator, kube, kubeconfig)
        finally:
            await kube.close()


async def add_pod(c: Cluster, name: str, runtime: FakePoolRuntime | None) -> None:
    """A pool pod reaching ``runtime`` (None: a pod whose admin port refuses)."""
    if runtime is None:
        await c.create(PODS, pool_pod(name, NS, unused_port()))
    else:
        await c.create(PODS, pool_pod(name, NS, runtime.admin_port, runtime.function_port))


async def answer(endpoint: Endpoint) -> str:
    url = f"http://{endpoint.host}:{endpoint.port}/"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200
        return await reply.text()


async def test_a_cold_function_is_served_by_a_claimed_pool_pod(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, fake_pool_runtime(NS, TOKEN) as runtime:
        await add_pod(c, "pool-a", runtime)
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("hello", "uid-1"))
        async with c.gateway() as pool:
            await eventually(lambda: pool.available(NS) == 1, message="the pod seen")
            await eventually(lambda: pool.verdict((NS, "hello")), message="the Function seen")

            endpoint = await pool.specialize((NS, "hello"))

            assert endpoint == Endpoint("127.0.0.1", runtime.function_port)
            assert await answer(endpoint) == "served by hello"
            [told] = runtime.received
            assert (told.namespace, told.function, told.generation) == (NS, "hello", 3)
            assert told.files == {"main.py": HELLO}
            assert told.env["HANSHU_HANDLER"] == "main.hello"
            assert told.env["HANSHU_CODE_DIR"].startswith("/tmp/")
            # Claimed: out of the pool's selector (the ReplicaSet refills), owned by the
            # Function (deleting it deletes the pod), stamped for the operator's sweep.
            pod = await c.pod("pool-a")
            assert pod is not None
            labels, meta = pod["metadata"]["labels"], pod["metadata"]
            assert labels[LABEL_POOL_STATE] == POOL_STATE_SPECIALIZED
            assert labels[LABEL_SPECIALIZED_FOR] == "hello"
            assert [(o["kind"], o["uid"]) for o in meta["ownerReferences"]] == [
                ("Function", "uid-1")
            ]
            assert ANNOTATION_SPECIALIZED_AT in meta["annotations"]
            await eventually(lambda: pool.available(NS) == 0, message="the pod taken")

            await pool.retire((NS, "hello"), endpoint)
            assert await eventually(_gone(c, "pool-a"), message="the retired pod deleted")


def _gone(c: Cluster, name: str) -> Any:
    async def probe() -> bool:
        return await c.pod(name) is None

    return probe


async def test_configmap_code_is_read_and_sent(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, fake_pool_runtime(NS, TOKEN) as runtime:
        await add_pod(c, "pool-a", runtime)
        await c.create(
            path_for("v1", "configmaps", NS),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "hello-src", "namespace": NS},
                "data": {"main.py": HELLO},
            },
        )
        spec = function("hello", "uid-1")
        spec["spec"]["code"] = {"configMap": {"name": "hello-src"}}
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), spec)
        async with c.gateway() as pool:
            await eventually(lambda: pool.available(NS) == 1 and pool.verdict((NS, "hello")))
            endpoint = await pool.specialize((NS, "hello"))
            assert endpoint is not None
            assert runtime.received[0].files == {"main.py": HELLO}


async def test_an_ineligible_function_claims_no_pod(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, fake_pool_runtime(NS, TOKEN) as runtime:
        await add_pod(c, "pool-a", runtime)
        secret_env = [
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ]
        await c.create(
            path_for(API_VERSION, FUNCTION_PLURAL, NS), function("secretive", "u", env=secret_env)
        )
        async with c.gateway() as pool:
            await eventually(lambda: pool.available(NS) == 1)
            verdict = await eventually(lambda: pool.verdict((NS, "secretive")) or None)
            assert (verdict.eligible, verdict.reason) == (False, SECRET_ENV)

            assert await pool.specialize((NS, "secretive")) is None

            assert runtime.received == []
            pod = await c.pod("pool-a")
            assert pod is not None
            assert pod["metadata"]["labels"][LABEL_POOL_STATE] == "available"


async def test_a_pod_that_fails_is_deleted_and_the_next_serves(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        fake_pool_runtime(NS, TOKEN, answer=500) as broken,
        fake_pool_runtime(NS, TOKEN) as good,
    ):
        await add_pod(c, "pool-a-refuses", None)
        await add_pod(c, "pool-b-fails", broken)
        await add_pod(c, "pool-c-good", good)
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("hello", "uid-1"))
        async with c.gateway() as pool:
            await eventually(lambda: pool.available(NS) == 3 and pool.verdict((NS, "hello")))
            failed, specialized = claims("failed"), claims("specialized")

            endpoint = await pool.specialize((NS, "hello"))

            assert (claims("failed") - failed, claims("specialized") - specialized) == (2, 1)
            assert endpoint == Endpoint("127.0.0.1", good.function_port)
            assert await c.pod("pool-a-refuses") is None
            assert await c.pod("pool-b-fails") is None
            assert [r.function for r in good.received] == ["hello"]


async def test_with_no_pod_left_the_request_takes_the_ordinary_path(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, fake_pool_runtime(NS, TOKEN, answer=500) as broken:
        await add_pod(c, "pool-a", broken)
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("hello", "uid-1"))
        async with c.gateway() as pool:
            await eventually(lambda: pool.available(NS) == 1 and pool.verdict((NS, "hello")))
            assert await pool.specialize((NS, "hello")) is None
            assert await pool.specialize((NS, "hello")) is None  # and still never raises


async def test_two_gateways_racing_for_one_pod_claim_it_once(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c, fake_pool_runtime(NS, TOKEN) as runtime:
        await add_pod(c, "pool-only", runtime)
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("one", "uid-1"))
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("two", "uid-2"))
        async with c.gateway() as first, c.gateway() as second:
            for pool in (first, second):
                await eventually(
                    lambda p=pool: p.available(NS) == 1 and p.verdict((NS, "two")),  # type: ignore[misc]
                )

            lost = claims("lost")
            won = await asyncio.gather(
                first.specialize((NS, "one")), second.specialize((NS, "two"))
            )

            assert sorted(e is None for e in won) == [False, True], won
            # The loser was told by the API (a 409 on its conditional patch), not by luck.
            assert claims("lost") - lost >= 1
            # One Function ever: the pod was told once, and serves the winner.
            assert len(runtime.received) == 1
            pod = await c.pod("pool-only")
            assert pod is not None
            assert pod["metadata"]["labels"][LABEL_SPECIALIZED_FOR] == runtime.received[0].function


async def test_two_functions_get_two_pods(tmp_path: Path) -> None:
    async with (
        cluster(tmp_path) as c,
        fake_pool_runtime(NS, TOKEN) as a,
        fake_pool_runtime(NS, TOKEN) as b,
    ):
        await add_pod(c, "pool-a", a)
        await add_pod(c, "pool-b", b)
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("one", "uid-1"))
        await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), function("two", "uid-2"))
        async with c.gateway() as first, c.gateway() as second:
            for pool in (first, second):
                await eventually(
                    lambda p=pool: p.available(NS) == 2 and p.verdict((NS, "two")),  # type: ignore[misc]
                )

            one, two = await asyncio.gather(
                first.specialize((NS, "one")), second.specialize((NS, "two"))
            )

            assert one is not None
            assert two is not None
            assert one != two
            assert await answer(one) == "served by one"
            assert await answer(two) == "served by two"


async def test_a_cold_call_through_the_gateway_is_served_by_a_real_pool_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole cold path with a real runtime process in pool mode as the pod: the public
    request waits, the pod is claimed and specialized, and answers."""
    pytest.importorskip(
        "hanshu_runtime.specialize",
        reason="the runtime's pool mode is built beside this (issue 27's data-plane half)",
    )
    # The pod's /tmp is this test's folder: the runtime writes the code it is sent there.
    monkeypatch.setattr(kube_pool, "POOL_CODE_DIR", str(tmp_path / "code"))
    runtime = start_runtime(
        tmp_path / "unused",
        "unused.handler",
        tmp_path,
        **{POOL_MODE_ENV: "1", POOL_TOKEN_ENV: pool_token(TOKEN, NS)},
    )
    handler = 'def hello(event, context):\n    return {"statusCode": 200, "body": "pooled"}\n'
    try:
        async with cluster(tmp_path) as c:
            await c.create(PODS, pool_pod("pool-a", NS, runtime.admin_port, runtime.port))
            spec = function("hello", "uid-1")
            spec["spec"]["code"] = {"inline": {"main.py": handler}}
            await c.create(path_for(API_VERSION, FUNCTION_PLURAL, NS), spec)
            await c.create(
                path_for(API_VERSION, "triggers", NS),
                {
                    "apiVersion": API_VERSION,
                    "kind": "Trigger",
                    "metadata": {"name": "hello", "namespace": NS},
                    "spec": {"functionRef": {"name": "hello"}, "http": {"path": "/hello"}},
                },
            )
            port = free_port()
            async with c.gateway(port) as pool:
                await eventually(lambda: pool.available(NS) == 1 and pool.verdict((NS, "hello")))
                await eventually(_answers(f"{runtime.admin_url}/healthz"), message="the pod up")
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/hello") as reply,
                ):
                    assert reply.status == 200, await reply.text()
                    assert await reply.text() == "pooled"
                    assert reply.headers.get("X-Hanshu-Cold-Start-Path") == "pool"
                pod = await c.pod("pool-a")
                assert pod is not None
                assert pod["metadata"]["labels"][LABEL_SPECIALIZED_FOR] == "hello"
    finally:
        runtime.stop()


def _answers(url: str) -> Any:
    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as reply:
                return reply.status == 200
        except aiohttp.ClientError:
            return False

    return probe
